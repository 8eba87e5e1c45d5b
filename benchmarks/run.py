"""``make bench``: generator steps per second of ``wgan``'s trainer against a plain WGAN-GP loop.

The plain loop is written the way tutorials and the source texts write it: a shuffling
``DataLoader``, separate critic forwards on the real, fake and interpolated batches, the penalty
through ``torch.autograd.grad(..., create_graph=True)``, and ``.item()`` logging every step, with
PyTorch's default threads (one per core). ``wgan``'s arm is the trainer's own loop body
(``Trainer.train_step``) with its default threads, and the tick's one read of the
statistics at the end of each window. Both train the same networks from the same initial weights,
on the same data, batch, optimiser and n_critic.

The arms are timed in alternating windows (A B C D D C B A ...) within one process, so machine
drift falls on all of them; the load from other processes is measured in every window from
``/proc/stat`` (busy CPU time not spent by this process, in cores). Two more arms run both loops on
one thread each: with a busy neighbour, a two-thread step can be many times slower than a
one-thread one, and these arms show the comparison free of that effect.

Printed per workload: generator steps/s and their ratio; GFLOP/s counted with the plain loop's
arithmetic per step (matrix products and convolutions, forward, backward and double backward,
counted by a dispatch mode) against the sgemm peak measured in the same run (the best of its start
and end); peak memory (``ru_maxrss`` of a fresh process that runs only that arm for a few steps —
for toy data with a tick, evaluation included); and the largest relative difference of the losses
and parameter gradients of one critic step and one generator step of the two arms on identical
inputs in float64.

Usage::

    python -m benchmarks.run                      # every workload (``make bench``)
    python -m benchmarks.run --only toy-2x128 --window 1 --rounds 2 --no-memory   # a short check
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from wgan.config import resolve
from wgan.data import load_data
from wgan.io import atomic_write_json, atomic_write_text
from wgan.nets import build_nets
from wgan.training.steps import critic_step, generator_step
from wgan.training.trainer import Trainer

DEFAULT_THREADS = torch.get_num_threads()  # what a plain script gets: one per core
REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"


# ---------------------------------------------------------------------------------------------- workloads
@dataclass
class Workload:
    name: str
    label: str
    overrides: dict[str, Any]
    window_s: float  # seconds per timing window
    needs: Callable[[], str | None] = lambda: None  # a reason to skip, or None
    notes: list[str] = field(default_factory=list)


def _mnist_spec() -> str | None:
    """``mnist:DIR`` when the MNIST files are present."""
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        return None
    return f"mnist:{MNIST_DIR}"


def _register_synthetic() -> str:
    """A synthetic 28x28 image set (uniform in [-1, 1]) for when MNIST is absent: same shapes, same cost."""
    from wgan.data import PREFIXED, DataSource, register_prefix

    if "bench-synthetic" not in PREFIXED:
        @register_prefix("bench-synthetic")
        def _synthetic(path, config):
            g = torch.Generator().manual_seed(0)
            x = torch.rand(10_000, 1, 28, 28, generator=g) * 2 - 1
            return DataSource(name="synthetic28", kind="image", shape=(1, 28, 28), x=x)
    return "bench-synthetic:28"


def _mnist_missing() -> str | None:
    """Why the `mnist` preset's workload cannot run (it needs the real files), or None."""
    return None if _mnist_spec() else f"no MNIST files in {MNIST_DIR}"


def _paper_mnist_overrides() -> dict[str, Any]:
    """The WGAN-GP paper's MNIST model (gan_mnist.py) as the ``wgan-gp-mnist`` preset: DIM 64, z 128, batch 50,
    lambda 10, Adam 1e-4 (0.5, 0.9), n_critic 5; on MNIST, or on synthetic 28x28 images when it is absent."""
    return {"data": _mnist_spec() or _register_synthetic(), "preset": "wgan-gp-mnist", "variant": "wgan-gp",
            "ema_decay": 0.0}  # the plain loop keeps no EMA: the same algorithm in both arms


