"""Run directory -> ``report.html``: one self-contained page with every figure embedded.

The page holds: the health verdict with its advice, the latest samples (scatter over the data, or
image grid), the critic's value contours for 2-D data, the critic's W1 estimate against the exact
W1 with their correlation and ratio (toy data) or the validation gap (images), the training curves,
the penalty and gradient norms, the gradient-norm histogram, a metrics table and the config.
Figures are PNGs inlined as base64 ``data:`` URIs; the page loads nothing from anywhere else.

Example:
    >>> from wgan.report import write_report
    >>> path = write_report("runs/00001-wgan-gp-ring8")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wgan import stats
from wgan.diagnostics import diagnostics_rng, eval_mode
from wgan.diagnostics.gradnorm import GRAD_NORM_EDGES
from wgan.diagnostics.health import HealthVerdict, gap_w1_agreement, health_verdict, pearson, read_history, series
from wgan.io import atomic_write_text
from wgan.metrics import EVALUATORS, kind_of
from wgan.metrics.toy import W1, W1_FLOOR
from wgan.training import rundir
from wgan.training.trainer import Trainer


def descriptions(kind: str | None = None) -> dict[str, str]:
    """What the metrics table says about each key: the training statistics' and the evaluator's
    (of ``kind``, or of every kind when ``None``)."""
    kinds = [kind] if kind in EVALUATORS else list(EVALUATORS)
    out = dict(stats.DESCRIPTIONS)
    for k in kinds:
        out.update(EVALUATORS[k].all_descriptions())
    return out


@dataclass
class Figure:
    """One embedded figure: an id (the anchor), a title, PNG bytes and a caption."""

    id: str
    title: str
    png: bytes
    caption: str = ""


def _b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"
    return str(v)


def _load_trainer(run_dir: Path):
    """The run's trainer rebuilt from ``checkpoints/latest.pt`` on the CPU (``None`` without one)."""
    if not (run_dir / rundir.LATEST).is_file():
        return None
    return Trainer.load_run(run_dir, device="cpu")  # read-only: no global state changes


def critic_contour_figure(trainer, n_points: int = 1000, resolution: int = 160) -> Figure | None:
    """Critic value contours over the data for a 2-D run (``None`` for other data)."""
    from wgan.plots.figures import critic_contour_png  # matplotlib, deferred on purpose

    if not trainer.evaluator.plane or tuple(trainer.data.shape) != (2,):
        return None
    rng = diagnostics_rng(trainer.config.seed, trainer.step + 1, "cpu")
    with eval_mode(trainer.critic):
        x_real = trainer.data.sample(n_points, rng).cpu()
        x_fake = trainer.generate(min(n_points, len(trainer.fixed_z))).cpu()
        pts = torch.cat([x_real, x_fake]).numpy()
        lo, hi = np.percentile(pts, 0.5, axis=0), np.percentile(pts, 99.5, axis=0)
        pad = 0.15 * (hi - lo).max()
        lo, hi = lo - pad, hi + pad
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
        grid = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32)
        with torch.no_grad():
            values = torch.cat([trainer.critic(chunk) for chunk in grid.split(8192)]).reshape(gx.shape).numpy()
    centers = trainer.data.centers.cpu().numpy() if trainer.data.centers is not None else None
    png = critic_contour_png(gx, gy, values, x_real.numpy(), x_fake.numpy(), centers,
                             title=f"critic value at step {trainer.step}")
    return Figure("critic-contours", "Critic value contours", png,
                  "The critic's score over the plane (as in the WGAN-GP paper's toy figures): data in grey, "
                  "generated samples in orange. A 1-Lipschitz critic changes by at most 1 per unit of "
                  "distance; its slope between generated and real points is what moves the generator.")


def _latest_samples(run_dir: Path) -> Path | None:
    pngs = sorted((run_dir / "samples").glob("*.png")) if (run_dir / "samples").is_dir() else []
    return pngs[-1] if pngs else None


