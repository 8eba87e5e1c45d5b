"""The health verdict tested like a classifier: short runs whose truth is known, and its confusion matrix.

Each run of the corpus is built to land in one class (healthy, mode-collapsed, exploded/diverged,
poor: oscillating, clipped too hard, under-trained) and is then **labelled by what it produced**,
independently of the verdict's curve checks:

* ``diverged``: a loss or weight became NaN/Inf, or the critic's scores left the data's scale (the
  critic gap above 100x the data's own spread, the mean distance between two data points — a
  1-Lipschitz critic's gap cannot exceed it);
* ``collapsed``: the samples miss modes (toy data: a centre with no high-quality sample) or classes
  (labelled images: a class the metrics classifier never assigns);
* ``healthy``: every mode captured and the exact W1 within 3x its finite-sample floor;
* ``poor``: every mode present but the samples far from the data (W1 above 3x the floor).

The verdict's prediction: ``diverged`` when its explosion check fails, ``collapsed`` when its
mode-collapse check fails, ``healthy`` when nothing fails (warnings allowed), ``poor`` otherwise.
Every run's tick records are stored, so ``--rejudge`` applies a changed verdict to the same runs
without training again.

Usage::

    python -m benchmarks.verdict_corpus --jobs 2                  # train every run, then judge (~15 min)
    python -m benchmarks.verdict_corpus --rejudge                 # judge the stored runs again
    python -m benchmarks.verdict_corpus --only ring8-collapse-gp10  # some runs
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
STORE = RESULTS / "verdict_corpus.json"
LABELS = ("healthy", "collapsed", "diverged", "poor")
HEALTHY_W1 = 3.0  # healthy: exact W1 within this multiple of its floor
EXPLODED = 100.0  # diverged: |critic gap| above this multiple of the data's spread

# (name, construction, data, steps, overrides); each name gets seeds appended
_GP10 = {"gp_weight": 10.0}
_UNCONSTRAINED = {"variant": "wgan", "clip_value": 1e6, "optimizer": "adam", "lr_c": 1e-2, "lr_g": 1e-2}
_WEAK_GP = {"gp_weight": 1e-6, "lr_c": 1e-2, "lr_g": 1e-2}
PLAN: list[tuple[str, str, str, int, dict[str, Any], tuple[int, ...]]] = [
    ("ring8-default", "healthy", "ring8", 6000, {}, (0, 1, 2, 3, 4)),
    ("grid25-default", "healthy", "grid25", 15000, {}, (0, 1, 2)),
    ("mixture3-default", "healthy", "mixture3", 4000, {}, (0, 1)),
    ("ring8-collapse-gp10", "collapsed", "ring8", 3000, _GP10, (0, 1, 2, 3)),
    ("grid25-collapse-gp10", "collapsed", "grid25", 3000, _GP10, (0, 1)),
    ("grid25-gan", "collapsed", "grid25", 3000, {"variant": "gan"}, (0, 1, 2)),
    ("ring8-gan", "collapsed", "ring8", 3000, {"variant": "gan"}, (0, 1)),
    ("ring8-unconstrained", "diverged", "ring8", 1000, _UNCONSTRAINED, (0, 1)),
    ("grid25-unconstrained", "diverged", "grid25", 1000, _UNCONSTRAINED, (0,)),
    ("ring8-weak-gp-fast", "diverged", "ring8", 1000, _WEAK_GP, (0,)),
    ("grid25-weak-gp-fast", "diverged", "grid25", 1000, _WEAK_GP, (0,)),
    ("ring8-oscillating", "poor", "ring8", 3000, {"lr_c": 5e-3, "lr_g": 5e-3, "ema_decay": 0.0}, (0, 1)),
    ("ring8-clip0.1", "poor", "ring8", 3000, {"variant": "wgan", "clip_value": 0.1}, (0,)),
    ("grid25-clip0.1", "poor", "grid25", 3000, {"variant": "wgan", "clip_value": 0.1}, (0,)),
    ("ring8-clip0.001", "poor", "ring8", 3000, {"variant": "wgan", "clip_value": 0.001}, (0,)),
    ("grid25-clip0.001", "poor", "grid25", 3000, {"variant": "wgan", "clip_value": 0.001}, (0,)),
    ("ring8-undertrained", "poor", "ring8", 600, {}, (0, 1)),
    ("ring8-1500", "poor", "ring8", 1500, {}, (0, 1)),
    ("grid25-undertrained", "poor", "grid25", 2000, {}, (0, 1)),
    ("ring8-sngan", "healthy", "ring8", 6000, {"variant": "sngan"}, (0, 1)),
    ("ring8-wgan-sn", "healthy", "ring8", 6000, {"variant": "wgan-sn"}, (0,)),
]


def plan() -> list[dict[str, Any]]:
    runs = []
    for name, construction, data, steps, overrides, seeds in PLAN:
        for seed in seeds:
            fields = {"data": data, "steps": steps, "seed": seed, "threads": 1,
                      "tick_every_steps": max(50, steps // 12), **overrides}
            runs.append({"name": f"{name}-s{seed}", "construction": construction, "fields": fields})
    return runs


def train_one(run: dict[str, Any]) -> dict[str, Any]:
    """Train one run without a run directory; its tick records, config and any error."""
    from wgan.config import resolve
    from wgan.errors import TrainingDiverged
    from wgan.training.trainer import Trainer

    t0 = time.perf_counter()
    config = resolve(run["fields"])
    trainer = Trainer(config)
    error = None
    try:
        trainer.train()
    except TrainingDiverged as e:
        error = str(e)
    return {**run, "config": config.to_dict(), "history": trainer.history, "diverged_error": error,
            "seconds": round(time.perf_counter() - t0, 1)}


def truth(run: dict[str, Any]) -> tuple[str, str]:
    """The label from what the run produced, and why (see the module docstring)."""
    hist = run["history"]
    last = hist[-1] if hist else {}
    spread = last.get("data/spread")
    gaps = [abs(r["critic/gap"]) for r in hist if isinstance(r.get("critic/gap"), (int, float))]
    if run.get("diverged_error") or any(not math.isfinite(g) for g in gaps):
        return "diverged", "non-finite values"
    if spread and gaps and max(gaps) > EXPLODED * spread:
        return "diverged", f"|gap| {max(gaps):.3g} > {EXPLODED:g} x spread {spread:.3g}"
    found, total = last.get("metrics/modes"), last.get("metrics/modes_total")
    if found is None:
        found, total = last.get("metrics/classes_covered"), last.get("metrics/classes_total")
    if found is not None and total and found < total:
        return "collapsed", f"{found} of {total} modes/classes"
    w1, floor = last.get("metrics/w1"), last.get("metrics/w1_floor")
    if w1 is not None and floor:
        ratio = w1 / floor
        return ("healthy" if ratio <= HEALTHY_W1 else "poor"), f"all modes, W1 {ratio:.1f}x floor"
    return "healthy", "all classes"


def predict(verdict) -> str:
    failed = {c.name for c in verdict.failed}
    if "no_explosion" in failed:
        return "diverged"
    if "no_mode_collapse" in failed:
        return "collapsed"
    return "healthy" if verdict.healthy else "poor"


def judge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    from wgan.diagnostics.health import health_verdict

    rows, matrix = [], {t: {p: 0 for p in LABELS} for t in LABELS}
    for run in runs:
        label, why = truth(run)
        verdict = health_verdict(run["history"], run["config"])
        pred = predict(verdict)
        matrix[label][pred] += 1
        rows.append({"name": run["name"], "construction": run["construction"], "truth": label, "why": why,
                     "predicted": pred, "status": verdict.status,
                     "failed": [f"{c.name}: {c.remedy}" for c in verdict.failed]})
    n = len(rows)
    correct = sum(matrix[t][t] for t in LABELS)
    return {"rows": rows, "matrix": matrix, "n": n, "correct": correct,
            "accuracy": correct / n if n else float("nan"),
            "collapsed_or_diverged_judged_healthy": matrix["collapsed"]["healthy"] + matrix["diverged"]["healthy"],
            "healthy_judged_collapsed": matrix["healthy"]["collapsed"]}


def render(result: dict[str, Any]) -> str:
    m = result["matrix"]
    lines = ["| truth \\ verdict | " + " | ".join(LABELS) + " | runs |",
             "| --- | " + " | ".join("---:" for _ in LABELS) + " | ---: |"]
    for t in LABELS:
        lines.append(f"| {t} | " + " | ".join(str(m[t][p]) for p in LABELS) + f" | {sum(m[t].values())} |")
    lines.append("")
    lines.append(f"{result['correct']} of {result['n']} runs judged correctly ({result['accuracy']:.1%}); "
                 f"collapsed or diverged judged healthy: {result['collapsed_or_diverged_judged_healthy']}; "
                 f"healthy judged collapsed: {result['healthy_judged_collapsed']}")
    wrong = [r for r in result["rows"] if r["truth"] != r["predicted"]]
    for r in wrong:
        lines.append(f"  wrong: {r['name']} (built {r['construction']}): truth {r['truth']} ({r['why']}), "
                     f"verdict {r['predicted']} [{r['status']}]")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=2, help="runs trained side by side (one thread each)")
    ap.add_argument("--rejudge", action="store_true", help="judge the stored runs again; train nothing")
    ap.add_argument("--only", default="", help="comma-separated run-name prefixes")
    args = ap.parse_args(argv)
    stored = json.loads(STORE.read_text()) if STORE.is_file() else {"runs": []}
    if args.rejudge:
        runs = stored["runs"]
    else:
        todo = [r for r in plan() if not args.only or any(r["name"].startswith(p) for p in args.only.split(","))]
        print(f"training {len(todo)} runs, {args.jobs} at a time", flush=True)
        with mp.get_context("spawn").Pool(args.jobs) as pool:
            runs = []
            for r in pool.imap_unordered(train_one, todo):
                print(f"  {r['name']}: {r['seconds']} s", flush=True)
                runs.append(r)
        names = {r["name"] for r in runs}
        runs = sorted([r for r in stored["runs"] if r["name"] not in names] + runs, key=lambda r: r["name"])
        RESULTS.mkdir(exist_ok=True)
        STORE.write_text(json.dumps({"runs": runs}, default=str))
    result = judge(runs)
    print(render(result))
    (RESULTS / "verdict_corpus_result.json").write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
