"""Image metrics: Fréchet distance, KID, precision/recall, IS and class histograms against independent answers;
the classifier's determinism and cache; the per-tick metrics; real MNIST when present."""

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from wgan.config import resolve
from wgan.data import load_data
from wgan.metrics.classifier import get_classifier, train_classifier
from wgan.metrics.frechet import (
    frechet_distance,
    frechet_distance_features,
    gaussian_stats,
    kernel_inception_distance,
    precision_recall,
)
from wgan.metrics.image import class_histogram_metrics, inception_score

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def _random_cov(rng, d, rank=None):
    a = rng.standard_normal((d, rank or d))
    return a @ a.T / d


def _fd_scipy(mu1, s1, mu2, s2):
    """pytorch-fid's formula with scipy.linalg.sqrtm (the reference implementation)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


# ------------------------------------------------------------------------------------------- Fréchet
def test_equal_covariances_give_the_squared_mean_distance():
    rng = np.random.default_rng(0)
    s = _random_cov(rng, 6)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    assert frechet_distance(mu1, s, mu2, s) == pytest.approx(float(((mu1 - mu2) ** 2).sum()), rel=1e-9, abs=1e-9)
    assert frechet_distance(mu1, s, mu1, s) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("d", [2, 10, 40])
def test_matches_scipy_sqrtm_on_random_covariances(d):
    rng = np.random.default_rng(d)
    for _ in range(3):
        s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_fd_scipy(mu1, s1, mu2, s2), rel=1e-7)


def test_rank_deficient_covariances_stay_finite_and_agree_with_sqrtm():
    rng = np.random.default_rng(7)
    s1, s2 = _random_cov(rng, 12, rank=5), _random_cov(rng, 12, rank=8)
    mu1, mu2 = np.zeros(12), np.ones(12)
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert math.isfinite(ours) and ours >= 0
    assert ours == pytest.approx(_fd_scipy(mu1, s1 + 1e-10 * np.eye(12), mu2, s2 + 1e-10 * np.eye(12)), rel=1e-4)


def test_diagonal_gaussians_have_the_closed_form():
    # W2^2 of N(m1, diag a) and N(m2, diag b) = |m1 - m2|^2 + sum (sqrt a - sqrt b)^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    m1, m2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = 1 + 0 + 4 + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 0.5) ** 2
    assert frechet_distance(m1, np.diag(a), m2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_features_of_one_gaussian_give_a_small_distance_and_a_shift_its_square():
    rng = np.random.default_rng(1)
    f1, f2 = rng.standard_normal((20000, 4)), rng.standard_normal((20000, 4))
    assert frechet_distance_features(f1, f2) < 0.01
    assert frechet_distance_features(f1, f2 + 3.0) == pytest.approx(4 * 9.0, rel=0.01)
    mu, cov = gaussian_stats(torch.from_numpy(f1))
    np.testing.assert_allclose(cov, np.cov(f1, rowvar=False))


# ------------------------------------------------------------------------------------------- KID
def test_kid_equals_the_population_mmd_of_two_gaussians():
    # k(x, y) = (x y + 1)^3 in 1-D has the feature map (1, sqrt3 x, sqrt3 x^2, x^3), so
    # MMD^2 = 3 (E x - E y)^2 + 3 (E x^2 - E y^2)^2 + (E x^3 - E y^3)^2; N(0, 1) vs N(mu, 1):
    mu = 0.5
    expected = 3 * mu**2 + 3 * mu**4 + (mu**3 + 3 * mu) ** 2
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20000, 1)), mu + rng.standard_normal((20000, 1))
    kid, _ = kernel_inception_distance(x, y, n_subsets=10, subset_size=2000)
    assert kid == pytest.approx(expected, rel=0.1)
    same, std = kernel_inception_distance(x, rng.standard_normal((20000, 1)), n_subsets=10, subset_size=2000)
    assert abs(same) < 0.05 * expected  # unbiased: near zero, either sign


# ------------------------------------------------------------------------------------------- precision / recall
def test_precision_recall_of_a_generator_covering_one_of_two_clusters():
    rng = np.random.default_rng(2)
    real = np.concatenate([rng.normal(0, 1, (500, 2)), rng.normal(50, 1, (500, 2))])
    fake = rng.normal(0, 1, (1000, 2))  # only the first cluster
    p, r = precision_recall(real, fake, k=3)
    assert p > 0.95  # every generated sample looks real
    assert r == pytest.approx(0.5, abs=0.05)  # half of the real data is never produced
    p, r = precision_recall(real, real + 0.0, k=3)
    assert (p, r) == (1.0, 1.0)
    p, r = precision_recall(real, rng.normal(1000, 1, (1000, 2)), k=3)
    assert (p, r) == (0.0, 0.0)


# ------------------------------------------------------------------------------------------- IS and classes
def test_inception_score_bounds():
    k = 10
    confident_uniform = torch.eye(k).repeat(50, 1)  # every class equally often, each with certainty
    assert inception_score(confident_uniform) == pytest.approx(k, rel=1e-6)
    one_class = torch.zeros(500, k)
    one_class[:, 3] = 1
    assert inception_score(one_class) == pytest.approx(1.0, rel=1e-6)
    unsure = torch.full((500, k), 1 / k)
    assert inception_score(unsure) == pytest.approx(1.0, rel=1e-6)


def test_class_histogram_coverage_and_kl():
    real = torch.full((10,), 100)
    m = class_histogram_metrics(torch.full((1000,), 4), real)
    assert m["classes_covered"] == 1 and m["class_kl"] == pytest.approx(math.log(10))
    m = class_histogram_metrics(torch.arange(1000) % 10, real)
    assert m["classes_covered"] == 10 and m["class_kl"] == pytest.approx(0.0, abs=1e-12)
    # a class with 5 of 1000 samples (5% of its expected 100) is not covered; 10 (10%) is
    pred = torch.cat([torch.zeros(5), torch.ones(10), torch.full((985,), 2)]).long()
    m = class_histogram_metrics(pred, torch.tensor([100, 100, 800]))  # expected counts 100, 100, 800
    assert m["classes_covered"] == 2 and m["classes_total"] == 3


# ------------------------------------------------------------------------------------------- classifier
def _bars(n, seed, size=28):
    """Three classes: a horizontal bar, a vertical bar, a filled square, at random places, with noise."""
    g = torch.Generator().manual_seed(seed)
    x = -torch.ones(n, 1, size, size)
    y = torch.arange(n) % 3
    pos = torch.randint(4, size - 8, (n, 2), generator=g)
    for i in range(n):
        r, c = pos[i].tolist()
        if y[i] == 0:
            x[i, 0, r:r + 2, 4:size - 4] = 1
        elif y[i] == 1:
            x[i, 0, 4:size - 4, c:c + 2] = 1
        else:
            x[i, 0, r:r + 6, c:c + 6] = 1
    x += 0.2 * torch.randn(x.shape, generator=g)
    return x.clamp(-1, 1), y


@pytest.mark.slow  # trains for several seconds
def test_classifier_training_is_deterministic_and_learns(seed):
    x, y = _bars(150, 0)
    xt, yt = _bars(60, 1)
    a = train_classifier(x, y, xt, yt, seed=3, min_images_seen=3000)
    torch.manual_seed(123)  # the global RNG state must not matter
    b = train_classifier(x, y, xt, yt, seed=3, min_images_seen=3000)
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    assert a.test_accuracy == b.test_accuracy > 0.9
    assert a.classes == [0, 1, 2]
    feats, probs = a.features_and_probs(xt)
    assert feats.shape == (60, 128) and probs.shape == (60, 3)
    torch.testing.assert_close(probs.sum(1), torch.ones(60))


def _labelled_npz(folder, n=300):
    x, y = _bars(n, 5)
    u8 = ((x[:, 0] + 1) * 127.5).round().to(torch.uint8).numpy()
    np.savez(folder / "bars.npz", x=u8, y=y.numpy())
    return f"npz:{folder / 'bars.npz'}"


@pytest.fixture(scope="module")
def bars(tmp_path_factory):
    """A labelled npz of bar images and its classifier, trained once into a cache shared by this module."""
    folder = tmp_path_factory.mktemp("bars")
    spec = _labelled_npz(folder)
    clf = get_classifier(load_data(resolve({"data": spec})), verbose=False, cache=folder / "cache")
    return {"spec": spec, "cache": folder / "cache", "clf": clf}


@pytest.mark.slow  # the module's classifier trains for about 9 s
def test_classifier_is_cached_by_the_data_hash(bars, tmp_path, monkeypatch, capsys):
    import wgan.metrics.classifier as C

    assert len(list((bars["cache"] / "classifiers").glob("*.pt"))) == 1
    monkeypatch.setenv("WGAN_CACHE", str(bars["cache"]))

    def refuse(*a, **k):
        raise RuntimeError("retrained despite the cache")

    monkeypatch.setattr(C, "train_classifier", refuse)
    data = load_data(resolve({"data": _labelled_npz(tmp_path)}))  # the same images, written elsewhere
    again = get_classifier(data)
    out = capsys.readouterr().err
    assert "cached" in out and "test accuracy" in out
    for k, v in bars["clf"].model.state_dict().items():
        assert torch.equal(v, again.model.state_dict()[k])
    assert again.test_accuracy == bars["clf"].test_accuracy > 0.9
    other = load_data(resolve({"data": bars["spec"], "classes": "0,1"}))
    with pytest.raises(RuntimeError, match="retrained"):  # another data set, another key
        get_classifier(other)


@pytest.mark.slow  # the module's classifier trains for about 9 s
def test_tick_metrics_have_every_key_and_the_sample_counts(bars, tmp_path, monkeypatch):
    import json

    from wgan.training.trainer import Trainer

    monkeypatch.setenv("WGAN_CACHE", str(bars["cache"]))
    cfg = resolve({"data": bars["spec"], "arch": "conv", "g_width": 8, "c_width": 8, "z_dim": 8,
                   "batch_size": 16, "steps": 2, "tick_every_steps": 2, "eval_samples": 60, "threads": 1})
    t = Trainer(cfg, run_dir=tmp_path / "run")
    t.train()
    rec = t.history[-1]
    for key in ("metrics/classifier_fd", "metrics/kid", "metrics/classifier_is", "metrics/classes_covered",
                "metrics/class_kl", "metrics/precision", "metrics/recall", "metrics/classifier_fd_floor"):
        assert isinstance(rec[key], (int, float)) and math.isfinite(rec[key]), key
    assert rec["metrics/n_fake"] == 60 and rec["metrics/n_real"] == 30  # 10% of 300 held out
    assert rec["metrics/classes_total"] == 3 and 1 <= rec["metrics/classes_covered"] <= 3
    assert 1 <= rec["metrics/classifier_is"] <= 3
    # an untrained generator is far from the data; real training images are near the test set
    assert rec["metrics/classifier_fd"] > 3 * rec["metrics/classifier_fd_floor"]
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == ["step-0000002.png"]
    desc = json.loads((tmp_path / "run" / "metrics_classifier.json").read_text())
    assert "not with Inception" in desc["note"] and desc["eval_samples_generated"] == 60


@pytest.mark.slow  # the module's classifier trains for about 9 s
def test_evaluate_images_separates_real_images_from_blank_ones(bars, monkeypatch):
    from wgan.metrics.image import evaluate_images

    monkeypatch.setenv("WGAN_CACHE", str(bars["cache"]))
    data = load_data(resolve({"data": bars["spec"]}))
    real = evaluate_images(data.x[:30], data)  # training images against the held-out 30
    blank = evaluate_images(-torch.ones(30, 1, 28, 28), data)
    assert real["n_fake"] == 30 and real["n_real"] == 30 and "npz:" in real["feature_space"]
    assert real["classifier_fd"] < 0.2 * blank["classifier_fd"]
    assert real["classes_covered"] == 3 and blank["classes_covered"] == 1
    assert blank["classifier_is"] == pytest.approx(1.0, abs=1e-6)  # identical images: IS 1
    assert real["recall"] > blank["recall"]


@pytest.mark.slow  # the module's classifier trains for about 9 s
def test_unlabelled_folder_uses_another_sets_classifier_and_says_so(bars, tmp_path, monkeypatch, capsys):
    from PIL import Image

    from wgan.training.trainer import Trainer

    common = {"arch": "conv", "g_width": 8, "c_width": 8, "z_dim": 8, "batch_size": 16, "steps": 1,
              "tick_every_steps": 1, "eval_samples": 40, "threads": 1}
    x, _ = _bars(40, 9)
    (tmp_path / "imgs").mkdir()
    for i, im in enumerate(((x[:, 0] + 1) * 127.5).round().to(torch.uint8).numpy()):
        Image.fromarray(im).save(tmp_path / "imgs" / f"{i}.png")
    monkeypatch.setenv("WGAN_CACHE", str(tmp_path / "empty-cache"))
    bare = Trainer(resolve({"data": f"folder:{tmp_path / 'imgs'}", **common}))
    bare.train()
    assert "metrics are off" in capsys.readouterr().err
    assert "metrics/classifier_fd" not in bare.history[-1]
    monkeypatch.setenv("WGAN_CACHE", str(bars["cache"]))
    t = Trainer(resolve({"data": f"folder:{tmp_path / 'imgs'}", **common}))
    t.train()
    out = capsys.readouterr().err
    assert "has no labels" in out and "classifier trained on npz:" in out
    rec = t.history[-1]
    assert math.isfinite(rec["metrics/classifier_fd"]) and "metrics/classifier_is" not in rec


# ------------------------------------------------------------------------------------------- real MNIST
@pytest.mark.slow  # the real MNIST files
@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason="../shared/data/mnist not present")
def test_real_mnist_classifier_accuracy_fd_near_zero_and_is_near_10():
    torch.set_num_threads(1)
    data = load_data(resolve({"data": f"mnist:{MNIST_DIR}"}))
    clf = get_classifier(data)  # trained once (about two minutes on one core), then cached
    assert clf.test_accuracy >= 0.99
    f_test, p_test = clf.features_and_probs(data.x_test)
    idx = torch.randperm(len(data.x), generator=torch.Generator().manual_seed(0))[:10000]
    f_train, _ = clf.features_and_probs(data.x[idx])
    f_half, _ = clf.features_and_probs(data.x_test[data.labels_test < 5])  # a generator missing 5 digits
    fd_real = frechet_distance_features(f_test, f_train)
    fd_half = frechet_distance_features(f_test, f_half)
    total_var = float(torch.cov(f_test.T).trace())
    assert fd_real < 0.01 * fd_half and fd_real < 0.01 * total_var
    assert 9.4 < inception_score(p_test) <= 10.0
    m = class_histogram_metrics(p_test.argmax(1), torch.bincount(data.labels_test, minlength=10))
    assert m["classes_covered"] == 10 and m["class_kl"] < 0.01
