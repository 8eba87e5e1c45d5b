r"""The health verdict of a run, read from its training curves as the source texts describe.

A WGAN critic's gap :math:`\hat W = E[f(x_{real})] - E[f(G(z))]` estimates (a multiple of) the
Wasserstein-1 distance, so its curve is interpretable. The source texts' healthy signs are: the W
estimate decreases, it does not oscillate wildly, the critic's loss converges, nothing explodes.
Their bad signs, each with a cause, become the diagnoses of failing checks:

=====================================  ======================================================
bad sign                               likely cause
=====================================  ======================================================
W estimate increases or oscillates     something is wrong with the Lipschitz constraint
W estimate stuck at a high value       critic not powerful enough, or learning rate too low
losses explode to +-infinity           gradient penalty weight too low, or numerical issues
W estimate near 0 but samples are bad  mode collapse
=====================================  ======================================================

The gradient norm at interpolates adds the thresholds of the gradient-norm analysis:
:math:`|\bar n - 1| < 0.1` excellent, :math:`< 0.3` acceptable, otherwise poor.

Curves are the per-tick records of ``metrics.jsonl`` (the trainer's ``history``). Windows are a
quarter of the ticks: the source compares the first and last 100 steps of per-step curves; ticks are
already averages over many steps.

Example:
    >>> history = [{"step": 100 * i, "critic/gap": 2.0 / i, "loss/critic": -2.0 / i} for i in range(1, 13)]
    >>> v = health_verdict(history)
    >>> v.status
    'healthy'
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wgan.lipschitz import LIPSCHITZ, LipschitzMethod

EXPLOSION = 100.0  # |W estimate| or |loss| beyond this is an explosion (the source's threshold)
MIN_TICKS = 4  # trend checks need at least this many ticks
NEAR_ZERO = 0.1  # the late estimate is "near zero" below this fraction of its peak
DECREASE = 0.05  # "decreasing": the late estimate at least this fraction below the early one
RISE = 0.1  # "rising": the late estimate above (1 + RISE) x the early one; in between, "stuck"
SWING = 0.1  # "wild" oscillation: the median tick-to-tick change exceeds this fraction of the peak ...
ZIGZAG = 2.0  # ... and the curve travels more than this many times its net change
SPIKE = 0.5  # or one tick-to-tick jump after the transient exceeds this fraction of the peak
POOR_W1 = 10.0  # toy samples are poor when their exact W1 exceeds this multiple of the data-vs-data floor
SETTLED = 0.02  # the critic loss counts as settled when its late std is below this fraction of its peak

PASS, WARN, FAIL, NA = "pass", "warn", "fail", "n/a"


@dataclass
class HealthCheck:
    """One check of the verdict.

    Attributes:
        name: a stable identifier (``w_decreasing``, ``no_oscillation``, ``critic_converging``,
            ``no_explosion``, ``no_mode_collapse``, ``grad_norm``).
        title: the healthy sign in words.
        status: ``"pass"``, ``"warn"``, ``"fail"`` or ``"n/a"`` (too few ticks, or not applicable).
        detail: the numbers the status was decided on.
        cause: the likely cause when the check does not pass.
        remedy: what to change when the check does not pass.
    """

    name: str
    title: str
    status: str
    detail: str
    cause: str = ""
    remedy: str = ""

    @property
    def ok(self) -> bool:
        return self.status != FAIL


@dataclass
class HealthVerdict:
    """All checks of a run, with a one-word status and a text rendering.

    Attributes:
        checks: the :class:`HealthCheck` list, in a fixed order.
        ticks: how many tick records were read.
        correlation: on toy data, Pearson's r between the critic gap and the exact W1 over the run
            (``None`` without enough ticks or without exact W1), with ``ratio`` the median of
            gap / W1.
    """

    checks: list[HealthCheck]
    ticks: int
    correlation: float | None = None
    ratio: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[HealthCheck]:
        return [c for c in self.checks if c.status == FAIL]

    @property
    def warnings(self) -> list[HealthCheck]:
        return [c for c in self.checks if c.status == WARN]

    @property
    def healthy(self) -> bool:
        """No failing check (warnings allowed)."""
        return not self.failed

    @property
    def status(self) -> str:
        """``"unhealthy"`` (a check failed), else ``"unknown"`` (no ticks), ``"too early to judge"``
        (fewer than 4 ticks: the curve checks need more), ``"healthy with warnings"`` or ``"healthy"``."""
        if self.failed:
            return "unhealthy"
        if self.ticks == 0:
            return "unknown"
        if self.ticks < MIN_TICKS:
            return "too early to judge"
        return "healthy with warnings" if self.warnings else "healthy"

    def text(self, indent: str = "") -> str:
        """The verdict as lines: the status, then one line per check and cause/remedy lines."""
        marks = {PASS: "ok  ", WARN: "warn", FAIL: "FAIL", NA: "n/a "}
        counts = f"{sum(c.status == PASS for c in self.checks)} passed"
        if self.warnings:
            counts += f", {len(self.warnings)} warning{'s' * (len(self.warnings) > 1)}"
        if self.failed:
            counts += f", {len(self.failed)} failed"
        lines = [f"{indent}health: {self.status.upper()} ({counts}; {self.ticks} ticks)"]
        for c in self.checks:
            lines.append(f"{indent}  [{marks[c.status]}] {c.title}: {c.detail}")
            if c.status in (WARN, FAIL):
                if c.cause:
                    lines.append(f"{indent}         likely cause: {c.cause}")
                if c.remedy:
                    lines.append(f"{indent}         remedy: {c.remedy}")
        if self.correlation is not None:
            lines.append(f"{indent}  critic gap vs exact W1: Pearson r = {self.correlation:.3f}, "
                         f"median ratio gap/W1 = {self.ratio:.2f}")
        return "\n".join(lines)

    __str__ = text
    render = text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: status, ticks, correlation, ratio and the checks."""
        return {"status": self.status, "healthy": self.healthy, "ticks": self.ticks,
                "correlation": self.correlation, "ratio": self.ratio,
                "checks": [asdict(c) for c in self.checks], **self.extra}


