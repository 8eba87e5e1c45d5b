r"""Numbers over the runs of a comparison: mean and sample std over seeds, training time, W tracking.

Pure functions of tick records and run results; nothing here trains, renders or writes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from wgan import stats
from wgan.diagnostics.health import pearson
from wgan.metrics import Column
from wgan.metrics.toy import W1

#: ``(mean, sample std, n)`` of one column over the successful runs of a variant; ``n == 0``: no value
Cell = tuple[float, float, int]

# keys of the values a run has beside its last tick record
STEPS, STEP_MS, W_CORR = "steps", "step_ms", "w_corr"
GRAD_NORM_MEAN = "grad_norm/mean"  # the diagnostics' mean |grad f| at fresh interpolates (wgan.diagnostics)

#: The columns before the evaluator's: how far each run got within its budget, and at what cost.
RUN_COLUMNS = (
    Column(STEPS, "generator steps", ".0f", "steps the run reached within its budget"),
    Column(STEP_MS, "ms / generator step", ".2f",
           "training time per generator step (all its critic steps included)", better="lower"),
)

#: The columns after the evaluator's: the critic at the last evaluation, and how its W estimate tracked W1.
DIAGNOSTIC_COLUMNS = (
    Column(stats.LIPSCHITZ_EMPIRICAL, "empirical Lipschitz", ".3g",
           "the critic's largest secant slope over sampled pairs of real, generated and interpolated points "
           "(a lower bound on its Lipschitz constant), last evaluation"),
    Column(GRAD_NORM_MEAN, "grad-norm mean", ".3g",
           "mean norm of the critic's input gradient at interpolates of real and generated points, last evaluation"),
    Column(W_CORR, "r(W est., W1)", ".2f",
           "Pearson correlation, over a run's evaluations after the first, of the critic gap "
           "E[f(x_real)] - E[f(x_fake)] with the exact W1", better="higher"),
)


def mean_std(values: Iterable[float]) -> Cell:
    """Mean, sample standard deviation (``ddof=1``; 0 for one value) and count of the finite values."""
    vals = np.array([float(v) for v in values], dtype=float)
    vals = vals[np.isfinite(vals)]
    if len(vals) == 0:
        return float("nan"), float("nan"), 0
    std = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
    return float(vals.mean()), std, len(vals)


def number(v: Any) -> float:
    """``v`` as a float when it is a number (not a bool), else NaN."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan")


def train_seconds(history: Sequence[dict[str, Any]]) -> tuple[float, int]:
    """``(seconds of training steps, steps)`` summed over tick records (``time/step_ms`` x steps per tick)."""
    total, prev = 0.0, 0
    for rec in history:
        step = int(rec.get(stats.STEP, prev))
        ms = rec.get(stats.STEP_MS)
        if isinstance(ms, (int, float)) and math.isfinite(ms):
            total += ms * (step - prev) / 1000
        prev = step
    return total, prev


def w_estimate_correlation(history: Sequence[dict[str, Any]], key: str = stats.GAP,
                           reference: str = W1) -> float:
    r"""Pearson's r between the critic's W estimate and the exact W1 over a run's evaluations.

    .. math:: r = \mathrm{corr}_t\big(\hat W_t, W_1(t)\big), \qquad
              \hat W_t = E[f(x_{real})] - E[f(x_{fake})] \text{ (mean over the tick's critic steps)}

    The first evaluation is left out: it comes after a few steps (the calibration chunk with a time
    budget), when the critic has not learned anything yet and its gap is small while W1 is at its
    largest, one point that would dominate the correlation of an otherwise tracking curve.

    Args:
        history: the run's tick records.
        key: the critic's estimate.
        reference: the exact distance it should track (the toy evaluator's exact W1).

    Returns:
        r, or NaN with fewer than 3 evaluations after the first (or no exact W1: image data).
    """
    pairs = [(r[key], r[reference]) for r in history[1:]
             if isinstance(r.get(key), (int, float)) and isinstance(r.get(reference), (int, float))]
    if len(pairs) < 3:
        return float("nan")
    r = pearson(*zip(*pairs))
    return float("nan") if r is None else float(r)


def health_cell(verdicts: Sequence[dict[str, Any]]) -> str:
    """``"2 healthy, 1 unhealthy (fails: w_decreasing)"``: statuses by count, and the failing checks."""
    if not verdicts:
        return ""
    counts: dict[str, int] = {}
    failing: dict[str, int] = {}
    for v in verdicts:
        st = v.get("status", "unknown")
        counts[st] = counts.get(st, 0) + 1
        for c in v.get("checks", []):
            if c.get("status") == "fail":
                failing[c["name"]] = failing.get(c["name"], 0) + 1
    order = ["healthy", "healthy with warnings", "unhealthy"]
    order += sorted(s for s in counts if s not in order)  # "too early to judge", "unknown", ...
    text = ", ".join(f"{counts[s]} {s}" for s in order if s in counts)
    if failing:
        text += " (fails: " + ", ".join(f"{k}" + (f" x{n}" if n > 1 else "") for k, n in failing.items()) + ")"
    return text


def mean_floor(finals: Iterable[dict[str, Any]], floor_key: str | None) -> float | None:
    """The mean of a metric's floor (what a perfect generator scores) over the runs that measured it."""
    if floor_key is None:
        return None
    vals = [f[floor_key] for f in finals if isinstance(f.get(floor_key), (int, float))]
    return float(np.mean(vals)) if vals else None
