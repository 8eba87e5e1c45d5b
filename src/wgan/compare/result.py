"""What a comparison measured: one :class:`RunResult` per (variant, seed), and the
:class:`CompareResult` that aggregates them over seeds and renders the table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wgan.compare.aggregate import (
    DIAGNOSTIC_COLUMNS,
    RUN_COLUMNS,
    STEP_MS,
    STEPS,
    W_CORR,
    health_cell,
    mean_floor,
    mean_std,
    number,
    w_estimate_correlation,
)
from wgan.compare.render import TableColumn, csv_table, html_table, markdown_table, runs_csv, table_columns
from wgan.metrics import Column, columns_for, kind_of
from wgan.variants import VARIANTS

#: Evaluations (ticks) per run: the points of the W-estimate curves and of their correlation with W1.
DEFAULT_TICKS = 10


@dataclass
class RunResult:
    """One training run of the comparison.

    Attributes:
        variant, seed: what was trained.
        ok: ``False`` when the run raised; ``error`` then holds the reason (one line).
        error: why the run failed, or ``None``.
        steps: generator steps done.
        train_seconds: wall time of the training steps (ticks excluded).
        step_ms: ``1000 * train_seconds / steps``.
        final: the last tick's record (metrics, diagnostics), ``{}`` if no tick completed.
        history: every tick record.
        verdict: :meth:`HealthVerdict.to_dict` of the run, ``None`` without ticks.
        samples: the final generated samples from the fixed latent batch (toy: (n, 2); images: up to 64).
        run_dir: the run's directory, or ``None`` in memory-only use.
        stopped_by: the signal (Ctrl-C) that ended the run early; the comparison stops there.
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
    stopped_by: str | None = None

    def value(self, key: str) -> float:
        """A numeric result by key: ``step_ms``, ``steps``, ``w_corr`` or a key of the last tick; NaN if absent."""
        if key == STEP_MS:
            return self.step_ms
        if key == STEPS:
            return float(self.steps)
        if key == W_CORR:
            return w_estimate_correlation(self.history)
        return number(self.final.get(key))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, without the history and samples (they live in the run's folder)."""
        return {"variant": self.variant, "seed": self.seed, "ok": self.ok, "error": self.error, "steps": self.steps,
                "train_seconds": self.train_seconds, "step_ms": self.step_ms, "final": self.final,
                "verdict": self.verdict, "run_dir": self.run_dir}


@dataclass
class CompareResult:
    """All runs of a comparison and how they were set up; aggregates and renders the table.

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

    def runs_of(self, variant: str) -> list[RunResult]:
        """The runs of one variant, in seed order."""
        return [r for r in self.runs if r.variant == variant]

    def metric_columns(self) -> tuple[Column, ...]:
        """The sample-quality columns: those of the data kind's evaluator (:func:`wgan.metrics.columns_for`)."""
        return columns_for(kind_of(self.data))

    def columns(self) -> list[Column]:
        """Every numeric column, in table order: steps and time, the evaluator's, the diagnostics'."""
        return [*RUN_COLUMNS, *self.metric_columns(), *DIAGNOSTIC_COLUMNS]

    def floors(self) -> dict[str, float]:
        """What a perfect generator scores, per metric column that measures it (mean over the runs)."""
        finals = [r.final for r in self.runs]
        out = {c.key: mean_floor(finals, c.floor_key) for c in self.metric_columns()}
        return {k: v for k, v in out.items() if v is not None}

    def rows(self) -> list[dict[str, Any]]:
        """One dict per variant: ``{column key: (mean, std, n)}`` over successful runs, plus labels."""
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
                "health": health_cell([r.verdict for r in runs if r.verdict is not None]),
            }
            for c in self.columns():
                row[c.key] = mean_std(r.value(c.key) for r in ok)
            out.append(row)
        return out

    # ------------------------------------------------------------------ renderings
    def table_columns(self) -> list[TableColumn]:
        """The table's one column list, which every rendering reads."""
        return table_columns(self.columns())

    def markdown(self) -> str:
        """The table in GitHub markdown, with the set-up and the failures listed under it."""
        rows = self.rows()
        notes = [f"\n{self.describe_setup()}"]
        failures = [(row["variant"], seed, err) for row in rows for seed, err in row["failed"]]
        if failures:
            notes.append("\nFailed runs:\n")
            notes += [f"- `{v}` seed {s}: {err}" for v, s, err in failures]
        return markdown_table(self.table_columns(), rows) + "\n" + "\n".join(notes) + "\n"

    def html_table(self) -> str:
        """The table as an HTML ``<table>``."""
        return html_table(self.table_columns(), self.rows())

    def csv(self) -> str:
        """One row per variant: mean and std columns for every measured value."""
        return csv_table(self.table_columns(), self.rows())

    def runs_csv(self) -> str:
        """One row per run: the raw values behind the table."""
        return runs_csv([c.key for c in self.columns()], self.runs)

    def budget_text(self) -> str:
        """``"500 steps"`` or ``"60 s of training"``."""
        if self.budget.get("steps"):
            return f"{self.budget['steps']} steps"
        return f"{self.budget['seconds']:g} s of training"

    def describe_setup(self) -> str:
        """The paragraph under the table: data, seeds, budget, evaluations and what the columns mean."""
        ticks = self.budget.get("ticks", DEFAULT_TICKS)
        if self.budget.get("steps"):
            budget = f"{self.budget['steps']} generator steps"
            evals = f"an evaluation every {max(1, self.budget['steps'] // ticks)} steps"
        else:
            budget = f"{self.budget['seconds']:g} s of training (evaluation excluded)"
            first = self._first_evaluation_step()
            after = f"after the first {first} steps" if first else "after a first chunk that measures the speed"
            evals = f"{ticks + 1} evaluations ({after}, then {ticks} evenly spaced in training time)"
        parts = [f"Data `{self.data}`, seeds {', '.join(map(str, self.seeds))}, budget {budget} per run, "
                 f"{evals}. Mean ± std over seeds (sample std; no ± for one seed)."]
        metrics = self.metric_columns()
        if metrics:
            floors = self.floors()
            text = "; ".join(f"{c.title}: {c.description}" for c in metrics)
            text += "".join(f"; a perfect generator scores {c.title} ≈ {format(floors[c.key], c.fmt)} (data vs data)"
                            for c in metrics if c.key in floors)
            parts.append(f"At the last evaluation, on the fixed latent batch: {text}.")
        parts.append("Empirical Lipschitz constant and grad-norm mean: the critic at the last evaluation, at "
                     "interpolates of real and generated points. r(W est., W1): Pearson correlation of the critic "
                     "gap E[f(x_real)] - E[f(x_fake)] with the exact W1 over the evaluations after the first (the "
                     "first catches the critic before it has learned); for gan and sngan the gap is a logit or "
                     "hinge margin, not a W1 estimate.")
        return " ".join(parts)

    def _first_evaluation_step(self) -> int | None:
        """The step of the first evaluation under a time budget (the trainer's calibration chunk)."""
        return next((int(r.history[0]["step"]) for r in self.runs if r.history and "step" in r.history[0]), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the set-up and every run (``results.json``; :func:`wgan.compare.load_compare` reads it back)."""
        return {"data": self.data, "variants": self.variants, "seeds": self.seeds, "budget": self.budget,
                "floors": self.floors(), "setup": self.setup, "runs": [r.to_dict() for r in self.runs]}
