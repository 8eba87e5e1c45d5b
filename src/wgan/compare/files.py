"""A comparison folder: write its files (tables, figure, page) from a :class:`CompareResult`, and
read one back (:func:`load_compare`) to render them again without training.

Files: ``table.md``, ``table.csv`` (one row per variant), ``runs.csv`` (one row per run),
``results.json``, ``compare.png`` (samples of every variant side by side above their W-estimate
curves), ``report.html``; each run's own directory is ``runs/VARIANT-sSEED/``. Every file is written
atomically (:mod:`wgan.io`).
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wgan import stats
from wgan.compare.result import CompareResult, RunResult
from wgan.config import resolve
from wgan.data import load_data
from wgan.diagnostics.health import read_history
from wgan.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from wgan.metrics import Column
from wgan.plots import compare as compare_plot  # matplotlib itself is imported only when a figure is drawn
from wgan.report import html_page

OUTPUTS = ("table.md", "table.csv", "runs.csv", "results.json", "compare.png", "report.html")
FINAL_SAMPLES = "final_samples.npy"  # in each run's directory: the samples of the figure


def run_folder(out: Path, variant: str, seed: int) -> Path:
    """The directory of one run inside a comparison folder."""
    return Path(out) / "runs" / f"{variant}-s{seed}"


def save_samples(run_dir: Path, samples: np.ndarray) -> None:
    """Keep a run's final samples (``final_samples.npy``) for the figure and a later rebuild."""
    atomic_write_bytes(Path(run_dir) / FINAL_SAMPLES, lambda f: np.save(f, samples))


def write_outputs(result: CompareResult) -> dict[str, Path]:
    """Write table.md, table.csv, runs.csv, results.json, compare.png and report.html to ``result.out``."""
    out = result.out
    assert out is not None
    paths = {name: out / name for name in OUTPUTS}
    atomic_write_text(paths["table.md"], result.markdown())
    atomic_write_text(paths["table.csv"], result.csv())
    atomic_write_text(paths["runs.csv"], result.runs_csv())
    atomic_write_json(paths["results.json"], result.to_dict(), default=_json_default)
    png = figure_png(result)
    atomic_write_bytes(paths["compare.png"], lambda f: f.write(png))
    atomic_write_text(paths["report.html"], report_html(result, png))
    return paths


def load_compare(out: str | Path) -> CompareResult:
    """Rebuild a :class:`CompareResult` from a comparison folder, to re-render its files.

    Reads ``results.json`` and, per run, ``runs/VARIANT-sSEED/metrics.jsonl`` (the tick records) and
    ``final_samples.npy``. Nothing is retrained.

    Raises:
        FileNotFoundError: ``out`` holds no ``results.json``.
    """
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
        folder = run_folder(out, r.variant, r.seed)
        if (folder / "metrics.jsonl").is_file():
            r.history = read_history(folder)
        if (folder / FINAL_SAMPLES).is_file():
            r.samples = np.load(folder / FINAL_SAMPLES, allow_pickle=False)
        runs.append(r)
    return CompareResult(d["data"], list(d["variants"]), [int(s) for s in d["seeds"]], d["budget"], runs,
                         d.get("setup") or {}, out)


def _json_default(o):
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)


# ---------------------------------------------------------------------------------------- the figure
def distance_column(result: CompareResult) -> Column | None:
    """The metric the figure's lower panels draw: the evaluator's first distance to the data with a
    floor (better lower), e.g. the exact W1 on toy data or the classifier FD on images."""
    return next((c for c in result.metric_columns() if c.better == "lower" and c.floor_key), None)