WORKLOADS: dict[str, Workload] = {w.name: w for w in [
    Workload("toy-2x128", "source texts' toy MLP 2x128, batch 256",
             {"data": "ring8", "preset": "toy", "variant": "wgan-gp", "g_width": 128, "g_depth": 2, "c_width": 128,
              "c_depth": 2, "activation": "leaky_relu", "batch_size": 256, "z_dim": 2, "gp_weight": 10.0,
              "lr_g": 1e-4, "lr_c": 1e-4, "ema_decay": 0.0},
             window_s=2.0, notes=["LeakyReLU(0.2) critic as the source texts (the generator too: one "
                                  "activation setting)"]),
    Workload("toy-3x512", "WGAN-GP paper's toy MLP 3x512, batch 256",
             {"data": "ring8", "preset": "paper-toy", "variant": "wgan-gp", "lr_g": 1e-4, "lr_c": 1e-4,
              "ema_decay": 0.0}, window_s=3.0),
    Workload("mnist-conv", "WGAN-GP paper's MNIST conv model, batch 50", {}, window_s=8.0),
    Workload("mnist-preset", "the `mnist` preset", {}, window_s=8.0, needs=_mnist_missing),
]}


def workload_overrides(wl: Workload) -> dict[str, Any]:
    if wl.name == "mnist-conv":
        return _paper_mnist_overrides()
    if wl.name == "mnist-preset":
        return {"data": _mnist_spec(), "preset": "mnist", "ema_decay": 0.0}
    return dict(wl.overrides)


# ---------------------------------------------------------------------------------------------- the plain loop
def compute_gradient_penalty(critic, real_data, fake_data, generator=None):
    """The penalty as the source texts write it: autograd.grad with create_graph=True."""
    batch_size = real_data.size(0)
    epsilon = torch.rand((batch_size,) + (1,) * (real_data.dim() - 1), generator=generator, dtype=real_data.dtype)
    interpolated = epsilon * real_data + (1 - epsilon) * fake_data
    interpolated.requires_grad_(True)
    critic_interpolated = critic(interpolated)
    gradients = torch.autograd.grad(outputs=critic_interpolated, inputs=interpolated,
                                    grad_outputs=torch.ones_like(critic_interpolated),
                                    create_graph=True, retain_graph=True)[0]
    gradients = gradients.view(batch_size, -1)
    gradient_norm = gradients.norm(2, dim=1)
    return ((gradient_norm - 1) ** 2).mean()


class PlainLoop:
    """WGAN-GP written the usual way (the source texts' ``train_wgan_gp``, a fresh batch per critic step)."""

    def __init__(self, generator, critic, data: torch.Tensor, config):
        self.generator, self.critic = generator, critic
        self.batch_size, self.n_critic, self.z_dim = config.batch_size, config.n_critic, config.z_dim
        self.gp_weight = config.gp_weight
        self.loader = DataLoader(TensorDataset(data), batch_size=config.batch_size, shuffle=True, drop_last=True)
        self._it = iter(self.loader)
        betas = (config.beta1, config.beta2)
        self.opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr_g, betas=betas)
        self.opt_c = torch.optim.Adam(critic.parameters(), lr=config.lr_c, betas=betas)
        self.history: dict[str, list[float]] = {"w_dist": [], "gp": [], "g_loss": []}

    def _real_batch(self) -> torch.Tensor:
        try:
            (x,) = next(self._it)
        except StopIteration:
            self._it = iter(self.loader)
            (x,) = next(self._it)
        return x

    def step(self) -> None:
        """One generator step: n_critic critic steps, then the generator."""
        for _ in range(self.n_critic):
            self.opt_c.zero_grad()
            real_data = self._real_batch()
            z = torch.randn(real_data.size(0), self.z_dim)
            fake_data = self.generator(z).detach()
            critic_real = self.critic(real_data).mean()
            critic_fake = self.critic(fake_data).mean()
            gp = compute_gradient_penalty(self.critic, real_data, fake_data)
            critic_loss = -(critic_real - critic_fake) + self.gp_weight * gp
            critic_loss.backward()
            self.opt_c.step()
        self.opt_g.zero_grad()
        z = torch.randn(self.batch_size, self.z_dim)
        fake_data = self.generator(z)
        g_loss = -self.critic(fake_data).mean()
        g_loss.backward()
        self.opt_g.step()
        self.history["w_dist"].append((critic_real - critic_fake).item())
        self.history["gp"].append(gp.item())
        self.history["g_loss"].append(g_loss.item())

    def sync(self) -> None:
        pass  # it synchronised every step


class TrainerArm:
    """``wgan``'s trainer: its own loop body, and the tick's one read of the statistics per window."""

    def __init__(self, trainer):
        self.trainer = trainer

    def step(self) -> None:
        self.trainer.train_step()

    def sync(self) -> None:
        self.trainer.flush_stats()  # the tick's one host-device sync


