"""Running a comparison: every (variant, seed) trained under the same budget, one after the other.

A run that raises (divergence, a bad recipe) is recorded as failed with its reason and the
comparison goes on; a signal (Ctrl-C) ends the comparison after the run it interrupted, and what is
done so far is written.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from wgan.compare.aggregate import train_seconds
from wgan.compare.files import run_folder, save_samples, write_outputs
from wgan.compare.result import DEFAULT_TICKS, CompareResult, RunResult
from wgan.config import resolve
from wgan.data import is_toy
from wgan.diagnostics.health import health_verdict
from wgan.io import atomic_write_text
from wgan.metrics import columns_for, kind_of
from wgan.training.trainer import Trainer
from wgan.variants import VARIANTS

#: The variants compared by default: the vanilla GAN and the three Lipschitz methods.
DEFAULT_VARIANTS = ("gan", "wgan", "wgan-gp", "sngan")

#: The default budget: seconds of training per run. 4 variants x 3 seeds x 2 toy data sets = 24 runs,
#: about 24 x (60 s + ~15 s of evaluation) = 30 minutes on one core.
DEFAULT_SECONDS = 60.0

_BY_BUDGET = "time budget"  # Trainer.stopped_by when the time budget ended training: the normal end here
_NO_STEP_LIMIT = 10**9  # with a time budget, the budget ends the run and places the ticks


def run_one(variant: str, seed: int, data: str, budget: dict[str, Any], overrides: dict[str, Any] | None = None,
            run_dir: Path | None = None) -> tuple[RunResult, Any]:
    """Train one (variant, seed) under the budget; never raises for a failing run.

    Args:
        variant, seed, data: what to train.
        budget: ``{"steps": N}`` (generator steps, an evaluation every N / ticks) or ``{"seconds": S}``
            (training time, evaluations excluded: :meth:`Trainer.train` with ``time_budget_s``), plus
            ``ticks``.
        overrides: config fields for the run.
        run_dir: the run's directory, or ``None`` to write nothing.

    Returns:
        ``(RunResult, config)``: the config is ``None`` when it could not be resolved.
    """
    result = RunResult(variant, seed, run_dir=str(run_dir) if run_dir is not None else None)
    ticks = int(budget.get("ticks", DEFAULT_TICKS))
    fields = dict(overrides or {})
    fields.update(variant=variant, data=data, seed=seed)
    if budget.get("steps"):
        fields.update(steps=int(budget["steps"]), tick_every_steps=max(1, int(budget["steps"]) // ticks))
    else:
        fields.update(steps=_NO_STEP_LIMIT, tick_every_steps=_NO_STEP_LIMIT)
    config = None
    trainer = None
    try:
        config = resolve(fields)
        trainer = Trainer(config, run_dir=run_dir)
        if budget.get("steps"):
            trainer.train()
        else:
            trainer.train(time_budget_s=float(budget["seconds"]), ticks=ticks)
    except Exception as e:  # noqa: BLE001 - any failure of one run is recorded, the comparison goes on
        result.ok = False
        result.error = _one_line(e)
        if run_dir is not None:
            try:
                atomic_write_text(run_dir / "error.txt", traceback.format_exc())
            except OSError:
                pass
    if trainer is not None:
        result.stopped_by = trainer.stopped_by if trainer.stopped_by != _BY_BUDGET else None
        if result.stopped_by and result.ok:
            result.ok, result.error = False, f"stopped by {result.stopped_by} after {trainer.step} steps"
        result.history = list(trainer.history)
        result.train_seconds, steps = train_seconds(result.history)
        result.steps = trainer.step
        result.step_ms = 1000 * result.train_seconds / steps if steps else float("nan")
        result.final = dict(result.history[-1]) if result.history else {}
        result.final.pop("grad_norm/hist", None)  # a histogram: the run's own report draws it
        if result.history:
            result.verdict = health_verdict(result.history, config).to_dict()
        if result.ok:
            try:
                x = trainer.generate()
                result.samples = x[:64].cpu().numpy() if x.dim() > 2 else x.cpu().numpy()
                if run_dir is not None:
                    save_samples(run_dir, result.samples)
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
            run_dir = run_folder(out_path, variant, seed) if out_path is not None else None
            result, config = run_one(variant, seed, data, budget, overrides, run_dir)
            runs.append(result)
            if config is not None and variant not in setup:
                setup[variant] = config.to_dict()
            if log is not None:
                log(f"[{len(runs)}/{total}] {_run_line(result, data)}  "
                    f"({time.perf_counter() - t_start:.0f} s elapsed)")
            if result.stopped_by:
                stopped = True
                if log is not None:
                    log(f"stopped by {result.stopped_by}: writing the {len(runs)} run(s) done so far")
                break
    order = {v: i for i, v in enumerate(variants)}
    runs.sort(key=lambda r: (order[r.variant], seed_list.index(r.seed)))
    seed_list = [s for s in seed_list if any(r.seed == s for r in runs)]
    result = CompareResult(data, variants, seed_list, budget, runs, setup, out_path)
    if out_path is not None:
        write_outputs(result)
    return result


def _one_line(e: BaseException) -> str:
    msg = " ".join(str(e).split())
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def _run_line(r: RunResult, data: str) -> str:
    """``wgan-gp seed 0: 500 steps, 2.10 ms/step, modes 8/8, hq 91%, exact W1 0.061, healthy``."""
    head = f"{r.variant} seed {r.seed}: "
    if not r.ok:
        return head + f"FAILED after {r.steps} steps: {r.error}"
    parts = [f"{r.steps} steps, {r.step_ms:.2f} ms/step"]
    for c in columns_for(kind_of(data)):  # the evaluator's short texts; its distance to the data
        text = c.progress_text(r.final)
        if text is None and c.floor_key and r.final.get(c.key) is not None:
            text = f"{c.title} {format(r.final[c.key], c.fmt)}"
        if text:
            parts.append(text)
    if r.verdict:
        parts.append(r.verdict.get("status", ""))
    return head + ", ".join(parts)
