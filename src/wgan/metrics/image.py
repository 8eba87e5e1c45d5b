r"""Image metrics in the feature space of the project's own classifier (no Inception).

Per tick, ``eval_samples`` images are generated from a fixed latent batch and compared with the
real held-out split (the test set) through :mod:`wgan.metrics.classifier`:

=============================  ===================================================================
key                            meaning
=============================  ===================================================================
``metrics/classifier_fd``      Fréchet distance of the 128-d penultimate features, generated vs
                               all real test images (FID's formula, *not* Inception features)
``metrics/classifier_fd_floor`` the same between ``eval_samples`` real *training* images and the
                               test set: what a perfect generator would score at this sample count
``metrics/kid``                KID (cubic-kernel unbiased MMD², Bińkowski et al. 2018) on those
                               features, generated vs ``eval_samples`` test images (subsets of 1000)
``metrics/classifier_is``      classifier Inception Score :math:`\exp E_x KL(p(y|x) \| p(y))`,
                               from 1 (one class or no confidence) to K (K classes, all confident)
``metrics/classes_covered``    classes receiving at least 10% of their expected share of samples
``metrics/class_kl``           :math:`KL(p_{gen} \| p_{real})` of the predicted class histogram
``metrics/precision``,         k-NN manifold precision / recall, k = 3 (Kynkäänniemi et al. 2019),
``metrics/recall``             ``eval_samples`` generated vs as many test images
=============================  ===================================================================

The validation critic gap on held-out real images (``critic/gap_val`` against ``critic/gap_train``)
comes from :mod:`wgan.diagnostics`, which runs at the same tick.

These are classifier-feature metrics: comparable between runs on the same data set (the classifier
is deterministic and cached by the data's hash), not with published Inception FID/KID/IS.
For a set without labels (a plain folder) a cached classifier of *another* labelled set supplies the
features for the Fréchet distance, KID and precision/recall; no IS or class metrics then.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from wgan import stats
from wgan.metrics.base import Column, Evaluator, critic_gap, generate
from wgan.metrics.classifier import find_cached_classifier, get_classifier
from wgan.metrics.frechet import frechet_distance, gaussian_stats, kernel_inception_distance, precision_recall
from wgan.seeds import derive_seed

COVERED_SHARE = 0.1  # a class is covered when it gets >= 10% of the samples its real frequency predicts


def inception_score(probs: torch.Tensor) -> float:
    r"""Inception Score of class probabilities (N, K), one split.

    .. math:: IS = \exp\big(E_x\, KL(p(y|x) \,\|\, p(y))\big), \quad p(y) = E_x\, p(y|x)

    References:
        Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016 (sec. 4).
    """
    p = probs.double().clamp_min(1e-12)
    py = p.mean(0, keepdim=True)
    return float(torch.exp((p * (p.log() - py.log())).sum(1).mean()))


def class_histogram_metrics(pred: torch.Tensor, real_freq: torch.Tensor) -> dict[str, float]:
    r"""Coverage and KL of predicted classes (N,) against the real class frequencies (K,).

    ``classes_covered`` counts classes with at least 10% of their expected count
    :math:`0.1\, N\, p_{real}(c)` (and at least one sample);
    ``class_kl`` is :math:`\sum_c p_{gen}(c) \log(p_{gen}(c) / p_{real}(c))` (0 when the histograms
    match, :math:`\log K` when every sample falls in one of K equally frequent classes).
    """
    k = len(real_freq)
    counts = torch.bincount(pred, minlength=k)[:k].double()
    p_gen = counts / counts.sum().clamp_min(1)
    p_real = real_freq.double() / real_freq.double().sum()
    need = torch.clamp(COVERED_SHARE * len(pred) * p_real, min=1.0)
    covered = int(((counts >= need) & (p_real > 0)).sum())
    mask = p_gen > 0
    kl = float((p_gen[mask] * (p_gen[mask].log() - p_real[mask].clamp_min(1e-12).log())).sum())
    return {"classes_covered": covered, "classes_total": int((p_real > 0).sum()), "class_kl": kl}


def compare_features(feat_fake: torch.Tensor, feat_real: torch.Tensor, real_stats=None,
                     n_pr: int | None = None, seed: int = 0) -> dict[str, float]:
    """Fréchet distance, KID and precision/recall between generated and real features.

    Args:
        feat_fake: (M, D).
        feat_real: (N, D), all of it for the Fréchet distance.
        real_stats: precomputed ``gaussian_stats(feat_real)``.
        n_pr: real samples for KID and precision/recall (default M), a fixed subset.
        seed: for the subsets.
    """
    mu_r, sig_r = real_stats if real_stats is not None else gaussian_stats(feat_real)
    out = {"classifier_fd": frechet_distance(*gaussian_stats(feat_fake), mu_r, sig_r)}
    m = len(feat_fake)
    n_pr = min(n_pr or m, len(feat_real))
    sub = feat_real[torch.randperm(len(feat_real), generator=torch.Generator().manual_seed(seed))[:n_pr]]
    out["kid"], out["kid_std"] = kernel_inception_distance(feat_fake.numpy(), sub.numpy(),
                                                           subset_size=min(1000, max(2, min(m, n_pr) // 2)), seed=seed)
    out["precision"], out["recall"] = precision_recall(sub, feat_fake, k=3)
    return out


FD = "metrics/classifier_fd"
FD_FLOOR = "metrics/classifier_fd_floor"
KID = "metrics/kid"
KID_STD = "metrics/kid_std"
IS = "metrics/classifier_is"
IS_REAL = "metrics/classifier_is_real"
CLASSES_COVERED = "metrics/classes_covered"
CLASSES_TOTAL = "metrics/classes_total"
CLASS_KL = "metrics/class_kl"
PRECISION = "metrics/precision"
RECALL = "metrics/recall"
CLASSIFIER_TEST_ACC = "metrics/classifier_test_acc"
N_FAKE = "metrics/n_fake"
N_REAL = "metrics/n_real"

SAMPLE_GRID = 64  # images in the sample grid of each tick
PROBE_SAMPLES = 128  # points per tick for the diagnostics (at most the batch size)


class ImageEvaluator(Evaluator):
    """Classifier-feature metrics of image runs (see the module docstring), and the validation gap.

    The first evaluation trains or loads the classifier and computes the real features once; every
    evaluation generates ``config.eval_samples`` images from a fixed latent batch.
    """

    kind = "images"
    columns = (
        Column(FD, "classifier FD", ".4g", "Fréchet distance of the classifier's penultimate features, generated vs "
               "real test images (not Inception FID)", floor_key=FD_FLOOR, better="lower",
               summary=("classifier FD", "{value:.2f}  (floor, real vs real: {floor:.2f}; classifier features, "
                                         "not Inception FID; {n_fake} generated images)")),
        Column(KID, "KID", ".4g", "kernel inception distance (cubic-kernel unbiased MMD²) on the classifier's features",
               better="lower"),
        Column(IS, "classifier IS", ".4g", "classifier Inception Score, from 1 to the number of classes",
               better="higher", summary=("classifier IS", "{value:.2f}  (real test images: {classifier_is_real:.2f})")),
        Column(CLASSES_COVERED, "classes covered", ".4g", "classes receiving at least 10% of their expected share",
               better="higher", summary=("classes covered", "{value} of {classes_total}  (class KL to the data "
                                                             "{class_kl:.3f})")),
        Column(CLASS_KL, "class KL", ".4g", "KL(p_gen || p_real) of the predicted class histogram", better="lower"),
        Column(PRECISION, "precision", ".4g", "k-NN manifold precision (k = 3) in the classifier's features",
               better="higher"),
        Column(RECALL, "recall", ".4g", "k-NN manifold recall (k = 3) in the classifier's features", better="higher"),
    )
    descriptions = {
        FD_FLOOR: "the Fréchet distance of real training images to the test set: a perfect generator's score",
        KID_STD: "standard deviation of KID over its subsets",
        IS_REAL: "classifier Inception Score of the real test images",
        CLASSES_TOTAL: "classes in the real test images",
        CLASSIFIER_TEST_ACC: "test accuracy of the feature classifier",
        N_FAKE: "generated images evaluated",
        N_REAL: "real test images compared",
        stats.EVAL_S: stats.DESCRIPTIONS[stats.EVAL_S],
    }
    curves = (FD, KID)
    describe_file = "metrics_classifier.json"

    def __init__(self, data, config, device):
        super().__init__(data, config, device)
        g = torch.Generator().manual_seed(derive_seed(config.seed, "fixed_z"))
        self.fixed_z = torch.randn(SAMPLE_GRID, config.z_dim, generator=g).to(self.device)
        self._ref: dict[str, Any] | None = None  # the classifier and the real references, once

    def setup(self) -> None:
        if self._ref is None:
            self._ref = self._references()

    def _classifier(self):
        data = self.data
        if data.labels is not None and len(set(data.labels.tolist())) >= 2:
            return get_classifier(data), True
        clf = find_cached_classifier(data.shape[0], data.shape[-1])
        if clf is None:
            print(f"wgan: {data.name} has no labels and no cached classifier of another data set exists; image "
                  "metrics are off (train once on a labelled set, e.g. --data mnist:DIR, to enable the Fréchet "
                  "distance in that classifier's feature space)", file=sys.stderr, flush=True)
        else:
            print(f"wgan: {data.name} has no labels: the Fréchet distance, KID and precision/recall use the "
                  f"features of a {clf.describe()}, not of a classifier of this data", file=sys.stderr, flush=True)
        return clf, False

    def _references(self) -> dict[str, Any]:
        cfg, data = self.config, self.data
        clf, own = self._classifier()
        ref: dict[str, Any] = {"clf": clf, "own": own}
        if clf is None:
            return ref
        x_real = data.x_test if data.x_test is not None and len(data.x_test) >= 10 else data.x
        real_feats, real_probs = clf.features_and_probs(x_real.cpu())
        n = cfg.eval_samples
        ref["real_feats"], ref["real_stats"] = real_feats, gaussian_stats(real_feats)
        g = torch.Generator().manual_seed(derive_seed(cfg.seed, "fd_floor"))
        train_idx = torch.randperm(len(data.x), generator=g)[:n]
        train_feats, _ = clf.features_and_probs(data.x[train_idx.to(data.x.device)].cpu())
        ref["fd_floor"] = frechet_distance(*gaussian_stats(train_feats), *ref["real_stats"])
        if own:
            lab = data.labels_test if data.labels_test is not None and x_real is data.x_test else data.labels
            index = {c: i for i, c in enumerate(clf.classes)}
            mapped = torch.tensor([index.get(int(v), -1) for v in lab.cpu().tolist()])
            ref["real_freq"] = torch.bincount(mapped[mapped >= 0], minlength=len(clf.classes))
            ref["real_is"] = inception_score(real_probs)
        # fixed latents for the evaluation, independent of the training RNG
        ref["z"] = torch.randn(n, cfg.z_dim, generator=torch.Generator().manual_seed(derive_seed(cfg.seed, "eval_z")))
        return ref

    def evaluate(self, generator: nn.Module) -> dict[str, Any]:
        """Returns ``metrics/...`` values (see the module docstring) with the sample counts
        ``metrics/n_fake``, ``metrics/n_real`` and ``time/eval_s``; ``{}`` when no classifier exists."""
        t0 = time.perf_counter()
        self.setup()
        ref = self._ref
        clf = ref["clf"]
        if clf is None:
            return {}
        x_fake = torch.cat([generate(generator, z.to(self.device)).float().cpu() for z in ref["z"].split(500)])
        out: dict[str, Any] = {}
        feats, probs = clf.features_and_probs(x_fake)  # (n, C, H, W) -> (n, 128), (n, K)
        compared = compare_features(feats, ref["real_feats"], ref["real_stats"])
        out.update({f"metrics/{k}": v for k, v in compared.items()})
        out[FD_FLOOR] = ref["fd_floor"]
        if ref["own"]:
            out[IS] = inception_score(probs)
            out[IS_REAL] = ref["real_is"]
            hist = class_histogram_metrics(probs.argmax(1), ref["real_freq"])
            out.update({f"metrics/{k}": v for k, v in hist.items()})
        out[CLASSIFIER_TEST_ACC] = clf.test_accuracy
        out[N_FAKE] = len(x_fake)
        out[N_REAL] = len(ref["real_feats"])
        out[stats.EVAL_S] = time.perf_counter() - t0
        return {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in out.items()}

    def describe(self) -> dict[str, Any] | None:
        self.setup()
        clf, n = self._ref["clf"], self.config.eval_samples
        if clf is None:
            return None
        real = len(self._ref["real_feats"])
        return {"feature_space": clf.describe(), "classifier_trained_on": clf.trained_on,
                "classifier_test_accuracy": clf.test_accuracy, "classifier_hash": clf.data_hash,
                "own_labels": self._ref["own"], "eval_samples_generated": n, "real_samples_fd": real,
                "real_samples_kid_pr": min(n, real),
                "note": "classifier-feature metrics: comparable between runs on this data set, "
                        "not with Inception FID/KID/IS"}

    def samples_png(self, generator: nn.Module, path: Path, title: str = "") -> None:
        from wgan.plots.grid import save_image_grid  # the plotting package, deferred on purpose

        save_image_grid(path, generate(generator, self.fixed_z).cpu())

    def probe_samples(self, batch_size: int) -> int:
        return max(2, min(batch_size, PROBE_SAMPLES))

    def critic_gaps(self, critic, generator, x_real, x_fake, rng):
        x_test = self.data.x_test
        if x_test is None or len(x_test) == 0:
            return {}
        idx = torch.randint(len(x_test), (len(x_real),), generator=rng, device=rng.device).to(x_test.device)
        return {stats.GAP_VAL: critic_gap(critic, x_test[idx], x_fake),
                stats.GAP_TRAIN: critic_gap(critic, x_real, x_fake)}


def evaluate_images(x_fake: torch.Tensor, data, classifier=None, n_real: int | None = None) -> dict[str, Any]:
    """Classifier-feature metrics of given images (N, C, H, W) in [-1, 1] against ``data``'s test split.

    For ``wgan evaluate`` and library use. ``classifier`` defaults to the data set's own (cached)
    classifier; pass another :class:`~wgan.metrics.classifier.TrainedClassifier` for unlabelled sets.
    Returns plain keys (``classifier_fd``, ``kid``, ``classifier_is``, ...) and the sample counts.
    """
    clf = classifier or get_classifier(data)
    x_real = data.x_test if data.x_test is not None and len(data.x_test) >= 10 else data.x
    if n_real:
        x_real = x_real[:n_real]
    real_feats, _ = clf.features_and_probs(x_real.cpu())
    feats, probs = clf.features_and_probs(x_fake.cpu())
    out: dict[str, Any] = compare_features(feats, real_feats)
    if classifier is None:  # the data set's own classifier: its classes are the data's labels
        lab = data.labels_test if x_real is not data.x else data.labels
        index = {c: i for i, c in enumerate(clf.classes)}
        mapped = torch.tensor([index.get(int(v), -1) for v in lab[: len(x_real)].cpu().tolist()])
        out["classifier_is"] = inception_score(probs)
        out.update(class_histogram_metrics(probs.argmax(1), torch.bincount(mapped[mapped >= 0],
                                                                           minlength=len(clf.classes))))
    out.update({"n_fake": len(x_fake), "n_real": len(x_real), "feature_space": clf.describe()})
    return out


__all__ = ["ImageEvaluator", "evaluate_images", "inception_score", "class_histogram_metrics", "compare_features"]
