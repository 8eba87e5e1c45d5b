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

import json
import sys
import math
import time
import weakref
from typing import Any

import torch

from wgan.metrics.frechet import frechet_distance, gaussian_stats, kernel_inception_distance, precision_recall

COVERED_SHARE = 0.1  # a class is covered when it gets >= 10% of the samples its real frequency predicts

_STATE: "weakref.WeakKeyDictionary[Any, dict[str, Any]]" = weakref.WeakKeyDictionary()


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


def _classifier_for(trainer):
    from wgan.metrics.classifier import find_cached_classifier, get_classifier

    data = trainer.data
    if data.labels is not None and len(set(data.labels.tolist())) >= 2:
        return get_classifier(data), True
    clf = find_cached_classifier(data.shape[0], data.shape[-1])
    if clf is None:
        print(f"wgan: {data.name} has no labels and no cached classifier of another data set exists; image "
              "metrics are off (train once on a labelled set, e.g. --data mnist:DIR, to enable the Fréchet "
              "distance in that classifier's feature space)", file=sys.stderr, flush=True)
    else:
        print(f"wgan: {data.name} has no labels: the Fréchet distance, KID and precision/recall use the features "
              f"of a {clf.describe()}, not of a classifier of this data", file=sys.stderr, flush=True)
    return clf, False


def _setup(trainer) -> dict[str, Any]:
    cfg = trainer.config
    data = trainer.data
    clf, own = _classifier_for(trainer)
    st: dict[str, Any] = {"clf": clf, "own": own}
    if clf is None:
        return st
    x_real = data.x_test if data.x_test is not None and len(data.x_test) >= 10 else data.x
    real_feats, real_probs = clf.features_and_probs(x_real.cpu())
    n = cfg.eval_samples
    st["real_feats"], st["real_stats"] = real_feats, gaussian_stats(real_feats)
    g = torch.Generator().manual_seed(cfg.seed * 7 + 11)
    train_idx = torch.randperm(len(data.x), generator=g)[:n]
    train_feats, _ = clf.features_and_probs(data.x[train_idx.to(data.x.device)].cpu())
    st["fd_floor"] = frechet_distance(*gaussian_stats(train_feats), *st["real_stats"])
    if own:
        lab = data.labels_test if data.labels_test is not None and x_real is data.x_test else data.labels
        index = {c: i for i, c in enumerate(clf.classes)}
        mapped = torch.tensor([index.get(int(v), -1) for v in lab.cpu().tolist()])
        st["real_freq"] = torch.bincount(mapped[mapped >= 0], minlength=len(clf.classes))
        st["real_is"] = inception_score(real_probs)
    # fixed latents for the evaluation, independent of the training RNG
    st["z"] = torch.randn(n, cfg.z_dim, generator=torch.Generator().manual_seed(cfg.seed * 7 + 13))
    if trainer.run_dir is not None:
        desc = {"feature_space": clf.describe(), "classifier_trained_on": clf.trained_on,
                "classifier_test_accuracy": clf.test_accuracy, "classifier_hash": clf.data_hash,
                "own_labels": own, "eval_samples_generated": n, "real_samples_fd": len(real_feats),
                "real_samples_kid_pr": min(n, len(real_feats)),
                "note": "classifier-feature metrics: comparable between runs on this data set, "
                        "not with Inception FID/KID/IS"}
        try:
            (trainer.run_dir / "metrics_classifier.json").write_text(json.dumps(desc, indent=2), encoding="utf-8")
        except OSError:
            pass
    return st


def image_metrics(trainer) -> dict[str, Any]:
    """Classifier-feature metrics of the trainer's current (EMA) generator, for one tick.

    Generates ``config.eval_samples`` images from a fixed latent batch (the same at every tick).
    The first call trains or loads the classifier and computes the real features once.

    Returns:
        ``metrics/...`` values (see the module docstring), with the sample counts
        ``metrics/n_fake`` and ``metrics/n_real`` and ``time/eval_s``; ``{}`` when no classifier exists.
    """
    t0 = time.perf_counter()
    st = _STATE.get(trainer)
    if st is None:
        st = _setup(trainer)
        _STATE[trainer] = st
    clf = st["clf"]
    if clf is None:
        return {}
    fakes = []
    for z in st["z"].split(500):
        fakes.append(trainer.generate(z=z.to(trainer.device)).float().cpu())
    x_fake = torch.cat(fakes)  # (n, C, H, W)
    out: dict[str, Any] = {}
    feats, probs = clf.features_and_probs(x_fake)
    out.update({f"metrics/{k}": v for k, v in compare_features(feats, st["real_feats"], st["real_stats"]).items()})
    out["metrics/classifier_fd_floor"] = st["fd_floor"]
    if st["own"]:
        out["metrics/classifier_is"] = inception_score(probs)
        out["metrics/classifier_is_real"] = st["real_is"]
        hist = class_histogram_metrics(probs.argmax(1), st["real_freq"])
        out.update({f"metrics/{k}": v for k, v in hist.items()})
    out["metrics/classifier_test_acc"] = clf.test_accuracy
    out["metrics/n_fake"] = len(x_fake)
    out["metrics/n_real"] = len(st["real_feats"])
    out["time/eval_s"] = time.perf_counter() - t0
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in out.items()}


def evaluate_images(x_fake: torch.Tensor, data, classifier=None, n_real: int | None = None) -> dict[str, Any]:
    """Classifier-feature metrics of given images (N, C, H, W) in [-1, 1] against ``data``'s test split.

    For ``wgan evaluate`` and library use. ``classifier`` defaults to the data set's own (cached)
    classifier; pass another :class:`~wgan.metrics.classifier.TrainedClassifier` for unlabelled sets.
    Returns plain keys (``classifier_fd``, ``kid``, ``classifier_is``, ...) and the sample counts.
    """
    from wgan.metrics.classifier import get_classifier

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


__all__ = ["image_metrics", "evaluate_images", "inception_score", "class_histogram_metrics", "compare_features"]