# ---------------------------------------------------------------------------------------- helpers
def series(history: Iterable[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of the records that have a numeric ``key`` (NaN and Inf kept)."""
    steps, values = [], []
    for i, rec in enumerate(history):
        v = rec.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            steps.append(rec.get("step", i))
            values.append(float(v))
    return np.asarray(steps, dtype=float), np.asarray(values, dtype=float)


def pearson(a, b) -> float | None:
    """Pearson's r of two equal-length sequences; ``None`` with fewer than 3 points or no spread."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def gap_w1_agreement(history: list[dict[str, Any]], gap_key: str = "critic/gap") -> dict[str, Any] | None:
    """How well a critic-gap curve tracks the exact W1 over a toy run.

    .. math:: r = \\mathrm{corr}(\\hat W_t, W_1(t)), \\qquad \\rho = \\mathrm{median}_t\\, \\hat W_t / W_1(t)

    Returns:
        ``{"steps", "gap", "w1", "pearson", "ratio"}`` over the ticks that have both values, or
        ``None`` when the run has no exact W1 (image data).
    """
    pairs = [(r.get("step", i), r[gap_key], r["metrics/w1"]) for i, r in enumerate(history)
             if isinstance(r.get(gap_key), (int, float)) and isinstance(r.get("metrics/w1"), (int, float))]
    if not pairs:
        return None
    steps, gap, w1 = (np.asarray(x, dtype=float) for x in zip(*pairs))
    ok = np.isfinite(gap) & np.isfinite(w1) & (w1 > 0)
    ratio = float(np.median(gap[ok] / w1[ok])) if ok.any() else None
    return {"steps": steps, "gap": gap, "w1": w1, "pearson": pearson(gap, w1), "ratio": ratio}


def _method(config, history) -> tuple[str | None, str | None]:
    """(Lipschitz method, objective) from a config (TrainConfig or dict), else guessed from keys."""
    variant = None
    if config is not None:
        variant = config.get("variant") if isinstance(config, dict) else getattr(config, "variant", None)
    if variant is not None:
        try:
            from wgan.variants import get_variant

            v = get_variant(variant)
            return v.lipschitz, v.objective
        except Exception:  # an unknown variant name in an old run: fall back to the keys
            pass
    if any("lipschitz/penalty" in r for r in history):
        return "gp", None
    return None, None


def _remedy(method: str | None, kind: str) -> str:
    """The Lipschitz method's own advice (``remedy_unstable``, ``remedy_explosion`` of its class in
    :data:`wgan.lipschitz.LIPSCHITZ`); generic for ``None`` or a name that is not registered."""
    return getattr(LIPSCHITZ.get(method, LipschitzMethod), f"remedy_{kind}")


# ---------------------------------------------------------------------------------------- checks
def _check_w_decreasing(gap: np.ndarray, method) -> HealthCheck:
    title = "W estimate decreasing"
    n = len(gap)
    if n < MIN_TICKS:
        return HealthCheck("w_decreasing", title, NA, f"{n} ticks; need at least {MIN_TICKS}")
    q = max(1, n // 4)
    early, late, peak = float(gap[:q].mean()), float(gap[-q:].mean()), float(gap.max())
    detail = f"first-quarter mean {early:.4g} -> last-quarter mean {late:.4g} (peak {peak:.4g})"
    if late < early - DECREASE * abs(early):
        return HealthCheck("w_decreasing", title, PASS, detail)
    if peak > 0 and abs(late) <= NEAR_ZERO * peak:
        return HealthCheck("w_decreasing", title, PASS, detail + "; flat near zero")
    if late > early + RISE * max(abs(early), 1e-12):
        return HealthCheck("w_decreasing", title, FAIL, detail + "; rising",
                           "the W estimate rises: the Lipschitz constraint is failing, so the critic's scores "
                           "grow instead of measuring a distance", _remedy(method, "unstable"))
    return HealthCheck("w_decreasing", title, FAIL, detail + "; stuck",
                       "the W estimate is stuck at a high value: the critic is not powerful enough or the "
                       "learning rate is too low",
                       "give the critic more capacity (--c-width, --c-depth) or more steps (--n-critic), raise "
                       "--lr-c/--lr-g, or train longer")


def _check_oscillation(gap: np.ndarray, method) -> HealthCheck:
    title = "no wild oscillation"
    n = len(gap)
    q = max(1, n // 4)
    s = gap[q:]  # after the initial transient
    if len(s) < MIN_TICKS:
        return HealthCheck("no_oscillation", title, NA, f"{len(s)} ticks after the transient; need {MIN_TICKS}")
    peak = float(np.abs(gap).max())
    d = np.diff(s)
    if peak == 0:
        return HealthCheck("no_oscillation", title, PASS, "the estimate is constant")
    swing = float(np.median(np.abs(d))) / peak
    travel = float(np.abs(d).sum()) / max(abs(float(s[-1] - s[0])), 1e-12 * peak)
    jump = float(np.abs(d).max()) / peak
    cv = float(np.abs(d).std() / np.abs(d).mean()) if np.abs(d).mean() > 0 else 0.0
    detail = (f"after the first quarter: median tick-to-tick change {swing:.1%} of the peak, path/net "
              f"change {travel:.1f}, largest jump {jump:.0%} of the peak (source's std/mean of |change|: {cv:.2f})")
    if (swing > SWING and travel > ZIGZAG) or jump > SPIKE:
        return HealthCheck("no_oscillation", title, FAIL, detail,
                           "the W estimate oscillates wildly: something is wrong with the Lipschitz constraint "
                           "(or the learning rates are too high for the critic to follow the generator)",
                           _remedy(method, "unstable") + "; or halve --lr-c and --lr-g")
    return HealthCheck("no_oscillation", title, PASS, detail)


def _check_converging(loss: np.ndarray) -> HealthCheck:
    title = "critic converging"
    n = len(loss)
    if n < 2 * MIN_TICKS:
        return HealthCheck("critic_converging", title, NA, f"{n} ticks; need at least {2 * MIN_TICKS}")
    q = max(2, n // 4)
    early_var, late_var = float(loss[:q].var()), float(loss[-q:].var())
    peak = float(np.abs(loss).max())
    detail = f"variance of the critic loss: first quarter {early_var:.3g}, last quarter {late_var:.3g}"
    if late_var < early_var:
        return HealthCheck("critic_converging", title, PASS, detail)
    if math.sqrt(late_var) <= SETTLED * peak:
        return HealthCheck("critic_converging", title, PASS, detail + "; settled")
    return HealthCheck("critic_converging", title, FAIL, detail,
                       "the critic's loss is not settling: the critic and generator are not converging, usually "
                       "learning rates too high for the game, or too few critic steps",
                       "halve --lr-c and --lr-g (Adam betas (0.5, 0.9) as in WGAN-GP), or raise --n-critic")


def _check_explosion(history: list[dict[str, Any]], method) -> HealthCheck:
    title = "no explosion"
    # The generator loss -E[f(G(z))] carries the critic's free additive constant, so it may drift
    # far from 0 harmlessly: only its finiteness is checked.
    keys = ("critic/gap", "loss/critic", "loss/critic_total", "lipschitz/penalty", "loss/generator")
    worst, where, bad = 0.0, None, []
    for key in keys:
        steps, v = series(history, key)
        if not len(v):
            continue
        if not np.isfinite(v).all():
            bad.append(f"{key} NaN/Inf at step {int(steps[~np.isfinite(v)][0])}")
            continue
        if key == "loss/generator":
            continue
        m = float(np.abs(v).max())
        if m > worst:
            worst, where = m, f"{key} at step {int(steps[np.abs(v).argmax()])}"
    if not where and not bad:
        return HealthCheck("no_explosion", title, NA, "no losses recorded")
    detail = f"largest |value| {worst:.4g} ({where}); limit {EXPLOSION:g}" if where else "no finite values"
    if bad or worst >= EXPLOSION:
        if bad:
            detail = "; ".join(bad) + ("; " + detail if where else "")
        return HealthCheck("no_explosion", title, FAIL, detail,
                           "the losses explode: the gradient penalty weight is too low, or a numerical issue "
                           "(learning rate too high, unscaled data)",
                           _remedy(method, "explosion"))
    return HealthCheck("no_explosion", title, PASS, detail)


def _coverage(last: dict[str, Any]) -> list[tuple[float, float, str]]:
    """``(found, total, what)`` for the modes (toy data) and the classes the metrics classifier finds
    among the samples (images) that the last tick measured."""
    out = []
    for found, total, what in (("metrics/modes", "metrics/modes_total", "modes"),
                               ("metrics/classes_covered", "metrics/classes_total", "classes")):
        if isinstance(last.get(found), (int, float)) and last.get(total):
            out.append((last[found], last[total], what))
    return out


def _samples_bad(last: dict[str, Any]) -> tuple[bool | None, str]:
    """Whether the last tick's sample metrics are poor, and the numbers (None: no sample metrics)."""
    coverage = _coverage(last)
    notes = [f"{found} of {total} {what}" for found, total, what in coverage]
    bad, known = any(found < total for found, total, _ in coverage), bool(coverage)
    if isinstance(last.get("metrics/high_quality_pct"), (int, float)):  # shown, not judged: blur is no collapse
        notes.append(f"{last['metrics/high_quality_pct']:.0f}% high quality")
    w1, floor = last.get("metrics/w1"), last.get("metrics/w1_floor")
    if isinstance(w1, (int, float)) and isinstance(floor, (int, float)) and floor > 0:
        known = True
        notes.append(f"exact W1 {w1:.3g} = {w1 / floor:.1f}x the floor")
        bad |= w1 > POOR_W1 * floor
    return (bad if known else None), ", ".join(notes)


def _check_mode_collapse(gap: np.ndarray, history: list[dict[str, Any]]) -> HealthCheck:
    title = "no mode collapse"
    if len(gap) < MIN_TICKS:
        return HealthCheck("no_mode_collapse", title, NA, f"{len(gap)} ticks; need at least {MIN_TICKS}")
    samples_bad, notes = _samples_bad(history[-1])
    q = max(1, len(gap) // 4)
    late, peak = float(gap[-q:].mean()), float(gap.max())
    near_zero = peak > 0 and abs(late) <= NEAR_ZERO * peak
    detail = f"late W estimate {late:.4g}" + (f" ({late / peak:.0%} of its peak)" if peak > 0 else "")
    if samples_bad is None:
        return HealthCheck("no_mode_collapse", title, NA, detail + "; no sample metrics to compare")
    detail += f"; samples: {notes}"
    if near_zero and samples_bad:
        return HealthCheck("no_mode_collapse", title, FAIL, detail,
                           "the W estimate went to zero but the samples are poor: mode collapse (the critic "
                           "no longer sees the missing modes)",
                           "give the critic more capacity or steps (--c-width, --n-critic), use the gradient "
                           "penalty rather than clipping, lower --gp-weight on narrow toy mixtures, or change --seed")
    return HealthCheck("no_mode_collapse", title, PASS, detail)


def _check_missing_modes(history: list[dict[str, Any]], objective: str) -> HealthCheck:
    """Mode collapse from the samples alone, for an objective whose critic gap is no W1 estimate (the
    vanilla GAN's logit gap, SN-GAN's hinge margin): modes or classes missing at the last tick."""
    title = "no mode collapse"
    why = f"the {objective} objective's critic gap is no W1 estimate: judged from the samples alone"
    if len(history) < MIN_TICKS:
        return HealthCheck("no_mode_collapse", title, NA, f"{len(history)} ticks; need at least {MIN_TICKS}")
    coverage = _coverage(history[-1])
    notes = [f"{found} of {total} {what}" for found, total, what in coverage]
    missing = [f"{total - found} of {total} {what}" for found, total, what in coverage if found < total]
    if not notes:
        return HealthCheck("no_mode_collapse", title, NA, f"{why}, and there are no sample metrics")
    detail = f"samples: {', '.join(notes)} ({why})"
    if missing:
        return HealthCheck("no_mode_collapse", title, FAIL, detail,
                           f"the generator misses {' and '.join(missing)}: mode collapse",
                           "use a Wasserstein critic with the gradient penalty (--variant wgan-gp), lower the "
                           "learning rates (--lr-g, --lr-c), train longer, or change --seed")
    return HealthCheck("no_mode_collapse", title, PASS, detail)


def _check_grad_norm(history: list[dict[str, Any]], method) -> HealthCheck:
    from wgan.diagnostics.gradnorm import grad_norm_verdict

    title = "gradient norm at interpolates near 1"
    key = "grad_norm/mean"
    _, v = series(history, key)
    if not len(v):
        key = "lipschitz/grad_norm_mean"  # the training steps' own norms (gradient penalty only)
        _, v = series(history, key)
    if not len(v):
        return HealthCheck("grad_norm", title, NA, "no gradient norms recorded")
    q = max(1, len(v) // 4)
    mean = float(np.mean(v[-q:]))
    verdict = grad_norm_verdict(mean, method or "gp")
    detail = f"last-quarter mean {mean:.3f} ({verdict.level}; |mean - 1| < 0.1 excellent, < 0.3 acceptable)"
    if verdict.level == "n/a":
        return HealthCheck("grad_norm", title, NA, f"mean {mean:.3f}: {verdict.meaning}")
    if verdict.level == "poor":
        return HealthCheck("grad_norm", title, WARN, detail, verdict.meaning, verdict.remedy)
    return HealthCheck("grad_norm", title, PASS, detail)


# ---------------------------------------------------------------------------------------- verdict
def health_verdict(history: list[dict[str, Any]], config=None) -> HealthVerdict:
    """Judge a run from its per-tick records, as the source texts read WGAN training curves.

    Checks, each ``pass``, ``warn``, ``fail`` or ``n/a``:

    * ``w_decreasing``: last-quarter mean of ``critic/gap`` at least 5% below the first-quarter
      mean (or flat near zero: below 10% of its peak). Fails as *rising* (Lipschitz constraint failing) or
      *stuck* (critic too weak,
      learning rate too low).
    * ``no_oscillation``: after the first quarter, no tick-to-tick jump above half the peak and no
      zigzag whose median step exceeds 10% of the peak. (The source's std/mean of the changes,
      < 2, is reported; alone it flags a single early drop in a smooth curve.)
    * ``critic_converging``: variance of ``loss/critic`` lower in the last quarter than in the
      first (or already settled).
    * ``no_explosion``: every loss finite and below 100 in absolute value (the source's limit).
      Fails with: penalty weight too low or numerical issues.
    * ``no_mode_collapse``: not (W estimate near zero while the samples are poor: a mode or class
      missed, or an exact W1 above 10x its floor).
    * ``grad_norm``: the mean gradient norm at interpolates, excellent/acceptable pass, poor warns
      (gradient penalty only; ``n/a`` for clipping, spectral norm and no constraint).

    The W-estimate checks apply to the Wasserstein objective; for the other objectives the critic
    gap is no distance estimate and they are ``n/a``, and ``no_mode_collapse`` is judged from the
    samples alone: it fails when modes (toy data) or classes (images) are missing at the last tick.

    Args:
        history: tick records (``trainer.history`` or the lines of ``metrics.jsonl``).
        config: the run's :class:`~wgan.config.TrainConfig` or its dict (``config.json``); used to
            name the Lipschitz method in the advice. Optional.

    Returns:
        A :class:`HealthVerdict`; ``str(verdict)`` renders it as text.

    Example:
        >>> rising = [{"step": i, "critic/gap": 0.5 * i, "loss/critic": -0.5 * i} for i in range(1, 9)]
        >>> [c.status for c in health_verdict(rising).checks][0]
        'fail'

    References:
        The source texts on WGAN training curves (``analyze_wgan_training``: healthy and bad signs)
        and on gradient-norm analysis at interpolates; Gulrajani et al. 2017, sec. 4.
    """
    history = [r for r in history if isinstance(r, dict)]
    method, objective = _method(config, history)
    _, gap = series(history, "critic/gap")
    _, loss = series(history, "loss/critic")
    if not len(loss):
        loss = -gap
    finite_gap = gap[np.isfinite(gap)]
    checks: list[HealthCheck] = []
    if objective not in (None, "wasserstein"):
        why = f"the {objective} objective's critic gap is no W1 estimate"
        checks += [HealthCheck("w_decreasing", "W estimate decreasing", NA, why),
                   HealthCheck("no_oscillation", "no wild oscillation", NA, why),
                   _check_converging(loss[np.isfinite(loss)]),
                   _check_explosion(history, method),
                   _check_missing_modes(history, objective)]
    else:
        checks += [_check_w_decreasing(finite_gap, method),
                   _check_oscillation(finite_gap, method),
                   _check_converging(loss[np.isfinite(loss)]),
                   _check_explosion(history, method),
                   _check_mode_collapse(finite_gap, history)]
    checks.append(_check_grad_norm(history, method))
    agreement = gap_w1_agreement(history)
    corr = agreement["pearson"] if agreement else None
    return HealthVerdict(checks, len(history), corr, agreement["ratio"] if agreement and corr is not None else None)


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The tick records of ``RUN_DIR/metrics.jsonl`` (unreadable lines skipped)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(path)
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def run_health_verdict(run_dir: str | Path) -> HealthVerdict:
    """:func:`health_verdict` of a run directory (``metrics.jsonl`` and ``config.json``)."""
    run_dir = Path(run_dir)
    config = None
    if (run_dir / "config.json").is_file():
        try:
            config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            config = None
    return health_verdict(read_history(run_dir), config)
