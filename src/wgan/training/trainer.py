"""The trainer: builds every object from a config and runs the phases in order.

    for each generator step:
        n_critic x critic_step      (steps.py)
        generator_step              (steps.py), then the EMA update
        every tick (rank 0 writes): statistics -> metrics.jsonl, samples from a fixed z,
                                    evaluation, atomic checkpoint

All randomness of the loop comes from one explicit generator (``self.rng``) saved in the
checkpoint, so N steps and N/2 + resume + N/2 give the same parameters. Evaluation draws from its
own generators seeded by (seed, step) and never touches ``self.rng``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from wgan.config import MODEL_FIELDS, ConfigError, TrainConfig, from_dict
from wgan.data import load_data
from wgan.lipschitz import build_lipschitz
from wgan.nets import build_nets, resolve_arch
from wgan.objectives import get_objective
from wgan.training import checkpoint as ckpt
from wgan.training.distributed import Comm, get_comm
from wgan.training.ema import EMA
from wgan.training.steps import critic_step, generator_step
from wgan.variants import get_variant


class TrainingDiverged(RuntimeError):
    """A loss became NaN or Inf; the message names the step and the term."""


class StatsAccumulator:
    """Running sums of on-device scalars; read once per tick (one host sync)."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, stats: dict[str, torch.Tensor]) -> None:
        for k, v in stats.items():
            if k in self.sums:
                self.sums[k] += v
            else:
                self.sums[k] = v.clone().float()
            self.counts[k] = self.counts.get(k, 0) + 1

    def means(self, comm: Comm) -> dict[str, float]:
        if not self.sums:
            return {}
        keys = sorted(self.sums)
        vec = torch.stack([self.sums[k] / self.counts[k] for k in keys])
        vec = comm.all_reduce_mean(vec)
        values = vec.tolist()  # the tick's one host-device sync
        self.sums.clear()
        self.counts.clear()
        return dict(zip(keys, values))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name} requested but CUDA is not available; use --device cpu or auto")
    return dev


def _run_name(config: TrainConfig) -> str:
    data = config.data.split(":", 1)[0]
    return f"{config.variant}-{data}"


