"""``make bench-quality``: seconds of training until the toy mixtures are learnt, per setting.

The quality bar (the issue's): every mode holds at least 1% of the samples (``metrics/modes_1pct``
equals the number of modes) and the median of the last five evaluations of
``metrics/high_quality_pct`` (samples within 3 std of a centre) reaches 90% on ring8 and 75% on
grid25. A run trains with ``wgan``'s :class:`~wgan.training.trainer.Trainer` exactly as
``wgan train`` does (the same loop, ticks and evaluation), without a run directory, for a wall-clock
budget; it stops early a little after the bar is met. Seconds are counted three ways:

* ``train_s``: wall-clock seconds in the training loop (ticks and evaluations excluded: how often
  one evaluates is a choice of this measurement, not a cost of training);
* ``wall_s``: wall-clock seconds including the ticks;
* ``cpu_s``: CPU seconds of the process in the loop — on a shared machine, the time the run would
  take alone on one core (runs use one thread).

Usage::

    python -m benchmarks.time_to_quality --data ring8 --settings toy,toy-ema --budget 600
    python -m benchmarks.time_to_quality --list
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from wgan.config import resolve
from wgan.io import atomic_write_json
from wgan.metrics.toy import HIGH_QUALITY_PCT, MODES_1PCT, MODES_TOTAL, W1
from wgan.training.trainer import Trainer

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_HQ = {"ring8": 90.0, "grid25": 75.0}

# Candidate settings on top of the data set's "toy" preset (2x128 MLPs, z 2, batch 256, lambda 0.1,
# Adam (0.5, 0.9), n_critic 5). Each names its learning rate and EMA, so a row keeps its meaning
# whatever the preset says; "preset" is the preset as it stands. The table reads as an ablation.
_OLD = {"lr_g": 1e-4, "lr_c": 1e-4}  # the toy preset's rate before these measurements (the WGAN-GP paper's)
SETTINGS: dict[str, dict[str, Any]] = {
    "preset": {},
    "toy": {**_OLD, "ema_decay": 0.0},
    "toy-ema": {**_OLD, "ema_decay": 0.999},
    "lr2e-4": {"lr_g": 2e-4, "lr_c": 2e-4, "ema_decay": 0.0},
    "lr2e-4-ema": {"lr_g": 2e-4, "lr_c": 2e-4, "ema_decay": 0.999},
    "lr5e-4": {"lr_g": 5e-4, "lr_c": 5e-4, "ema_decay": 0.0},
    "lr5e-4-ema": {"lr_g": 5e-4, "lr_c": 5e-4, "ema_decay": 0.999},
    "lr1e-3-ema": {"lr_g": 1e-3, "lr_c": 1e-3, "ema_decay": 0.999},
    "lr5e-4-ema-g256": {"lr_g": 5e-4, "lr_c": 5e-4, "ema_decay": 0.999, "g_width": 256, "c_width": 256},
    "lr5e-4-ema-gp1": {"lr_g": 5e-4, "lr_c": 5e-4, "ema_decay": 0.999, "gp_weight": 1.0},
    "b512-ema": {**_OLD, "batch_size": 512, "ema_decay": 0.999},
    "b128-ema": {**_OLD, "batch_size": 128, "ema_decay": 0.999},
    "w256-ema": {**_OLD, "c_width": 256, "ema_decay": 0.999},
    "g256-ema": {**_OLD, "g_width": 256, "c_width": 256, "ema_decay": 0.999},
    "gp1-ema": {**_OLD, "gp_weight": 1.0, "ema_decay": 0.999},
    "gp0.01-ema": {**_OLD, "gp_weight": 0.01, "ema_decay": 0.999},
    "ema0.9999": {**_OLD, "ema_decay": 0.9999},
    "lr2e-4-ema0.9999": {"lr_g": 2e-4, "lr_c": 2e-4, "ema_decay": 0.9999},
    "paper-toy": {"preset": "paper-toy", **_OLD, "ema_decay": 0.0},
}


def _loadavg() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError):
        return None


def reached(history: list[dict[str, Any]], target_hq: float, window: int = 5) -> bool:
    """The bar at the last evaluation: every mode >= 1% now, and the median HQ of the last ``window`` >= target."""
    if len(history) < window:
        return False
    last = history[-1]
    if last.get(MODES_1PCT) != last.get(MODES_TOTAL):
        return False
    hq = [r[HIGH_QUALITY_PCT] for r in history[-window:]]
    return statistics.median(hq) >= target_hq


class TickClock:
    """A trainer hook that measures the ticks' wall-clock and CPU seconds, so the loop's can be told apart.

    The trainer checks ``should_stop`` right after every generator step and calls ``on_tick`` at the
    end of a tick, so a tick runs from the last ``should_stop`` before it to its ``on_tick``.
    """

    def __init__(self):
        self.tick_s = self.tick_cpu = 0.0
        self._step_end = (time.perf_counter(), time.process_time())

    def should_stop(self, trainer) -> bool:
        self._step_end = (time.perf_counter(), time.process_time())
        return False

    def on_tick(self, trainer, record: dict[str, Any]) -> None:
        self.tick_s += time.perf_counter() - self._step_end[0]
        self.tick_cpu += time.process_time() - self._step_end[1]


def run_one(data: str, name: str, overrides: dict[str, Any], budget_s: float, tick_every: int, seed: int,
            after_s: float, threads: int, budget_clock: str = "cpu", progress_every: int = 10) -> dict[str, Any]:
    """Train one setting for up to ``budget_s`` loop seconds (CPU or wall); the curve and the time to the bar."""
    cfg = {"data": data, "seed": seed, "steps": 10 ** 9, "tick_every_steps": tick_every, "threads": threads,
           **overrides}
    trainer = Trainer(resolve(cfg))
    target = TARGET_HQ[data]
    clock = TickClock()
    trainer.add_hook(clock)
    trainer.evaluator.setup()  # the evaluation's references (the W1 floor), before the clock starts
    curve: list[dict[str, Any]] = []
    hit: dict[str, Any] | None = None
    t0, c0 = time.perf_counter(), time.process_time()
    stop_at = None
    while True:
        trainer.train(steps=trainer.step + tick_every)
        wall = time.perf_counter() - t0
        train_s = wall - clock.tick_s
        cpu_train = time.process_time() - c0 - clock.tick_cpu
        rec = trainer.history[-1]
        point = {"step": trainer.step, "train_s": round(train_s, 2), "wall_s": round(wall, 2),
                 "cpu_s": round(cpu_train, 2), "modes_1pct": rec.get(MODES_1PCT),
                 "modes_total": rec.get(MODES_TOTAL), "hq": rec.get(HIGH_QUALITY_PCT), "w1": rec.get(W1)}
        curve.append(point)
        if progress_every and len(curve) % progress_every == 0:
            print(f"    step {point['step']}: {point['train_s']:.0f} s ({point['cpu_s']:.0f} CPU s), "
                  f"modes {point['modes_1pct']}/{point['modes_total']}, HQ {point['hq']:.1f}%", flush=True)
        if hit is None and reached(trainer.history, target):
            hit = dict(point)
            stop_at = (cpu_train if budget_clock == "cpu" else train_s) + after_s
            print(f"  {name}: bar met at step {trainer.step}, {train_s:.0f} s of training "
                  f"({point['cpu_s']:.0f} CPU s)", flush=True)
        spent = cpu_train if budget_clock == "cpu" else train_s
        if spent >= budget_s or (stop_at is not None and after_s >= 0 and spent >= stop_at):
            break
    last5 = [p["hq"] for p in curve[-5:]]
    return {"data": data, "setting": name, "overrides": overrides, "seed": seed, "target_hq": target,
            "tick_every_steps": tick_every, "budget_s": budget_s, "budget_clock": budget_clock,
            "threads": threads, "reached": hit, "loadavg_end": _loadavg(),
            "final": {"step": trainer.step, "train_s": curve[-1]["train_s"], "modes_1pct": curve[-1]["modes_1pct"],
                      "hq_median_last5": statistics.median(last5)},
            "steps_per_s": trainer.step / max(curve[-1]["train_s"], 1e-9), "curve": curve}


def load_results(pattern: str = "ttq-*.json") -> list[dict[str, Any]]:
    """Every saved run under benchmarks/results/."""
    return [json.loads(f.read_text()) for f in sorted(RESULTS.glob(pattern))]


def plot(rows: list[dict[str, Any]], out: Path, clock: str = "cpu_s") -> Path:
    """HQ % against seconds per data set, one line per setting; the bar and where each run met it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datas = [d for d in TARGET_HQ if any(r["data"] == d for r in rows)]
    names = list(dict.fromkeys(r["setting"] for r in sorted(rows, key=lambda r: r["setting"])))
    colours = {n: plt.get_cmap("tab10")(i % 10) for i, n in enumerate(names)}
    fig, axes = plt.subplots(1, len(datas), figsize=(6.2 * len(datas), 4.2), squeeze=False)
    for ax, data in zip(axes[0], datas):
        for r in sorted([r for r in rows if r["data"] == data], key=lambda r: (r["setting"], r["seed"])):
            xs = [p[clock] for p in r["curve"]]
            hq = [p["hq"] for p in r["curve"]]
            threads = f"{r['threads']} thread" + ("s" if r["threads"] > 1 else "") if r["threads"] else "all cores"
            label = f"{r['setting']}, {threads}" + (f" (seed {r['seed']})" if r["seed"] else "")
            line, = ax.plot(xs, hq, lw=1.2, color=colours[r["setting"]], ls="--" if r["seed"] else "-",
                            label=label)
            all_modes = [x for x, p in zip(xs, r["curve"]) if p["modes_1pct"] == p["modes_total"]]
            if r["reached"]:
                ax.plot([r["reached"][clock]], [r["reached"]["hq"]], "o", color=line.get_color(), ms=6)
            elif all_modes:
                ax.plot([all_modes[0]], [0], "|", color=line.get_color(), ms=10)
        ax.axhline(TARGET_HQ[data], color="k", ls="--", lw=0.8)
        ax.set_title(f"{data}: high-quality samples (bar {TARGET_HQ[data]:.0f}%, every mode >= 1%)")
        ax.set_xlabel("training seconds (" + ("CPU" if clock == "cpu_s" else "wall clock") + ")")
        ax.set_ylabel("% of samples within 3 std of a centre")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.time_to_quality", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="ring8,grid25", help="comma-separated: ring8, grid25")
    p.add_argument("--settings", default="toy,toy-ema", help="comma-separated names (see --list)")
    p.add_argument("--budget", type=float, default=600.0, help="training seconds per run (default 600)")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                   help="what the budget counts: CPU seconds of the loop (default; fair on a shared machine) "
                        "or its wall-clock seconds")
    p.add_argument("--tick-every-steps", type=int, default=500, help="steps between evaluations (default 500)")
    p.add_argument("--after", type=float, default=60.0, help="seconds to keep training after the bar is met "
                                                              "(the curve beyond it; -1: to the budget)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--list", action="store_true", help="print the settings and exit")
    p.add_argument("--plot", metavar="PNG", help="plot the saved runs (benchmarks/results/ttq-*.json) of --settings "
                                                  "against --clock seconds, and exit")
    args = p.parse_args(argv)
    if args.list:
        for k, v in SETTINGS.items():
            print(f"{k:18s} {v}")
        return 0
    if args.plot:  # the runs of the settings named, on the clock named
        names = args.settings.split(",")
        rows = [r for r in load_results() if r["setting"] in names]
        print(plot(rows, Path(args.plot), "cpu_s" if args.clock == "cpu" else "train_s"))
        return 0
    datas = [d for d in args.data.split(",") if d]
    names = [s for s in args.settings.split(",") if s]
    bad = [d for d in datas if d not in TARGET_HQ] + [s for s in names if s not in SETTINGS]
    if bad:
        p.error(f"unknown data set or setting {bad}; data: {', '.join(TARGET_HQ)}; settings: see --list")
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = []
    for data in datas:
        for name in names:
            print(f"{data} / {name}: {SETTINGS[name]}", flush=True)
            row = run_one(data, name, SETTINGS[name], args.budget, args.tick_every_steps, args.seed, args.after,
                          args.threads, args.clock)
            rows.append(row)
            out = RESULTS / f"ttq-{data}-{name}-seed{args.seed}.json"
            atomic_write_json(out, row, indent=1)
            hit = row["reached"]
            reached_at = f"{hit['train_s']:.0f} s (step {hit['step']})" if hit else "not reached"
            print(f"  -> {reached_at}; "
                  f"final median HQ {row['final']['hq_median_last5']:.1f}%, modes {row['final']['modes_1pct']}, "
                  f"{row['steps_per_s']:.0f} steps/s; {out}", flush=True)
    print("\n| data | setting | time to bar: train s (CPU s, step) | final median HQ % | modes >= 1% | steps/s |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        h = r["reached"]
        t = f"{h['train_s']:.0f} ({h['cpu_s']:.0f}, {h['step']})" if h else f"> {r['budget_s']:.0f}"
        print(f"| {r['data']} | {r['setting']} | {t} | {r['final']['hq_median_last5']:.1f} | "
              f"{r['final']['modes_1pct']}/{r['curve'][-1]['modes_total']} | {r['steps_per_s']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