def build_figures(run_dir: Path, history: list[dict[str, Any]], trainer=None, kind: str | None = None) -> list[Figure]:
    """Every figure of the report, in page order (``kind``: the data kind, for the evaluator's own
    captions and curves; ``None`` when unknown)."""
    from wgan.plots import figures as F  # matplotlib, deferred on purpose

    evaluator = EVALUATORS.get(kind) if kind else None
    figs: list[Figure] = []
    samples = _latest_samples(run_dir)
    if samples is not None:
        figs.append(Figure("samples", f"Samples ({samples.stem})", samples.read_bytes(),
                           "Generated samples from the fixed latent batch at the last tick"
                           + (evaluator.samples_caption if evaluator else ".")))
    if trainer is not None:
        fig = critic_contour_figure(trainer)
        if fig is not None:
            figs.append(fig)

    agreement = gap_w1_agreement(history)
    if agreement is not None and len(agreement["steps"]):
        steps = agreement["steps"]
        by_step = {r.get("step"): r for r in history}
        gap_eval = np.array([by_step.get(s, {}).get(stats.GAP_EVAL, np.nan) for s in steps], dtype=float)
        norm = np.array([by_step.get(s, {}).get(stats.GN_MEAN, np.nan) for s in steps], dtype=float)
        normalized = gap_eval / norm if np.isfinite(gap_eval).any() and np.isfinite(norm).any() else None
        floor = next((r[W1_FLOOR] for r in reversed(history) if r.get(W1_FLOOR)), None)
        png = F.w1_curves_png(steps, agreement["gap"], agreement["w1"], floor,
                              gap_eval if np.isfinite(gap_eval).any() else None, normalized,
                              agreement["pearson"], agreement["ratio"])
        figs.append(Figure("w1", "Critic estimate vs exact W1", png,
                           "The critic gap (the dual estimate of W1) and the exact W1 between 2,500 generated and "
                           "2,500 data samples, computed by optimal transport at every tick. Pearson's r measures "
                           "whether the estimate tracks the truth; the ratio is the critic's effective Lipschitz "
                           "scale (1 for an optimal 1-Lipschitz critic)."))
    s_tr, g_tr = series(history, stats.GAP_TRAIN)
    s_va, g_va = series(history, stats.GAP_VAL)
    if len(s_va) and len(s_va) == len(s_tr):
        figs.append(Figure("validation-gap", "Validation estimate", F.validation_gap_png(
            s_va, g_tr, g_va, series(history, stats.GAP)),
            "The critic gap on held-out real images is the validation estimate of W1; a gap that grows "
            "on training images only means the critic memorises them."))

    curves = {}
    metric_curves = evaluator.curves if evaluator else tuple(k for e in EVALUATORS.values() for k in e.curves)
    for key in (stats.GAP, stats.LOSS_CRITIC, stats.LOSS_GENERATOR, stats.LIPSCHITZ_EMPIRICAL, *metric_curves):
        s, v = series(history, key)
        if len(v):
            curves[key] = (s, v)
    if curves:
        figs.append(Figure("curves", "Training curves", F.training_curves_png(None, curves),
                           "Per-tick values. Healthy WGAN training: the W estimate decreases without wild "
                           "oscillation, the critic loss settles, nothing explodes."))

    pen = series(history, stats.PENALTY)
    gmean = series(history, stats.GN_MEAN)
    if not len(gmean[0]):
        gmean = series(history, stats.GRAD_NORM_MEAN)
    if len(pen[0]) or len(gmean[0]):
        figs.append(Figure("penalty", "Penalty and gradient norms", F.penalty_png(
            None, pen if len(pen[0]) else None, gmean, series(history, stats.GN_MIN),
            series(history, stats.GN_MAX), series(history, stats.LIPSCHITZ_EMPIRICAL)),
            "Left: the weighted penalty term. Right: the critic's gradient norm at interpolates of fresh "
            "real and generated batches (mean, min..max) and the empirical Lipschitz constant (largest "
            "secant slope over sampled pairs); the source texts' bands around the target 1 are shaded."))

    hists = [(r.get(stats.STEP), r[stats.GN_HIST]) for r in history
             if isinstance(r.get(stats.GN_HIST), list) and len(r[stats.GN_HIST]) == len(GRAD_NORM_EDGES) + 1]
    if hists:
        first, last = hists[0], hists[-1]
        png = F.grad_norm_hist_png(GRAD_NORM_EDGES, last[1], first[1] if len(hists) > 1 else None, last[0], first[0])
        figs.append(Figure("grad-norm-hist", "Gradient-norm histogram", png,
                           "Distribution of the critic's gradient norm at interpolates (norm over every non-batch "
                           "axis), first and last tick, in fixed log-spaced bins."))
    return figs


