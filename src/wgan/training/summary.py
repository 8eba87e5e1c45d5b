"""The end-of-run text and the progress bar's postfix, read from the evaluators' columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wgan import stats
from wgan.diagnostics.health import health_verdict, read_history
from wgan.metrics import columns_for, kind_of
from wgan.objectives import get_objective
from wgan.variants import get_variant


def progress_postfix(record: dict[str, Any], columns) -> str:
    """``gap 0.123 pen 0.0456 modes 8/8 hq 93%``: the progress bar's text for one tick."""
    parts = [f"gap {record.get(stats.GAP, float('nan')):.3g}"]
    if stats.PENALTY in record:
        parts.append(f"pen {record[stats.PENALTY]:.3g}")
    parts += [t for t in (c.progress_text(record) for c in columns) if t]
    return " ".join(parts)


def format_summary(summary: dict[str, Any], history: list[dict[str, Any]] | None = None,
                   config: Any = None) -> str:
    """The end-of-run summary as a few human lines, then the health verdict.

    The metric lines are those of the data kind's evaluator columns
    (:attr:`wgan.metrics.Column.summary`). The verdict (:func:`wgan.diagnostics.health.health_verdict`)
    is read from ``history`` (the trainer's tick records) or, when ``None``, from
    ``summary['run_dir']/metrics.jsonl``.
    """
    lines = [f"wgan: {summary['variant']} on {summary['data']}, {summary['step']} generator steps"]
    lines += [line for line in (c.summary_line(summary) for c in columns_for(kind_of(summary["data"]))) if line]
    if stats.GAP in summary:
        objective = get_objective(get_variant(summary["variant"]).objective)
        meaning = ("the critic's W1 estimate, last tick" if objective.wasserstein_gap
                   else f"mean score gap; not a W1 estimate under the {objective.name} objective")
        lines.append(f"  {'critic gap':<18} {summary[stats.GAP]:.4f}  ({meaning})")
    if summary.get("run_dir"):
        lines.append(f"  {'run directory':<18} {summary['run_dir']}")
        if (Path(summary["run_dir"]) / "report.html").is_file():
            lines.append(f"  {'report':<18} {Path(summary['run_dir']) / 'report.html'}")
    if history is None and summary.get("run_dir") and (Path(summary["run_dir"]) / "metrics.jsonl").is_file():
        history = read_history(summary["run_dir"])
    if history:
        verdict = health_verdict(history, config if config is not None else {"variant": summary.get("variant")})
        lines += verdict.text(indent="  ").splitlines()
    return "\n".join(lines)