def new_run_dir(config: TrainConfig, root: str | Path = "runs") -> Path:
    """``config.out`` if given (must not exist or be empty), else the next ``runs/NNNNN-VARIANT-DATA``."""
    if config.out:
        out = Path(config.out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            what = "a run" if (out / "config.json").exists() else "not a run"
            hint = f"; to continue it use --resume {out}" if what == "a run" else ""
            raise ConfigError(f"--out {str(out)!r} exists and is {what}; refusing to overwrite it "
                              f"(choose a new folder{hint})")
        return out
    root = Path(root)
    nums = [int(p.name[:5]) for p in root.glob("[0-9][0-9][0-9][0-9][0-9]-*")] if root.is_dir() else []
    return root / f"{max(nums, default=0) + 1:05d}-{_run_name(config)}"


class Trainer:
    """Train a GAN variant as a config describes; ``train()`` runs to ``config.steps``.

    Args:
        config: a validated :class:`TrainConfig`.
        run_dir: where files go; ``None`` = no files at all (library use and tests).
        comm: the process group (world size 1 by default).
        progress: show a tqdm bar.

    Example:
        >>> from wgan.config import resolve
        >>> t = Trainer(resolve({"steps": 2, "tick_every_steps": 2}))
        >>> summary = t.train()
    """

    def __init__(self, config: TrainConfig, run_dir: str | Path | None = None, comm: Comm | None = None,
                 progress: bool = False):
        self.config = config
        self.comm = comm or get_comm()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.progress = progress
        self.device = pick_device(config.device)
        self.arch = None
        if config.threads:
            torch.set_num_threads(config.threads)

        variant = get_variant(config.variant)
        self.objective = get_objective(variant.objective)
        self.lipschitz = build_lipschitz(variant.lipschitz, config)

        torch.manual_seed(config.seed)  # initial weights: the same on every rank, broadcast anyway
        self.data = load_data(config).to(self.device)
        self.arch = resolve_arch(config, self.data)
        if not config.threads:
            torch.set_num_threads(1 if self.arch == "mlp" else max(1, os.cpu_count() or 1))
        generator, critic = build_nets(config, self.data)
        self.generator = generator.to(self.device)
        self.critic = self.lipschitz.wrap(critic).to(self.device)
        self.comm.broadcast_module(self.generator)
        self.comm.broadcast_module(self.critic)
        self.critic_opt = self._optimizer(self.critic, config.lr_c)
        self.gen_opt = self._optimizer(self.generator, config.lr_g)
        self.ema = EMA(self.generator, config.ema_decay) if config.ema_decay > 0 else None

        # One explicit generator for the loop's randomness: data draws, z, interpolation coefficients.
        self.rng = torch.Generator(device=self.device)
        self.rng.manual_seed(config.seed * 1_000_003 + 17 + self.comm.rank)  # per-rank stream
        # A fixed latent batch for comparable samples and evaluations at every tick.
        n_fixed = config.eval_samples if self.data.kind == "toy" else 64
        self.fixed_z = torch.randn(n_fixed, config.z_dim, generator=torch.Generator().manual_seed(config.seed + 1))
        self.fixed_z = self.fixed_z.to(self.device)

        self.step = 0  # generator steps done
        self.critic_iters = 0  # critic steps done (lazy regularisation phase)
        self.history: list[dict[str, Any]] = []  # one record per tick (also metrics.jsonl)
        self.acc = StatsAccumulator()
        self.w1_floor: float | None = None
        self._tick_start = time.perf_counter()
        self._tick_step0 = 0
        self._stop_signal: str | None = None

    # ------------------------------------------------------------------ construction helpers
    def _optimizer(self, module: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
        c = self.config
        params = [p for p in module.parameters() if p.requires_grad]
        if c.optimizer == "adam":
            return torch.optim.Adam(params, lr=lr, betas=(c.beta1 if c.beta1 is not None else 0.5,
                                                          c.beta2 if c.beta2 is not None else 0.999))
        return torch.optim.RMSprop(params, lr=lr)

    @property
    def sample_generator(self) -> torch.nn.Module:
        """The generator used for samples and evaluation: the EMA copy when enabled."""
        return self.ema.module if self.ema is not None else self.generator

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "step": self.step,
            "critic_iters": self.critic_iters,
            "generator": self.generator.state_dict(),
            "critic": self.critic.state_dict(),
            "gen_opt": self.gen_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": {"loop": self.rng.get_state(), "global": ckpt.capture_rng()},
            "w1_floor": self.w1_floor,
            "world_size": self.comm.world_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.critic.load_state_dict(state["critic"])
        self.gen_opt.load_state_dict(state["gen_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.step = int(state["step"])
        self.critic_iters = int(state["critic_iters"])
        self.w1_floor = state.get("w1_floor")
        ckpt.restore_rng(state["rng"]["global"])
        if state.get("world_size", 1) == self.comm.world_size:
            self.rng.set_state(state["rng"]["loop"].to(self.rng.get_state().device))
        else:  # another world size: per-rank streams cannot be continued exactly; reseed them
            self.rng.manual_seed(self.config.seed * 1_000_003 + 17 + self.comm.rank + 7919 * self.step)
        self.comm.broadcast_module(self.generator)
        self.comm.broadcast_module(self.critic)

    @classmethod
    def resume(cls, run_dir: str | Path, overrides: dict[str, Any] | None = None, force: bool = False,
               comm: Comm | None = None, progress: bool = False) -> "Trainer":
        """Continue the run in ``run_dir`` from ``checkpoints/latest.pt``.

        ``overrides`` may change schedule fields (``steps``, ``tick_every_steps``...); a change to a
        model or data field is refused unless ``force``.
        """
        run_dir = Path(run_dir)
        latest = run_dir / "checkpoints" / "latest.pt"
        if not latest.is_file():
            raise ConfigError(f"--resume {str(run_dir)!r}: no checkpoints/latest.pt there; is it a wgan run?")
        state = ckpt.load_checkpoint(latest)
        saved = state["config"]
        merged = dict(saved)
        changed = []
        for k, v in (overrides or {}).items():
            if k in saved and saved[k] != v:
                changed.append(f"{k}: {saved[k]!r} -> {v!r}")
                merged[k] = v
        model_changes = [c for c in changed if c.split(":")[0] in MODEL_FIELDS]
        if model_changes and not force:
            raise ConfigError(f"--resume {str(run_dir)!r}: the model/data configuration differs from the "
                              f"run's ({'; '.join(model_changes)}); use --force to override")
        config = from_dict(merged)
        trainer = cls(config, run_dir=run_dir, comm=comm, progress=progress)
        trainer.load_state_dict(state)
        trainer.history = _read_history(run_dir / "metrics.jsonl", trainer.step)
        if trainer.comm.is_main:
            ckpt.atomic_write_text(run_dir / "config.json", config.to_json())
        return trainer

    # ------------------------------------------------------------------ the loop
    def train(self, steps: int | None = None) -> dict[str, Any]:
        """Run until ``steps`` generator steps in total (default ``config.steps``); return the summary."""
        c = self.config
        total = c.steps if steps is None else steps
        if self.run_dir is not None and self.comm.is_main:
            self._init_run_dir()
        if self.w1_floor is None and self.data.kind == "toy":
            self.w1_floor = self._w1_floor()
        bar = None
        if self.progress and self.comm.is_main:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=self.step, unit="step", dynamic_ncols=True, leave=True)
        old_handlers = self._install_signal_handlers()
        self._tick_start, self._tick_step0 = time.perf_counter(), self.step
        try:
            while self.step < total and self._stop_signal is None:
                self._one_generator_step()
                if bar is not None:
                    bar.update(1)
                if self.step % c.tick_every_steps == 0 or self.step == total:
                    record = self.tick()
                    if bar is not None:
                        bar.set_postfix_str(_postfix(record), refresh=False)
            if self._stop_signal is not None:
                if self.step % c.tick_every_steps != 0:
                    self.tick()
                if self.comm.is_main:
                    print(f"\nwgan: {self._stop_signal} received; checkpoint saved at step {self.step}, "
                          f"resume with: wgan train --resume {self.run_dir}", flush=True)
        finally:
            if bar is not None:
                bar.close()
            self._restore_signal_handlers(old_handlers)
        summary = self.summary()
        if self.run_dir is not None and self.comm.is_main:
            ckpt.atomic_write_text(self.run_dir / "summary.json", json.dumps(summary, indent=2))
        return summary

    def _one_generator_step(self) -> None:
        c = self.config
        B = c.batch_size
        for _ in range(c.n_critic):
            x_real = self.data.sample(B, self.rng)
            z = torch.randn(B, c.z_dim, generator=self.rng, device=self.device)
            apply_penalty = self.critic_iters % self.lipschitz.interval == 0
            self.acc.add(critic_step(self.critic, self.generator, self.critic_opt, self.objective,
                                     self.lipschitz, self.comm, x_real, z, self.rng, apply_penalty))
            self.critic_iters += 1
        z = torch.randn(B, c.z_dim, generator=self.rng, device=self.device)
        self.acc.add(generator_step(self.generator, self.critic, self.gen_opt, self.objective, self.comm, z))
        if self.ema is not None:
            self.ema.update(self.generator)
        self.step += 1

    # ------------------------------------------------------------------ ticks
    def tick(self) -> dict[str, Any]:
        """Reduce statistics, evaluate, and (rank 0) write metrics, samples and a checkpoint."""
        now = time.perf_counter()
        steps_done = max(1, self.step - self._tick_step0)
        record: dict[str, Any] = {"step": self.step, "time/step_ms": 1000 * (now - self._tick_start) / steps_done}
        record.update(self.acc.means(self.comm))
        bad = [k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            self._diverged(bad, record)
        if self.comm.is_main:
            record.update(self.evaluate())
            record.update(self.diagnose())
            self.history.append(record)
            if self.run_dir is not None:
                with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
                self._write_samples()
                ckpt.save_with_history(self.run_dir / "checkpoints", self.state_dict(), self.step,
                                       self.config.keep_checkpoints)
        self.comm.barrier()
        self._tick_start, self._tick_step0 = time.perf_counter(), self.step
        return record

    def _diverged(self, bad: list[str], record: dict[str, Any]) -> None:
        msg = (f"training diverged between steps {self._tick_step0 + 1} and {self.step}: "
               f"{', '.join(bad)} became NaN/Inf; the last good checkpoint is kept")
        if self.run_dir is not None and self.comm.is_main:
            ckpt.atomic_write_text(self.run_dir / "diverged.json",
                                   json.dumps({"message": msg, "record": {k: str(v) for k, v in record.items()}}))
        raise TrainingDiverged(msg)

    @torch.no_grad()
    def generate(self, n: int | None = None, z: torch.Tensor | None = None) -> torch.Tensor:
        """Samples from the (EMA) generator in eval mode; ``z`` defaults to the fixed latent batch."""
        g = self.sample_generator
        was_training = g.training
        g.eval()
        try:
            if z is None:
                z = self.fixed_z if n is None else self.fixed_z[:n]
            return g(z)
        finally:
            g.train(was_training)

    def diagnose(self) -> dict[str, Any]:
        """Critic diagnostics of this tick (gradient norms at interpolates, Lipschitz probe)."""
        from wgan.diagnostics import tick_diagnostics

        return tick_diagnostics(self)

    def evaluate(self) -> dict[str, Any]:
        """Metrics of the current generator: the toy protocol for 2-D data, classifier metrics for images."""
        if self.data.kind != "toy":
            from wgan.metrics.image import image_metrics

            return image_metrics(self)
        from wgan.metrics.toy import toy_metrics

        rng = torch.Generator(device=self.device).manual_seed(self.config.seed * 7 + 3)  # same data each tick
        x_fake = self.generate().double().cpu().numpy()
        m = toy_metrics(x_fake, self.data, rng)
        out = {f"metrics/{k}": v for k, v in m.items()}
        out["metrics/w1_floor"] = self.w1_floor
        return out

    def _w1_floor(self) -> float:
        from wgan.metrics.toy import w1_floor

        rng = torch.Generator(device=self.device).manual_seed(self.config.seed * 7 + 5)
        return w1_floor(self.data, self.config.eval_samples, rng)

    def _write_samples(self) -> None:
        samples = self.run_dir / "samples"
        samples.mkdir(exist_ok=True)
        x = self.generate()
        path = samples / f"step-{self.step:07d}.png"
        if self.data.kind == "toy":
            from wgan.plots import scatter_png

            rng = torch.Generator(device=self.device).manual_seed(self.config.seed * 7 + 3)
            x_real = self.data.sample(len(x), rng).cpu().numpy()
            centers = self.data.centers.cpu().numpy() if self.data.centers is not None else None
            scatter_png(path, x.cpu().numpy(), x_real, centers, title=f"{self.config.variant} step {self.step}")
        else:
            from wgan.plots.grid import save_image_grid

            save_image_grid(path, x.cpu())

    def _init_run_dir(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "checkpoints").mkdir(exist_ok=True)
        (self.run_dir / "samples").mkdir(exist_ok=True)
        if not (self.run_dir / "config.json").exists():
            ckpt.atomic_write_text(self.run_dir / "config.json", self.config.to_json())

    # ------------------------------------------------------------------ signals
    def _install_signal_handlers(self):
        if self.run_dir is None or not _in_main_thread():
            return None

        def handler(signum, frame):
            self._stop_signal = signal.Signals(signum).name

        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in old:
            signal.signal(s, handler)
        return old

    @staticmethod
    def _restore_signal_handlers(old) -> None:
        if old:
            for s, h in old.items():
                signal.signal(s, h)

    # ------------------------------------------------------------------ summary
    def summary(self) -> dict[str, Any]:
        last = self.history[-1] if self.history else {}
        return {"step": self.step, "variant": self.config.variant, "data": self.config.data,
                "run_dir": str(self.run_dir) if self.run_dir else None,
                "stopped_by": self._stop_signal,
                **{k: v for k, v in last.items() if k != "step"}}


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _postfix(record: dict[str, Any]) -> str:
    parts = [f"gap {record.get('critic/gap', float('nan')):.3g}"]
    if "lipschitz/penalty" in record:
        parts.append(f"pen {record['lipschitz/penalty']:.3g}")
    if "metrics/modes" in record:
        parts.append(f"modes {record['metrics/modes']}/{record['metrics/modes_total']}")
        parts.append(f"hq {record['metrics/high_quality_pct']:.0f}%")
    return " ".join(parts)


def _read_history(path: Path, up_to_step: int) -> list[dict[str, Any]]:
    """Records of metrics.jsonl up to ``up_to_step`` (a crash may have logged past the checkpoint)."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec.get("step", 0) <= up_to_step:
            out.append(rec)
    ckpt.atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in out))
    return out


def format_summary(summary: dict[str, Any]) -> str:
    """The end-of-run summary as a few human lines."""
    lines = [f"wgan: {summary['variant']} on {summary['data']}, {summary['step']} generator steps"]
    if "metrics/modes" in summary:
        lines.append(f"  modes captured     {summary['metrics/modes']} of {summary['metrics/modes_total']}"
                     f"  ({summary['metrics/modes_1pct']} with >= 1% of samples)")
        lines.append(f"  high quality       {summary['metrics/high_quality_pct']:.1f}% of samples within 3 std "
                     f"of a centre")
    if "metrics/w1" in summary:
        lines.append(f"  exact W1 to data   {summary['metrics/w1']:.4f}  (floor, data vs data: "
                     f"{summary['metrics/w1_floor']:.4f})")
    if "critic/gap" in summary:
        lines.append(f"  critic gap         {summary['critic/gap']:.4f}  (the critic's W1 estimate, last tick)")
    if summary.get("run_dir"):
        lines.append(f"  run directory      {summary['run_dir']}")
    return "\n".join(lines)