def _verdict_html(verdict: HealthVerdict) -> str:
    colour = {"healthy": "#1a7f37", "healthy with warnings": "#9a6700", "unhealthy": "#cf222e"}
    rows = []
    for c in verdict.checks:
        advice = ""
        if c.status in ("warn", "fail"):
            advice = (f"<div class='cause'><b>likely cause:</b> {html.escape(c.cause)}</div>"
                      f"<div class='remedy'><b>remedy:</b> {html.escape(c.remedy)}</div>")
        rows.append(f"<tr class='st-{c.status.replace('/', '')}'><td class='status'>{html.escape(c.status)}</td>"
                    f"<td>{html.escape(c.title)}</td><td>{html.escape(c.detail)}{advice}</td></tr>")
    corr = ""
    if verdict.correlation is not None:
        corr = (f"<p>Critic gap vs exact W1 over the run: Pearson <b>r = {verdict.correlation:.3f}</b>, "
                f"median ratio gap / W1 = <b>{verdict.ratio:.2f}</b>.</p>")
    return (f"<p class='verdict' style='color:{colour.get(verdict.status, '#000')}'>"
            f"{html.escape(verdict.status.upper())}</p>{corr}"
            f"<table class='checks'><tr><th>status</th><th>check</th><th>measured / advice</th></tr>"
            f"{''.join(rows)}</table>")


def _agreement_html(history: list[dict[str, Any]]) -> str:
    """A small table: Pearson r and median ratio of each W1 estimate against the exact W1."""
    base = gap_w1_agreement(history)
    if base is None:
        return ""
    rows = []
    labels = [(stats.GAP, "critic gap in training (mean over the tick)"),
              (stats.GAP_EVAL, "critic gap at the tick, on the evaluation samples")]
    for key, label in labels:
        a = gap_w1_agreement(history, key)
        if a is None or a["pearson"] is None:
            continue
        rows.append((label, a["pearson"], a["ratio"]))
    normed = [(r[stats.GAP_EVAL] / r[stats.GN_MEAN], r[W1]) for r in history
              if all(isinstance(r.get(k), (int, float)) for k in (stats.GAP_EVAL, stats.GN_MEAN, W1))
              and r[stats.GN_MEAN] > 0 and r[W1] > 0]
    if len(normed) >= 3:
        g, w = np.array(normed).T
        r_ = pearson(g, w)
        if r_ is not None:
            rows.append(("gap at the tick / mean gradient norm (Lipschitz-normalised)", r_, float(np.median(g / w))))
    if not rows:
        return ""
    body = "".join(f"<tr><td>{html.escape(label)}</td><td>{r:.3f}</td><td>{q:.2f}</td></tr>" for label, r, q in rows)
    return ("<table class='metrics'><tr><th>estimate</th><th>Pearson r with exact W1</th>"
            f"<th>median estimate / W1</th></tr>{body}</table>")