# ---------------------------------------------------------------------------------------------- building
def _config(wl: Workload):
    return resolve(workload_overrides(wl))


def _plain_data(trainer_data, n_toy: int = 100_000) -> torch.Tensor:
    if trainer_data.x is not None:
        return trainer_data.x
    return trainer_data.sample(n_toy, torch.Generator().manual_seed(1234))  # a fixed data set, as tutorials


def build_trainer(wl: Workload, **overrides):
    """The workload's trainer and its own thread count (config.threads or its default), which the arms
    apply around its steps: constructing a trainer changes no global state."""
    trainer = Trainer(resolve({**workload_overrides(wl), **overrides}))
    return trainer, trainer.threads


def build_plain_from(trainer) -> PlainLoop:
    """The plain loop on copies of the trainer's initial networks and data."""
    return PlainLoop(copy.deepcopy(trainer.generator), copy.deepcopy(trainer.critic), _plain_data(trainer.data),
                     trainer.config)


def build_plain_alone(wl: Workload) -> PlainLoop:
    config = _config(wl)
    torch.manual_seed(config.seed)
    data = load_data(config)
    generator, critic = build_nets(config, data)
    return PlainLoop(generator, critic, _plain_data(data), config)


# ---------------------------------------------------------------------------------------------- measuring
def sgemm_peak(threads: int, n: int = 2048, reps: int = 5) -> float:
    """Best single-precision matrix-multiply rate in GFLOP/s with ``threads`` threads."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)
    torch.mm(a, b, out=c)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    torch.set_num_threads(old)
    return 2 * n ** 3 / best / 1e9


def count_flops(fn: Callable[[], None]) -> int:
    """Matrix-product and convolution FLOPs of ``fn()`` (forward, backward and double backward)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class _Count(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                self.total += formula(*args, **kwargs, out_val=out)
            return out

    with _Count() as counter:
        fn()
    return int(counter.total)


class LoadMeter:
    """CPU time spent by other processes, in cores, from /proc/stat minus this process's own time."""

    def snapshot(self) -> tuple[int, int, int] | None:
        try:
            with open("/proc/stat") as f:
                vals = [int(v) for v in f.readline().split()[1:9]]
            with open("/proc/self/stat") as f:
                own = f.read().rsplit(")", 1)[1].split()
            return sum(vals), vals[3] + vals[4], int(own[11]) + int(own[12])
        except (OSError, ValueError, IndexError):
            return None

    @staticmethod
    def foreign_cores(a, b) -> float | None:
        if a is None or b is None or b[0] == a[0]:
            return None
        total = b[0] - a[0]
        busy = total - (b[1] - a[1])
        return max(0.0, (busy - (b[2] - a[2])) / total * (os.cpu_count() or 1))


def loadavg() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError):
        return None


def time_windows(arms: dict[str, Any], threads: dict[str, int], window_s: float, rounds: int,
                 warmup_s: float) -> list[dict[str, Any]]:
    """Alternate the arms in A B B A order; each window runs whole generator steps for ``window_s``."""
    meter = LoadMeter()
    for name, arm in arms.items():
        torch.set_num_threads(threads[name])
        t0 = time.perf_counter()
        arm.step()
        while time.perf_counter() - t0 < warmup_s:
            arm.step()
        arm.sync()
    windows = []
    names = list(arms)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            arm = arms[name]
            torch.set_num_threads(threads[name])
            la, s0 = loadavg(), meter.snapshot()
            t0 = time.perf_counter()
            n = 0
            while True:
                arm.step()
                n += 1
                if time.perf_counter() - t0 >= window_s:
                    break
            arm.sync()
            dt = time.perf_counter() - t0
            windows.append({"arm": name, "round": r, "steps": n, "seconds": dt, "steps_per_s": n / dt,
                            "foreign_cores": LoadMeter.foreign_cores(s0, meter.snapshot()), "loadavg_1min": la})
    return windows


