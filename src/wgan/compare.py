r"""Every variant on the same data, seeds and budget: a measured table, one figure, a report.

The source texts end with a qualitative table of the three Lipschitz methods (weight clipping: very
low cost, moderate stability; gradient penalty: high cost, high stability; spectral norm: low cost,
very high stability). :func:`compare` measures it instead. Each variant is trained once per seed
with the same data set, the same seeds (so the same initial latent batch and evaluation data) and
the same budget, either

* ``steps``: generator steps (each variant does its own number of critic steps per generator step), or
* ``seconds``: wall time of the training steps alone (evaluation and diagnostics excluded), so a
  variant that costs more per step gets fewer steps: equal compute.

Per variant, over seeds (mean :math:`\pm` sample standard deviation), the table reports: time per
generator step; the final toy metrics on 2,500 samples (modes captured, % high quality, exact W1;
VEEGAN / PacGAN protocol) or the image metrics; the critic's empirical Lipschitz constant and mean
gradient norm at interpolates (last tick, :mod:`wgan.diagnostics`); Pearson's r between the critic's
W estimate and the exact W1 over the ticks; and the health verdict
(:func:`wgan.diagnostics.health_verdict`). A run that raises (divergence, a bad recipe) is recorded
as failed with its reason and the comparison goes on.

Files written to ``out`` (re-rendered from the saved runs, without training, by
:func:`load_compare` and :func:`write_outputs`, or ``wgan compare --rebuild OUT``): ``table.md``, ``table.csv`` (one row per variant), ``runs.csv`` (one row
per run), ``results.json``, ``compare.png`` (samples of every variant side by side above their W
estimate curves), ``report.html``, and ``runs/VARIANT-sSEED/`` (each run's own directory).

Example:
    >>> result = compare("ring8", ["wgan-gp", "sngan"], seeds=1, steps=20, ticks=2)  # doctest: +SKIP
    >>> print(result.markdown())  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

#: The variants compared by default: the vanilla GAN and the three Lipschitz methods.
DEFAULT_VARIANTS = ("gan", "wgan", "wgan-gp", "sngan")

#: The default budget: seconds of training per run. 4 variants x 3 seeds x 2 toy data sets = 24 runs,
#: about 24 x (60 s + ~15 s of evaluation) = 30 minutes on one core.
DEFAULT_SECONDS = 60.0

#: Evaluations (ticks) per run: the points of the W-estimate curves and of their correlation with W1.
DEFAULT_TICKS = 10

#: With a time budget: steps of the first chunk, which measures the speed (plus one early evaluation).
CALIBRATION_STEPS = 20

_TOY_COLUMNS = (  # (key in the run summary, column title, format)
    ("metrics/modes", "modes", "{:.1f}"),
    ("metrics/high_quality_pct", "% high quality", "{:.1f}"),
    ("metrics/w1", "exact W1", "{:.3f}"),
)
_DIAG_COLUMNS = (
    ("lipschitz/empirical", "empirical Lipschitz", "{:.3g}"),
    ("grad_norm/mean", "grad-norm mean", "{:.3g}"),
    ("w_corr", "r(W est., W1)", "{:.2f}"),
)


@dataclass
class RunResult:
    """One training run of the comparison.

    Attributes:
        variant, seed: what was trained.
        ok: ``False`` when the run raised; ``error`` then holds the reason (one line).
        steps: generator steps done.
        train_seconds: wall time of the training steps (ticks excluded).
        step_ms: ``1000 * train_seconds / steps``.
        final: the last tick's record (metrics, diagnostics), ``{}`` if no tick completed.
        history: every tick record.
        verdict: :meth:`HealthVerdict.to_dict` of the run, ``None`` without ticks.
        samples: the final generated samples from the fixed latent batch (toy: (n, 2); images: up to 64).
        run_dir: the run's directory, or ``None`` in memory-only use.
    """

    variant: str
    seed: int
    ok: bool = True
    error: str | None = None
    steps: int = 0
    train_seconds: float = 0.0
    step_ms: float = float("nan")
    final: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    verdict: dict[str, Any] | None = None
    samples: np.ndarray | None = None
    run_dir: str | None = None
    stopped_by: str | None = None  # a signal (Ctrl-C) ended the run early; the comparison stops there

    def value(self, key: str) -> float:
        """A numeric result by key: ``step_ms``, ``steps``, ``w_corr`` or a key of the last tick; NaN if absent."""
        if key == "step_ms":
            return self.step_ms
        if key == "steps":
            return float(self.steps)
        if key == "w_corr":
            return w_estimate_correlation(self.history)
        v = self.final.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, without the history and samples (they live in the run's folder)."""
        return {"variant": self.variant, "seed": self.seed, "ok": self.ok, "error": self.error, "steps": self.steps,
                "train_seconds": self.train_seconds, "step_ms": self.step_ms, "final": self.final,
                "verdict": self.verdict, "run_dir": self.run_dir}