def _real_points(result: CompareResult) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Data samples and mode centres drawn behind 2-D samples; ``(None, None)`` for any other data."""
    shown = next((r.samples for r in result.runs if r.samples is not None), None)
    if shown is None or np.asarray(shown).ndim != 2 or np.asarray(shown).shape[1] != 2:
        return None, None
    first_setup = next(iter(result.setup.values()), {})
    overrides = {k: first_setup[k] for k in ("data_scale", "data_std") if first_setup.get(k) is not None}
    source = load_data(resolve({**overrides, "data": result.data}))
    x = source.sample(2500, torch.Generator().manual_seed(12345)).cpu().numpy()
    centers = source.centers.cpu().numpy() if source.centers is not None else None
    return x, centers


def figure_png(result: CompareResult) -> bytes:
    """The comparison figure (see :func:`wgan.plots.compare.compare_png`) as PNG bytes."""
    x_real, centers = _real_points(result)
    column = distance_column(result)
    key = column.key if column is not None else None
    panels = []
    for v in result.variants:
        runs = result.runs_of(v)
        shown = next((r for r in runs if r.ok and r.samples is not None), None)
        curves = [{"seed": r.seed, "ok": r.ok, "steps": [rec.get(stats.STEP) for rec in r.history],
                   "gap": [rec.get(stats.GAP, float("nan")) for rec in r.history],
                   "distance": [rec.get(key, float("nan")) if key else float("nan") for rec in r.history]}
                  for r in runs]
        errors = [f"seed {r.seed}: {r.error}" for r in runs if not r.ok]
        panels.append({"variant": v, "samples": shown.samples if shown is not None else None,
                       "seed": shown.seed if shown is not None else None, "curves": curves, "errors": errors})
    title = f"{result.data}: {len(result.seeds)} seed(s), {result.budget_text()} per run"
    return compare_plot.compare_png(panels, x_real=x_real, centers=centers, title=title,
                       floor=result.floors().get(key) if key else None,
                       distance_label=column.title if column is not None else "distance to the data")


# ---------------------------------------------------------------------------------------- the page
_CSS = ("td{text-align:right}td:first-child,td:nth-child(2),td:last-child{text-align:left}"  # numbers right
        "img{max-width:100%;border:1px solid #d0d7de}")


def report_html(result: CompareResult, png: bytes | None = None) -> str:
    """A self-contained page: the set-up, the table, the figure, the failures and each run's verdict."""
    if png is None:
        png = figure_png(result)
    failures = [f"<li><code>{html.escape(r.variant)}</code> seed {r.seed}: {html.escape(r.error or '')}</li>"
                for r in result.runs if not r.ok]
    details = [_verdict_details(r) for r in result.runs if r.verdict is not None]
    setup = json.dumps(result.setup, indent=2, sort_keys=True, default=_json_default)
    title = f"wgan compare: {result.data}"
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(result.describe_setup().replace('`', ''))}</p>",
        result.html_table(),
    ]
    if failures:
        body.append(f"<h2>Failed runs</h2><ul>{''.join(failures)}</ul>")
    body += [
        "<h2>Samples and W-estimate curves</h2>",
        f"<img id='compare-figure' alt='samples and W-estimate curves' "
        f"src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>",
        "<h2>Health of each run</h2>", "".join(details) or "<p>No run completed a tick.</p>",
        "<h2>Configurations (first seed)</h2>", f"<pre>{html.escape(setup)}</pre>",
    ]
    return html_page(title, body, css=_CSS)


def _verdict_details(r: RunResult) -> str:
    verdict: dict[str, Any] = r.verdict or {}
    lines = [f"{verdict.get('status', '?').upper()}"]
    for c in verdict.get("checks", []):
        lines.append(f"  [{c['status']}] {c['title']}: {c['detail']}")
    corr = r.value("w_corr")
    if math.isfinite(corr):
        lines.append(f"  critic gap vs exact W1 after the first evaluation: r = {corr:.3f}")
    link = (f" (<code>{html.escape(r.run_dir)}</code>; <code>wgan report</code> it for the full page)"
            if r.run_dir else "")
    return (f"<details><summary>{html.escape(r.variant)} seed {r.seed}: "
            f"{html.escape(verdict.get('status', '?'))}{link}</summary>"
            f"<pre>{html.escape(chr(10).join(lines))}</pre></details>")