def check_same_math(trainer) -> dict[str, float]:
    """Largest relative differences between the arms' losses and gradients on identical inputs (float64).

    One critic step (loss, penalty, every critic parameter gradient) and one generator step (every
    generator parameter gradient), each arm on float64 copies of the same networks.
    """
    c = trainer.config
    gen = copy.deepcopy(trainer.generator).double()
    critic_w, critic_p = copy.deepcopy(trainer.critic).double(), copy.deepcopy(trainer.critic).double()
    g = torch.Generator().manual_seed(99)
    x_real = trainer.data.sample(c.batch_size, g).double()
    z = torch.randn(c.batch_size, c.z_dim, generator=g, dtype=torch.float64)
    zero = torch.optim.SGD(critic_w.parameters(), lr=0.0)
    stats = critic_step(critic_w, gen, zero, trainer.objective, trainer.lipschitz, trainer.comm, x_real, z,
                        torch.Generator().manual_seed(7))
    fake = gen(z).detach()
    gp = compute_gradient_penalty(critic_p, x_real, fake, torch.Generator().manual_seed(7))
    loss = -(critic_p(x_real).mean() - critic_p(fake).mean()) + c.gp_weight * gp
    loss.backward()

    def rel(a: torch.Tensor, b: torch.Tensor, scale: float | None = None) -> float:
        # relative to the tensor's own size, floored at 1e-6 of the largest gradient (a bias whose
        # gradient is exactly 0 on one path and 1e-17 on the other is not a difference)
        floor = 1e-6 * scale if scale is not None else 1e-30
        return float((a - b).abs().max() / max(float(b.abs().max()), floor))

    c_scale = max(float(p.grad.abs().max()) for p in critic_p.parameters())
    out = {"loss": rel(stats["loss/critic_total"], loss.detach()),
           "critic_grads": max(rel(pw.grad, pp.grad, c_scale)
                               for pw, pp in zip(critic_w.parameters(), critic_p.parameters()))}
    gen_w, gen_p = gen, copy.deepcopy(gen)
    for p in critic_p.parameters():
        p.grad = None
    generator_step(gen_w, critic_w, torch.optim.SGD(gen_w.parameters(), lr=0.0), trainer.objective, trainer.comm, z)
    (-critic_p(gen_p(z)).mean()).backward()
    g_scale = max(float(p.grad.abs().max()) for p in gen_p.parameters())
    out["generator_grads"] = max(rel(a.grad, b.grad, g_scale) for a, b in zip(gen_w.parameters(), gen_p.parameters()))
    return out


def memory_probe(name: str, arm: str, steps: int) -> float | None:
    """Peak resident memory (MiB) of a fresh process that runs only ``arm`` for ``steps`` generator steps."""
    cmd = [sys.executable, "-m", "benchmarks.run", "--probe", name, arm, "--probe-steps", str(steps)]
    try:
        out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])["maxrss_mib"]
    except (subprocess.SubprocessError, ValueError, KeyError, IndexError) as e:
        print(f"  memory probe {name}/{arm} failed: {e}", file=sys.stderr)
        return None