def _metrics_html(history: list[dict[str, Any]], kind: str | None = None) -> str:
    if not history:
        return "<p>No tick was recorded.</p>"
    first, last = history[0], history[-1]
    keys = [k for k in last if k != stats.STEP and not isinstance(last[k], (list, dict))]
    meaning = descriptions(kind)
    rows = "".join(
        f"<tr><td><code>{html.escape(k)}</code></td><td>{html.escape(_fmt(first.get(k)))}</td>"
        f"<td>{html.escape(_fmt(last.get(k)))}</td><td>{html.escape(meaning.get(k, ''))}</td></tr>"
        for k in sorted(keys))
    return (f"<table class='metrics'><tr><th>metric</th><th>first tick (step {first.get('step')})</th>"
            f"<th>last tick (step {last.get('step')})</th><th>meaning</th></tr>{rows}</table>")


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#1f2328;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.6em}
.sub{color:#57606a} .verdict{font-size:1.4em;font-weight:700;margin:.3em 0}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em} td,th{border:1px solid #d0d7de;padding:.3em .6em;
vertical-align:top;text-align:left} th{background:#f6f8fa}
.st-pass .status{color:#1a7f37;font-weight:700} .st-fail .status{color:#cf222e;font-weight:700}
.st-warn .status{color:#9a6700;font-weight:700} .st-na .status{color:#57606a}
.cause,.remedy{margin-top:.25em} figure{margin:1em 0} figure img{max-width:100%;border:1px solid #d0d7de}
figcaption{color:#57606a;font-size:.9em;max-width:850px} pre{background:#f6f8fa;padding:.8em;overflow:auto;
font-size:.85em} nav a{margin-right:.8em}
"""


def html_page(title: str, body: list[str], css: str = "") -> str:
    """A self-contained HTML page (the run report's and ``wgan compare``'s): ``body`` joined by lines.

    Args:
        title: the page title (escaped here).
        body: HTML fragments, in order.
        css: rules added after the shared style sheet.
    """
    head = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>\n"
            f"<title>{html.escape(title)}</title><style>{_CSS}{css}</style></head><body>")
    return "\n".join([head, *body, "</body></html>"])


def build_report(run_dir: str | Path, with_critic: bool = True) -> str:
    """The report page of ``run_dir`` as an HTML string (figures inlined).

    Args:
        run_dir: a run directory (``config.json``, ``metrics.jsonl``, ``samples/``, ``checkpoints/``).
        with_critic: rebuild the critic from ``checkpoints/latest.pt`` for the contour figure
            (2-D data only).

    Returns:
        The HTML text.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(run_dir)
    history = read_history(run_dir) if (run_dir / "metrics.jsonl").is_file() else []
    config = {}
    if (run_dir / "config.json").is_file():
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    summary = {}
    if (run_dir / "summary.json").is_file():
        try:
            summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            summary = {}
    kind = kind_of(config["data"]) if config.get("data") else None
    trainer = None
    if with_critic and kind is not None and EVALUATORS[kind].plane:
        trainer = _load_trainer(run_dir)
    verdict = health_verdict(history, config or None)
    figures = build_figures(run_dir, history, trainer, kind)

    title = f"wgan report: {config.get('variant', '?')} on {config.get('data', '?')}"
    last_step = history[-1].get(stats.STEP) if history else 0
    total = config.get("steps")
    stopped = summary.get("stopped_by")
    diverged = (run_dir / "diverged.json").is_file()
    status_line = f"{last_step} of {total} generator steps" if total else f"{last_step} generator steps"
    if stopped:
        status_line += f", stopped by {stopped}"
    if diverged:
        status_line += ", diverged (see diverged.json)"
    nav = " ".join(f"<a href='#{f.id}'>{html.escape(f.title)}</a>" for f in figures)
    parts = [
        f"<h1>{html.escape(title)}</h1><p class='sub'>{html.escape(str(run_dir))} &middot; "
        f"{html.escape(status_line)}</p>",
        f"<nav><a href='#health'>Health</a> {nav} <a href='#metrics'>Metrics</a> <a href='#config'>Config</a></nav>",
        "<h2 id='health'>Health verdict</h2>", _verdict_html(verdict),
    ]
    for f in figures:
        parts.append(f"<h2 id='{f.id}'>{html.escape(f.title)}</h2>")
        if f.id == "w1":
            parts.append(_agreement_html(history))
        parts.append(f"<figure><img id='fig-{f.id}' class='figure' alt='{html.escape(f.title)}' "
                     f"src='data:image/png;base64,{_b64(f.png)}'>"
                     f"<figcaption>{html.escape(f.caption)}</figcaption></figure>")
    parts += ["<h2 id='metrics'>Metrics</h2>", _metrics_html(history, kind),
              "<h2 id='config'>Config</h2>", f"<pre>{html.escape(json.dumps(config, indent=2, sort_keys=True))}</pre>"]
    return html_page(title, parts)


def write_report(run_dir: str | Path, with_critic: bool = True) -> Path:
    """Write ``RUN_DIR/report.html`` atomically and return its path.

    Args:
        run_dir: the run directory.
        with_critic: include the critic contours (loads ``checkpoints/latest.pt``; 2-D data only).

    Returns:
        The path of ``report.html``.
    """
    run_dir = Path(run_dir)
    text = build_report(run_dir, with_critic=with_critic)
    path = run_dir / "report.html"
    atomic_write_text(path, text)
    return path