@dataclass
class CompareResult:
    """All runs of a comparison and how they were set up; renders the table.

    Attributes:
        data: the data set.
        variants: in table order.
        seeds: the seeds every variant was trained with.
        budget: ``{"steps": N}`` or ``{"seconds": S}``, plus ``ticks``.
        runs: one :class:`RunResult` per (variant, seed).
        setup: the resolved configuration of each variant (the first seed's), for the record.
        out: the output folder, or ``None``.
    """

    data: str
    variants: list[str]
    seeds: list[int]
    budget: dict[str, Any]
    runs: list[RunResult]
    setup: dict[str, dict[str, Any]] = field(default_factory=dict)
    out: Path | None = None
    w1_floor: float | None = None
    modes_total: int | None = None

    def runs_of(self, variant: str) -> list[RunResult]:
        """The runs of one variant, in seed order."""
        return [r for r in self.runs if r.variant == variant]

    @property
    def toy(self) -> bool:
        """True when the runs report the toy protocol (modes, exact W1)."""
        return any("metrics/w1" in r.final or "metrics/modes" in r.final for r in self.runs)

    def metric_columns(self) -> list[tuple[str, str, str]]:
        """The sample-quality columns: the toy protocol's, or every numeric image metric seen."""
        if self.toy:
            return [c for c in _TOY_COLUMNS if any(c[0] in r.final for r in self.runs)]
        keys: list[str] = []
        for r in self.runs:
            for k, v in r.final.items():
                if k.startswith("metrics/") and isinstance(v, (int, float)) and not isinstance(v, bool) and k not in keys:
                    keys.append(k)
        return [(k, k.split("/", 1)[1].replace("_", " "), "{:.4g}") for k in keys]

    def columns(self) -> list[tuple[str, str, str]]:
        """``(key, title, format)`` of every numeric column, in table order."""
        return ([("steps", "generator steps", "{:.0f}"), ("step_ms", "ms / generator step", "{:.2f}")]
                + self.metric_columns() + list(_DIAG_COLUMNS))

    def rows(self) -> list[dict[str, Any]]:
        """One dict per variant: ``{column key: (mean, std, n)}`` over successful runs, plus labels."""
        from wgan.variants import VARIANTS

        out = []
        for v in self.variants:
            runs = self.runs_of(v)
            ok = [r for r in runs if r.ok]
            recipe = VARIANTS.get(v)
            n_critic = self.setup.get(v, {}).get("n_critic", recipe.n_critic if recipe else None)
            row: dict[str, Any] = {
                "variant": v,
                "method": f"{recipe.objective} + {recipe.lipschitz}" if recipe else "?",
                "n_critic": "" if n_critic is None else str(n_critic),
                "runs": f"{len(ok)}/{len(runs)}",
                "failed": [(r.seed, r.error) for r in runs if not r.ok],
                "health": _health_cell([r for r in runs if r.verdict is not None]),
            }
            for key, _, _ in self.columns():
                vals = np.array([r.value(key) for r in ok], dtype=float)
                vals = vals[np.isfinite(vals)]
                if len(vals) == 0:
                    row[key] = (float("nan"), float("nan"), 0)
                else:
                    std = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
                    row[key] = (float(vals.mean()), std, len(vals))
            out.append(row)
        return out

    # ------------------------------------------------------------------ renderings
    def markdown(self) -> str:
        """The table in GitHub markdown, with the failures listed under it."""
        cols = self.columns()
        head = ["variant", "objective + Lipschitz", "n_critic", "runs ok"] + [c[1] for c in cols] + ["health"]
        lines = ["| " + " | ".join(head) + " |",
                 "|" + "|".join(["---"] * 2 + ["---:"] * (2 + len(cols)) + ["---"]) + "|"]
        for row in self.rows():
            cells = [row["variant"], row["method"], row["n_critic"], row["runs"]]
            for key, _, fmt in cols:
                cells.append(_pm(row[key], fmt))
            cells.append(row["health"] or "–")
            lines.append("| " + " | ".join(cells) + " |")
        notes = [f"\n{self.describe_setup()}"]
        failures = [(row["variant"], seed, err) for row in self.rows() for seed, err in row["failed"]]
        if failures:
            notes.append("\nFailed runs:\n")
            notes += [f"- `{v}` seed {s}: {err}" for v, s, err in failures]
        return "\n".join(lines) + "\n" + "\n".join(notes) + "\n"

    def describe_setup(self) -> str:
        """The paragraph under the table: data, seeds, budget, evaluations and what the columns mean."""
        ticks = self.budget.get("ticks", DEFAULT_TICKS)
        if self.budget.get("steps"):
            budget = f"{self.budget['steps']} generator steps"
            evals = f"an evaluation every {max(1, self.budget['steps'] // ticks)} steps"
        else:
            budget = f"{self.budget['seconds']:g} s of training (evaluation excluded)"
            evals = (f"{ticks + 1} evaluations (after the first {CALIBRATION_STEPS} steps, then {ticks} evenly "
                     "spaced in training time)")
        parts = [f"Data `{self.data}`, seeds {', '.join(map(str, self.seeds))}, budget {budget} per run, "
                 f"{evals}. Mean ± std over seeds (sample std; no ± for one seed)."]
        if self.toy:
            floor = f"; a perfect generator scores W1 ≈ {self.w1_floor:.3f} (data vs data)" if self.w1_floor else ""
            total = f" of {self.modes_total}" if self.modes_total else ""
            parts.append(f"Modes captured{total} and % high quality on the fixed latent batch (VEEGAN protocol: "
                         f"a sample is high quality within 3 std of its nearest centre){floor}.")
        parts.append("Empirical Lipschitz constant and grad-norm mean: the critic at the last evaluation, at "
                     "interpolates of real and generated points. r(W est., W1): Pearson correlation of the critic "
                     "gap E[f(x_real)] - E[f(x_fake)] with the exact W1 over the evaluations after the first (the "
                     "first catches the critic before it has learned); for gan and sngan the gap is a logit or "
                     "hinge margin, not a W1 estimate.")
        return " ".join(parts)

    def csv(self) -> str:
        """One row per variant: mean and std columns for every measured value."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        cols = self.columns()
        head = ["variant", "method", "n_critic", "runs_ok", "runs_total"]
        for key, _, _ in cols:
            name = key.replace("/", "_")
            head += [f"{name}_mean", f"{name}_std"]
        head += ["health", "failures"]
        w.writerow(head)
        for row in self.rows():
            ok, total = row["runs"].split("/")
            line = [row["variant"], row["method"], row["n_critic"], ok, total]
            for key, _, _ in cols:
                m, s, n = row[key]
                line += [_num(m), _num(s) if n else ""]
            line += [row["health"], "; ".join(f"seed {s}: {e}" for s, e in row["failed"])]
            w.writerow(line)
        return buf.getvalue()

    def runs_csv(self) -> str:
        """One row per run: the raw values behind the table."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        keys = [c[0] for c in self.columns()]
        w.writerow(["variant", "seed", "ok"] + [k.replace("/", "_") for k in keys] + ["health", "error", "run_dir"])
        for r in self.runs:
            w.writerow([r.variant, r.seed, int(r.ok)] + [_num(r.value(k)) for k in keys]
                       + [(r.verdict or {}).get("status", ""), r.error or "", r.run_dir or ""])
        return buf.getvalue()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the set-up and every run (``results.json``; :func:`load_compare` reads it back)."""
        return {"data": self.data, "variants": self.variants, "seeds": self.seeds, "budget": self.budget,
                "w1_floor": self.w1_floor, "setup": self.setup, "runs": [r.to_dict() for r in self.runs]}


def w_estimate_correlation(history: list[dict[str, Any]], key: str = "critic/gap") -> float:
    r"""Pearson's r between the critic's W estimate and the exact W1 over a run's evaluations.

    .. math:: r = \mathrm{corr}_t\big(\hat W_t, W_1(t)\big), \qquad
              \hat W_t = E[f(x_{real})] - E[f(x_{fake})] \text{ (mean over the tick's critic steps)}

    The first evaluation is left out: it comes after a few steps (20 with a time budget), when the
    critic has not learned anything yet and its gap is small while W1 is at its largest, one point
    that would dominate the correlation of an otherwise tracking curve.

    Returns:
        r, or NaN with fewer than 3 evaluations after the first (or no exact W1: image data).
    """
    from wgan.diagnostics.health import pearson

    pairs = [(r[key], r["metrics/w1"]) for r in history[1:]
             if isinstance(r.get(key), (int, float)) and isinstance(r.get("metrics/w1"), (int, float))]
    if len(pairs) < 3:
        return float("nan")
    r = pearson(*zip(*pairs))
    return float("nan") if r is None else float(r)


def _num(v: float) -> str:
    return "" if v is None or not math.isfinite(v) else f"{v:.6g}"


def _pm(cell: tuple[float, float, int], fmt: str) -> str:
    m, s, n = cell
    if n == 0:
        return "–"
    return fmt.format(m) if n == 1 else f"{fmt.format(m)} ± {fmt.format(s)}"


def _health_cell(runs: list[RunResult]) -> str:
    """``"2 healthy, 1 unhealthy (w_decreasing)"``: statuses by count, and the failing checks."""
    if not runs:
        return ""
    counts: dict[str, int] = {}
    failing: dict[str, int] = {}
    for r in runs:
        st = r.verdict.get("status", "unknown")
        counts[st] = counts.get(st, 0) + 1
        for c in r.verdict.get("checks", []):
            if c.get("status") == "fail":
                failing[c["name"]] = failing.get(c["name"], 0) + 1
    order = ["healthy", "healthy with warnings", "unhealthy"]
    order += sorted(s for s in counts if s not in order)  # "too early to judge", "unknown", ...
    text = ", ".join(f"{counts[s]} {s}" for s in order if s in counts)
    if failing:
        text += " (fails: " + ", ".join(f"{k}" + (f" x{n}" if n > 1 else "") for k, n in failing.items()) + ")"
    return text


# ---------------------------------------------------------------------------------------- running
def _one_line(e: BaseException) -> str:
    msg = " ".join(str(e).split())
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def _train_for_seconds(trainer, seconds: float, ticks: int) -> None:
    """Train until ``seconds`` of training-step time, evaluating at even time marks.

    A first chunk of :data:`CALIBRATION_STEPS` steps (ending in an evaluation: the curves' first
    point) measures the speed; then each chunk ends in a tick (``train(steps=...)`` ticks at its last
    step) and its length comes from the speed measured so far, so the ticks land close to
    ``k * seconds / ticks``. Only the training steps count (``time/step_ms`` of the ticks).
    """
    spent, ms = 0.0, None
    marks = [None] + [seconds * k / ticks for k in range(1, ticks + 1)]
    for target in marks:
        if target is None:
            n = CALIBRATION_STEPS
        else:
            if spent >= target:
                continue
            n = max(1, int(round((target - spent) * 1000 / max(ms, 1e-3))))
        start = trainer.step
        trainer.train(steps=start + n)
        if trainer.step == start or trainer._stop_signal is not None:  # stopped by a signal
            return
        rec = trainer.history[-1] if trainer.history else {}
        chunk_ms = float(rec.get("time/step_ms", ms or 1.0))
        spent += chunk_ms * (trainer.step - start) / 1000
        ms = chunk_ms


def _train_seconds(history: list[dict[str, Any]]) -> tuple[float, int]:
    """(seconds of training steps, steps) summed over tick records."""
    total, prev = 0.0, 0
    for rec in history:
        step = int(rec.get("step", prev))
        ms = rec.get("time/step_ms")
        if isinstance(ms, (int, float)) and math.isfinite(ms):
            total += ms * (step - prev) / 1000
        prev = step
    return total, prev


def run_one(variant: str, seed: int, data: str, budget: dict[str, Any], overrides: dict[str, Any] | None = None,
            run_dir: Path | None = None) -> tuple[RunResult, Any]:
    """Train one (variant, seed) under the budget; never raises for a failing run.

    Returns:
        ``(RunResult, config)``: the config is ``None`` when it could not be resolved.
    """
    from wgan.config import resolve
    from wgan.diagnostics.health import health_verdict
    from wgan.training.trainer import Trainer

    result = RunResult(variant, seed, run_dir=str(run_dir) if run_dir is not None else None)
    ticks = int(budget.get("ticks", DEFAULT_TICKS))
    fields = dict(overrides or {})
    fields.update(variant=variant, data=data, seed=seed)
    if budget.get("steps"):
        fields.update(steps=int(budget["steps"]), tick_every_steps=max(1, int(budget["steps"]) // ticks))
    else:
        cap = 10**9  # the time budget ends the run; ticks are placed by _train_for_seconds
        fields.update(steps=cap, tick_every_steps=cap)
    config = None
    trainer = None
    try:
        config = resolve(fields)
        trainer = Trainer(config, run_dir=run_dir)
        if budget.get("steps"):
            trainer.train()
        else:
            _train_for_seconds(trainer, float(budget["seconds"]), ticks)
    except Exception as e:  # noqa: BLE001 - any failure of one run is recorded, the comparison goes on
        result.ok = False
        result.error = _one_line(e)
        if run_dir is not None:
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
                (run_dir / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
            except OSError:
                pass
    if trainer is not None:
        result.stopped_by = trainer._stop_signal
        if result.stopped_by and result.ok:
            result.ok, result.error = False, f"stopped by {result.stopped_by} after {trainer.step} steps"
        result.history = list(trainer.history)
        result.train_seconds, steps = _train_seconds(result.history)
        result.steps = trainer.step
        result.step_ms = 1000 * result.train_seconds / steps if steps else float("nan")
        result.final = dict(result.history[-1]) if result.history else {}
        result.final.pop("grad_norm/hist", None)
        if result.history:
            result.verdict = health_verdict(result.history, config).to_dict()
        if result.ok:
            try:
                x = trainer.generate()
                result.samples = x[:64].cpu().numpy() if x.dim() > 2 else x.cpu().numpy()
                if run_dir is not None:
                    np.save(run_dir / "final_samples.npy", result.samples)
            except Exception as e:  # noqa: BLE001
                result.ok, result.error = False, "sampling after training: " + _one_line(e)
    return result, config


def compare(data: str = "ring8", variants=DEFAULT_VARIANTS, seeds: int | list[int] = 3, steps: int | None = None,
            seconds: float | None = None, out: str | Path | None = None, overrides: dict[str, Any] | None = None,
            ticks: int = DEFAULT_TICKS, log: Callable[[str], None] | None = None) -> CompareResult:
    """Train every variant on the same data, seeds and budget; tabulate, plot and report.

    Args:
        data: a data spec (``ring8``, ``grid25``, ``mnist:DIR`` ...).
        variants: names of :data:`wgan.variants.VARIANTS`, in table order.
        seeds: a count (seeds 0 .. n-1) or the list of seeds; every variant gets the same ones.
        steps: budget in generator steps per run; or
        seconds: budget in seconds of training per run (default :data:`DEFAULT_SECONDS` when
            neither is given).
        out: folder for the files (must not exist or be empty); ``None`` writes nothing.
        overrides: config fields for every run (e.g. ``{"preset": "veegan", "batch_size": 128}``);
            ``variant``, ``data``, ``seed``, ``steps`` and ``tick_every_steps`` are set here.
        ticks: evaluations per run.
        log: called with one line per finished run (``print`` in the CLI).

    Returns:
        A :class:`CompareResult`; with ``out``, the files are written too.

    Raises:
        ValueError: an unknown variant, a bad budget, or ``out`` already holding files.
    """
    from wgan.data import is_toy
    from wgan.variants import VARIANTS

    variants = list(variants)
    if not variants:
        raise ValueError("give at least one variant")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {', '.join(unknown)}; accepted: {', '.join(VARIANTS)}")
    if len(set(variants)) != len(variants):
        raise ValueError(f"variants repeated: {', '.join(variants)}")
    seed_list = list(range(int(seeds))) if isinstance(seeds, (int, np.integer)) else [int(s) for s in seeds]
    if not seed_list or any(s < 0 for s in seed_list):
        raise ValueError(f"seeds must be a count >= 1 or a list of seeds >= 0, got {seeds!r}")
    if steps is not None and seconds is not None:
        raise ValueError("give a budget in steps or in seconds, not both")
    if steps is None and seconds is None:
        seconds = DEFAULT_SECONDS
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if seconds is not None and not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    if ticks < 1:
        raise ValueError(f"ticks must be >= 1, got {ticks}")
    budget: dict[str, Any] = {"steps": steps} if steps is not None else {"seconds": float(seconds)}
    budget["ticks"] = ticks
    overrides = dict(overrides or {})
    if "preset" not in overrides and is_toy(data):
        overrides["preset"] = "veegan"
    if not overrides.get("threads") and is_toy(data):
        # equal compute: by default the compiled wgan-gp step would take every core and the other
        # recipes' small MLPs one (images: every variant takes every core anyway)
        overrides["threads"] = 1
    out_path = Path(out) if out is not None else None
    if out_path is not None:
        if out_path.exists() and (not out_path.is_dir() or any(out_path.iterdir())):
            raise ValueError(f"out {str(out_path)!r} exists and is not an empty folder; choose a new one")
        out_path.mkdir(parents=True, exist_ok=True)

    runs: list[RunResult] = []
    setup: dict[str, dict[str, Any]] = {}
    total = len(variants) * len(seed_list)
    t_start = time.perf_counter()
    stopped = False
    for seed in seed_list:  # seed-major: a partial comparison already holds every variant
        if stopped:
            break
        for variant in variants:
            run_dir = out_path / "runs" / f"{variant}-s{seed}" if out_path is not None else None
            result, config = run_one(variant, seed, data, budget, overrides, run_dir)
            runs.append(result)
            if config is not None and variant not in setup:
                setup[variant] = config.to_dict()
            if log is not None:
                log(f"[{len(runs)}/{total}] {_run_line(result)}  ({time.perf_counter() - t_start:.0f} s elapsed)")
            if result.stopped_by:
                stopped = True
                if log is not None:
                    log(f"stopped by {result.stopped_by}: writing the {len(runs)} run(s) done so far")
                break
    order = {v: i for i, v in enumerate(variants)}
    runs.sort(key=lambda r: (order[r.variant], seed_list.index(r.seed)))
    seed_list = [s for s in seed_list if any(r.seed == s for r in runs)]
    floors = [r.final.get("metrics/w1_floor") for r in runs if isinstance(r.final.get("metrics/w1_floor"), float)]
    totals = [r.final.get("metrics/modes_total") for r in runs if r.final.get("metrics/modes_total")]
    result = CompareResult(data, variants, seed_list, budget, runs, setup, out_path,
                           w1_floor=float(np.mean(floors)) if floors else None,
                           modes_total=int(totals[0]) if totals else None)
    if out_path is not None:
        write_outputs(result)
    return result


def _run_line(r: RunResult) -> str:
    head = f"{r.variant} seed {r.seed}: "
    if not r.ok:
        return head + f"FAILED after {r.steps} steps: {r.error}"
    parts = [f"{r.steps} steps, {r.step_ms:.2f} ms/step"]
    f = r.final
    if "metrics/modes" in f:
        parts.append(f"modes {f['metrics/modes']}/{f.get('metrics/modes_total', '?')}")
    if "metrics/high_quality_pct" in f:
        parts.append(f"hq {f['metrics/high_quality_pct']:.1f}%")
    if "metrics/w1" in f:
        parts.append(f"W1 {f['metrics/w1']:.3f}")
    if r.verdict:
        parts.append(r.verdict.get("status", ""))
    return head + ", ".join(parts)


def load_compare(out: str | Path) -> CompareResult:
    """Rebuild a :class:`CompareResult` from a comparison folder, to re-render its files.

    Reads ``results.json`` and, per run, ``runs/VARIANT-sSEED/metrics.jsonl`` (the tick records) and
    ``final_samples.npy``. Nothing is retrained.

    Raises:
        FileNotFoundError: ``out`` holds no ``results.json``.
    """
    from wgan.diagnostics.health import read_history

    out = Path(out)
    path = out / "results.json"
    if not path.is_file():
        raise FileNotFoundError(path)
    d = json.loads(path.read_text(encoding="utf-8"))
    runs = []
    for rd in d["runs"]:
        step_ms = rd.get("step_ms")
        r = RunResult(rd["variant"], int(rd["seed"]), ok=bool(rd["ok"]), error=rd.get("error"),
                      steps=int(rd.get("steps") or 0), train_seconds=float(rd.get("train_seconds") or 0.0),
                      step_ms=float("nan") if step_ms is None else float(step_ms), final=rd.get("final") or {},
                      verdict=rd.get("verdict"), run_dir=rd.get("run_dir"))
        folder = out / "runs" / f"{r.variant}-s{r.seed}"
        if (folder / "metrics.jsonl").is_file():
            r.history = read_history(folder)
        if (folder / "final_samples.npy").is_file():
            r.samples = np.load(folder / "final_samples.npy", allow_pickle=False)
        runs.append(r)
    totals = [r.final.get("metrics/modes_total") for r in runs if r.final.get("metrics/modes_total")]
    return CompareResult(d["data"], list(d["variants"]), [int(s) for s in d["seeds"]], d["budget"], runs,
                         d.get("setup") or {}, out, w1_floor=d.get("w1_floor"),
                         modes_total=int(totals[0]) if totals else None)


# ---------------------------------------------------------------------------------------- outputs
def write_outputs(result: CompareResult) -> dict[str, Path]:
    """Write table.md, table.csv, runs.csv, results.json, compare.png and report.html to ``result.out``."""
    from wgan.training.checkpoint import atomic_write_text

    out = result.out
    assert out is not None
    paths = {name: out / name for name in ("table.md", "table.csv", "runs.csv", "results.json", "compare.png",
                                           "report.html")}
    atomic_write_text(paths["table.md"], result.markdown())
    atomic_write_text(paths["table.csv"], result.csv())
    atomic_write_text(paths["runs.csv"], result.runs_csv())
    atomic_write_text(paths["results.json"], json.dumps(result.to_dict(), indent=2, default=_json_default))
    png = figure_png(result)
    paths["compare.png"].write_bytes(png)
    atomic_write_text(paths["report.html"], report_html(result, png))
    return paths


def _json_default(o):
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)


def _data_for_figure(data: str, overrides: dict[str, Any]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Real samples and mode centres for the scatter panels (toy data only)."""
    import torch

    from wgan.config import resolve
    from wgan.data import is_toy, load_data

    if not is_toy(data):
        return None, None
    config = resolve({**overrides, "data": data})
    source = load_data(config)
    x = source.sample(2500, torch.Generator().manual_seed(12345)).cpu().numpy()
    centers = source.centers.cpu().numpy() if source.centers is not None else None
    return x, centers


def figure_png(result: CompareResult) -> bytes:
    """The comparison figure (see :func:`wgan.plots.compare.compare_png`) as PNG bytes."""
    from wgan.plots.compare import compare_png

    first_setup = next(iter(result.setup.values()), {})
    overrides = {k: first_setup[k] for k in ("data_scale", "data_std") if first_setup.get(k) is not None}
    x_real, centers = _data_for_figure(result.data, overrides)
    # the distance to the data each evaluation measured: the exact W1 on toy data, else the
    # classifier-feature Frechet distance on images
    history = [rec for r in result.runs for rec in r.history]
    if any("metrics/w1" in rec for rec in history):
        key, label, floor = "metrics/w1", "exact W1", result.w1_floor
    else:
        key, label = "metrics/classifier_fd", "classifier FD"
        floors = [rec["metrics/classifier_fd_floor"] for rec in history if "metrics/classifier_fd_floor" in rec]
        floor = floors[-1] if floors else None  # real training images against the test images
    panels = []
    for v in result.variants:
        runs = result.runs_of(v)
        shown = next((r for r in runs if r.ok and r.samples is not None), None)
        curves = []
        for r in runs:
            steps = [rec.get("step") for rec in r.history]
            curves.append({"seed": r.seed, "ok": r.ok, "steps": steps,
                           "gap": [rec.get("critic/gap", float("nan")) for rec in r.history],
                           "distance": [rec.get(key, float("nan")) for rec in r.history]})
        errors = [f"seed {r.seed}: {r.error}" for r in runs if not r.ok]
        panels.append({"variant": v, "samples": shown.samples if shown is not None else None,
                       "seed": shown.seed if shown is not None else None, "curves": curves, "errors": errors})
    budget = (f"{result.budget['steps']} steps" if result.budget.get("steps")
              else f"{result.budget['seconds']:g} s of training")
    title = f"{result.data}: {len(result.seeds)} seed(s), {budget} per run"
    return compare_png(panels, x_real=x_real, centers=centers, title=title, floor=floor, distance_label=label)


def report_html(result: CompareResult, png: bytes | None = None) -> str:
    """A self-contained page: the set-up, the table, the figure, the failures and each run's verdict."""
    import base64
    import html

    if png is None:
        png = figure_png(result)
    cols = result.columns()
    head = "".join(f"<th>{html.escape(h)}</th>" for h in
                   ["variant", "objective + Lipschitz", "n_critic", "runs ok"] + [c[1] for c in cols] + ["health"])
    body = []
    for row in result.rows():
        cells = ([row["variant"], row["method"], row["n_critic"], row["runs"]] + [_pm(row[k], f) for k, _, f in cols]
                 + [row["health"]])
        body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    failures = [f"<li><code>{html.escape(r.variant)}</code> seed {r.seed}: {html.escape(r.error or '')}</li>"
                for r in result.runs if not r.ok]
    details = []
    for r in result.runs:
        if r.verdict is None:
            continue
        lines = [f"{r.verdict.get('status', '?').upper()}"]
        for c in r.verdict.get("checks", []):
            lines.append(f"  [{c['status']}] {c['title']}: {c['detail']}")
        corr = r.value("w_corr")
        if math.isfinite(corr):
            lines.append(f"  critic gap vs exact W1 after the first evaluation: r = {corr:.3f}")
        link = f" (<code>{html.escape(r.run_dir)}</code>; <code>wgan report</code> it for the full page)" if r.run_dir else ""
        details.append(f"<details><summary>{html.escape(r.variant)} seed {r.seed}: "
                       f"{html.escape(r.verdict.get('status', '?'))}{link}</summary>"
                       f"<pre>{html.escape(chr(10).join(lines))}</pre></details>")
    setup = json.dumps(result.setup, indent=2, sort_keys=True, default=_json_default)
    css = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#1f2328}"
           "table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #d0d7de;padding:.25em .5em;"
           "text-align:right}td:first-child,td:nth-child(2),td:last-child,th{text-align:left}th{background:#f6f8fa}"
           "img{max-width:100%;border:1px solid #d0d7de}pre{background:#f6f8fa;padding:.6em;font-size:.8em;"
           "overflow:auto}")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>wgan compare: {html.escape(result.data)}</title><style>{css}</style></head><body>",
        f"<h1>wgan compare: {html.escape(result.data)}</h1>",
        f"<p>{html.escape(result.describe_setup().replace('`', ''))}</p>",
        f"<table><tr>{head}</tr>{''.join(body)}</table>",
    ]
    if failures:
        parts.append(f"<h2>Failed runs</h2><ul>{''.join(failures)}</ul>")
    parts += [
        "<h2>Samples and W-estimate curves</h2>",
        f"<img id='compare-figure' alt='samples and W-estimate curves' "
        f"src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>",
        "<h2>Health of each run</h2>", "".join(details) or "<p>No run completed a tick.</p>",
        "<h2>Configurations (first seed)</h2>", f"<pre>{html.escape(setup)}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)