def _probe(name: str, arm: str, steps: int) -> None:
    wl = WORKLOADS[name]
    if arm == "wgan":
        trainer, threads = build_trainer(wl)
        torch.set_num_threads(threads)
        if trainer.data.kind == "toy":
            trainer.config.tick_every_steps = steps  # one tick (statistics, evaluation, diagnostics) at the end
            trainer.train(steps)
        else:  # the loop only: the image metrics' first tick trains a classifier (a cache, not training)
            arm_ = TrainerArm(trainer)
            for _ in range(steps):
                arm_.step()
            arm_.sync()
    else:
        plain = build_plain_alone(wl)
        for _ in range(steps):
            plain.step()
    print(json.dumps({"maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


# ---------------------------------------------------------------------------------------------- reporting
def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 1024 ** 2, 1)
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": mem, "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


ARMS = ("plain", "wgan", "plain-1t", "wgan-1t", "wgan-general")


def summarise(name: str, wl: Workload, windows, threads, flops, peak2, mem, same) -> dict[str, Any]:
    out: dict[str, Any] = {"workload": name, "label": wl.label, "threads": threads, "flops_per_step": flops,
                           "memory_mib": mem, "same_math": same, "windows": windows}
    arms = [a for a in ARMS if any(w["arm"] == a for w in windows)]
    for arm in arms:
        ws = [w for w in windows if w["arm"] == arm]
        steps, secs = sum(w["steps"] for w in ws), sum(w["seconds"] for w in ws)
        out[f"{arm}_steps_per_s"] = steps / secs
        out[f"{arm}_gflops"] = flops * steps / secs / 1e9
    out["ratio"] = out["wgan_steps_per_s"] / out["plain_steps_per_s"]
    per_round = []
    for r in sorted({w["round"] for w in windows}):
        rate = {w["arm"]: w["steps_per_s"] for w in windows if w["round"] == r}
        per_round.append(rate["wgan"] / rate["plain"])
    out["ratio_min"], out["ratio_max"] = min(per_round), max(per_round)
    if "plain-1t_steps_per_s" in out:  # both arms on one thread (wgan's default arm when it uses one)
        one = out.get("wgan-1t_steps_per_s", out["wgan_steps_per_s"] if threads["wgan"] == 1 else None)
        if one is not None:
            out["wgan_1t_steps_per_s"] = one
            out["ratio_1t"] = one / out["plain-1t_steps_per_s"]
    if "wgan-general_steps_per_s" in out:
        out["ratio_general"] = out["wgan-general_steps_per_s"] / out["plain_steps_per_s"]
    fc = [w["foreign_cores"] for w in windows if w["foreign_cores"] is not None]
    out["foreign_cores_mean"] = sum(fc) / len(fc) if fc else None
    out["foreign_cores_max"] = max(fc) if fc else None
    out["peak_gflops"] = peak2
    return out


def table(rows: list[dict[str, Any]], peak2: float) -> str:
    head = ("| workload | threads plain / wgan | plain loop steps/s | wgan steps/s | **ratio** (per-round range) "
            "| one thread each: plain / wgan steps/s (ratio) | GFLOP/s plain / wgan (% of peak) "
            "| peak memory plain / wgan (MiB) | max rel. diff loss / grads "
            "| other processes' load, cores (mean / max) |")
    lines = [head, "| --- | :---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['label']} | | skipped: {r['skipped']} | | | | | | | |")
            continue
        mem = r["memory_mib"] or {}
        mem_s = " / ".join("–" if mem.get(a) is None else f"{mem[a]:.0f}" for a in ("plain", "wgan"))
        s = r["same_math"]
        same_s = (f"{s['loss']:.0e} / {max(s['critic_grads'], s['generator_grads']):.0e}" if s else "–")
        fc = ("–" if r["foreign_cores_mean"] is None
              else f"{r['foreign_cores_mean']:.2f} / {r['foreign_cores_max']:.2f}")
        one = (f"{r['plain-1t_steps_per_s']:.2f} / {r['wgan_1t_steps_per_s']:.2f} ({r['ratio_1t']:.2f}x)"
               if "ratio_1t" in r else "–")
        th = r["threads"]
        lines.append(
            f"| {r['label']} | {th['plain']} / {th['wgan']} | {r['plain_steps_per_s']:.2f} "
            f"| {r['wgan_steps_per_s']:.2f} | **{r['ratio']:.2f}x** ({r['ratio_min']:.2f}–{r['ratio_max']:.2f}) "
            f"| {one} | {r['plain_gflops']:.1f} / {r['wgan_gflops']:.1f} "
            f"({100 * r['plain_gflops'] / peak2:.0f}% / {100 * r['wgan_gflops'] / peak2:.0f}%) "
            f"| {mem_s} | {same_s} | {fc} |")
    notes = [f"- {r['label']}: wgan with `--fast-penalty false` (autograd's double backward, everything else "
             f"the same) {r['wgan-general_steps_per_s']:.2f} steps/s, {r['ratio_general']:.2f}x the plain loop"
             for r in rows if "ratio_general" in r]
    if notes:
        lines += ["", "Without the written-out input gradient and backward:", *notes]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated workloads: " + ", ".join(WORKLOADS))
    p.add_argument("--rounds", type=int, default=4, help="A B B A rounds of windows per workload")
    p.add_argument("--window", type=float, default=None, help="seconds per window (default: per workload)")
    p.add_argument("--warmup", type=float, default=None, help="warm-up seconds per arm (default: one window)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes")
    p.add_argument("--no-ablation", dest="ablation", action="store_false",
                   help="skip the toy workloads' extra arm: wgan with --fast-penalty false (autograd's double "
                        "backward), which shows what the written-out gradient and backward add")
    p.add_argument("--no-one-thread", action="store_true",
                   help="skip the third arm: the plain loop limited to one thread (as wgan's small models)")
    p.add_argument("--probe", nargs=2, metavar=("WORKLOAD", "ARM"), help=argparse.SUPPRESS)
    p.add_argument("--probe-steps", type=int, default=20, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.probe:
        _probe(args.probe[0], args.probe[1], args.probe_steps)
        return 0
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        p.error(f"unknown workload(s) {unknown}; choose from {', '.join(WORKLOADS)}")

    info = machine()
    peak2, peak1 = sgemm_peak(DEFAULT_THREADS), sgemm_peak(1)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"# wgan benchmark, {started}")
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB; torch {info['torch']}")
    print(f"sgemm peak: {peak2:.0f} GFLOP/s with {DEFAULT_THREADS} threads, {peak1:.0f} with 1; "
          f"load average {loadavg()}")
    rows = []
    for name in names:
        wl = WORKLOADS[name]
        reason = wl.needs()
        if reason:
            print(f"\n## {name}: skipped ({reason})")
            rows.append({"workload": name, "label": wl.label, "skipped": reason})
            continue
        print(f"\n## {name}: {wl.label}", flush=True)
        trainer, trainer_threads = build_trainer(wl)
        plain = build_plain_from(trainer)
        arms: dict[str, Any] = {"plain": plain}
        threads = {"plain": DEFAULT_THREADS}
        arms["wgan"], threads["wgan"] = TrainerArm(trainer), trainer_threads
        if not args.no_one_thread and DEFAULT_THREADS > 1:  # both on one thread: immune to the neighbours
            arms["plain-1t"], threads["plain-1t"] = build_plain_from(trainer), 1
            if trainer_threads > 1:
                arms["wgan-1t"], threads["wgan-1t"] = TrainerArm(build_trainer(wl)[0]), 1
        if args.ablation and trainer.data.kind == "toy":  # wgan without the written-out gradient and backward
            arms["wgan-general"] = TrainerArm(build_trainer(wl, fast_penalty=False)[0])
            threads["wgan-general"] = trainer_threads
        c = trainer.config
        print(f"  data {c.data}, batch {c.batch_size}, n_critic {c.n_critic}, gp {c.gp_weight}, threads {threads}",
              flush=True)
        same = check_same_math(trainer)
        print(f"  same math (float64, max relative difference): {same}", flush=True)
        torch.set_num_threads(DEFAULT_THREADS)
        plain.step()  # warm the allocator before counting
        flops = count_flops(plain.step)
        window = args.window or wl.window_s
        windows = time_windows(arms, threads, window, args.rounds,
                               args.warmup if args.warmup is not None else window)
        mem = {}
        if not args.no_memory:
            steps = 20 if trainer.data.kind == "toy" else 3
            mem = {arm: memory_probe(name, arm, steps) for arm in ("plain", "wgan")}
        row = summarise(name, wl, windows, threads, flops, peak2, mem, same)
        rows.append(row)
        print(f"  plain {row['plain_steps_per_s']:.2f} steps/s, wgan {row['wgan_steps_per_s']:.2f} steps/s: "
              f"{row['ratio']:.2f}x (vs one thread: {row.get('ratio_1t', float('nan')):.2f}x); "
              f"other processes {row['foreign_cores_mean']:.2f} cores", flush=True)
        del trainer, plain, arms
    # the peak again at the end: the best of the two (a neighbour's load lowers what one sees)
    end2, end1 = sgemm_peak(DEFAULT_THREADS), sgemm_peak(1)
    print(f"sgemm peak at the end: {end2:.0f} GFLOP/s with {DEFAULT_THREADS} threads, {end1:.0f} with 1")
    peak2, peak1 = max(peak2, end2), max(peak1, end1)
    for r in rows:
        if "peak_gflops" in r:
            r["peak_gflops"] = peak2
    md = table(rows, peak2)
    header = (f"`make bench` ({started}) on {info['cpu']}, {info['cores']} cores, torch {info['torch']}; "
              f"sgemm peak {peak2:.0f} GFLOP/s ({DEFAULT_THREADS} threads), {peak1:.0f} (1 thread). "
              f"Steps are generator steps (each after n_critic = 5 critic steps); GFLOP/s count the plain "
              f"loop's arithmetic per step for both.")
    print("\n" + header + "\n\n" + md)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    payload = {"started": started, "machine": info, "sgemm_peak_gflops": {"threads": DEFAULT_THREADS, "peak": peak2,
                                                                          "one_thread": peak1},
               "args": vars(args), "rows": rows}
    atomic_write_json(RESULTS / f"bench-{stamp}.json", payload, indent=2)
    atomic_write_text(RESULTS / f"bench-{stamp}.md", header + "\n\n" + md + "\n")
    atomic_write_text(RESULTS / "latest.md", header + "\n\n" + md + "\n")
    print(f"\nresults: {RESULTS / f'bench-{stamp}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
