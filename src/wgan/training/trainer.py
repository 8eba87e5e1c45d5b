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

import copy
import dataclasses
import json
import math
import os
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from wgan.config import MODEL_FIELDS, ConfigError, TrainConfig, from_dict
from wgan.data import load_data
from wgan.lipschitz import build_lipschitz
from wgan.nets import build_nets, native, resolve_arch
from wgan.objectives import get_objective
from wgan.training import checkpoint as ckpt
from wgan.training.distributed import Comm, get_comm
from wgan.training.ema import EMA
from wgan.errors import TrainingDiverged  # noqa: F401 (re-exported: wgan.training.trainer.TrainingDiverged)
from wgan.training.steps import compiled_penalty, compiled_round, critic_step, generator_step
from wgan.variants import get_variant


MAX_ROLLBACKS = 3  # --on-nan rollback: reloads (each halving the learning rates) before giving up
_NEVER = 2**62  # "no non-finite value seen" in the on-device first-bad-step tracker


def _nonfinite_kind(v: float) -> str:
    return "NaN" if math.isnan(v) else ("+Inf" if v > 0 else "-Inf")




class StatsAccumulator:
    """Running sums of on-device scalars; read once per tick (one host sync)."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, stats: dict[str, torch.Tensor], count: int = 1) -> None:
        """Add one step's statistics, or the sums of ``count`` steps'."""
        for k, v in stats.items():
            if k in self.sums:
                self.sums[k] += v
            else:
                self.sums[k] = v.clone().float()
            self.counts[k] = self.counts.get(k, 0) + count

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


# Above this many FLOPs in one forward of both MLPs over a batch, a PyTorch step is bound by
# arithmetic and every core pays; below it (the toy 2x128 nets: ~17 MFLOP) per-op overhead rules, and
# one thread is as fast as two and immune to a busy neighbour (benchmarks/, docs/performance.md).
ARITHMETIC_BOUND_FLOPS = 128e6


def default_threads(config: TrainConfig, arch: str, data_shape: tuple[int, ...], compiled: bool = False,
                    processes: int = 1) -> int:
    """CPU threads when ``--threads`` is 0: every core (shared among the ``processes`` of the run on
    this machine) for conv nets, large MLPs and the compiled MLP steps (which give each thread a block
    of rows: one parallel region per step, not one per operation); one for other small MLPs."""
    cores = max(1, (os.cpu_count() or 1) // max(1, processes))
    if arch != "mlp" or compiled:
        return cores
    d = math.prod(data_shape)
    macs = (config.z_dim * config.g_width + (config.g_depth - 1) * config.g_width ** 2 + config.g_width * d
            + d * config.c_width + (config.c_depth - 1) * config.c_width ** 2 + config.c_width)
    return cores if 2 * macs * config.batch_size > ARITHMETIC_BOUND_FLOPS else 1


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
        self.comm = comm or get_comm(config.device)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.progress = progress
        self.device = self.comm.resolve_device(pick_device(config.device))  # cuda -> cuda:LOCAL_RANK
        if config.threads:
            torch.set_num_threads(config.threads)

        variant = get_variant(config.variant)
        self.objective = get_objective(variant.objective)
        self.lipschitz = build_lipschitz(variant.lipschitz, config)

        torch.manual_seed(config.seed)  # initial weights: the same on every rank, broadcast anyway
        self.data = load_data(config).to(self.device)
        self.arch = resolve_arch(config, self.data)
        generator, critic = build_nets(config, self.data)
        self.generator = generator.to(self.device)
        self.critic = self.lipschitz.wrap(critic).to(self.device)
        if not config.threads:  # the compiled MLP steps apply to these nets and this objective and method
            compiled = (compiled_penalty(self.objective, self.lipschitz) is not None
                        and native.generator_and_critic(self.generator, self.critic) is not None)
            torch.set_num_threads(default_threads(config, self.arch, self.data.shape, compiled,
                                                  self.comm.local_world_size))
        if self.device.type == "cpu" and self.arch != "mlp":
            # oneDNN's CPU convolutions run faster on channels-last (NHWC) weights and activations: about
            # 8% a step on the WGAN-GP paper's MNIST model, the same values (docs/performance.md)
            self.generator.to(memory_format=torch.channels_last)
            self.critic.to(memory_format=torch.channels_last)
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
        # One fused kernel per parameter instead of ~10 small ops (3x faster on small nets; the same
        # update up to rounding); the multi-tensor path where a device has no fused kernel.
        if c.optimizer == "adam":
            betas = (c.beta1 if c.beta1 is not None else 0.5, c.beta2 if c.beta2 is not None else 0.999)
            try:
                return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
            except (RuntimeError, ValueError):
                return torch.optim.Adam(params, lr=lr, betas=betas, foreach=True)
        return torch.optim.RMSprop(params, lr=lr, foreach=True)

    @property
    def sample_generator(self) -> torch.nn.Module:
        """The generator used for samples and evaluation: the EMA copy when enabled."""
        return self.ema.module if self.ema is not None else self.generator

    # ------------------------------------------------------------------ state
    # Divergence guard (class defaults, so the constructor needs no change):
    _nan_keys: tuple[str, ...] = ()  # statistics tracked this tick, in the order of _first_bad
    _first_bad: torch.Tensor | None = None  # (len(_nan_keys),) int64 on device: first step each went non-finite
    _good_state: dict[str, Any] | None = None  # --on-nan rollback: a copy of the last good state
    _last_ckpt_step: int | None = None  # step of checkpoints/latest.pt written or loaded by this process
    _divergences: tuple[dict[str, Any], ...] = ()  # every divergence event of this process
    rollbacks: int = 0  # rollbacks done (saved in checkpoints)
    resume_changes: tuple[str, ...] = ()  # "field: old -> new" accepted by resume()

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run exactly: weights, optimisers, EMA, step, config and
        every random state (the loop's generator and the global torch, numpy and python states)."""
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
            "data_shape": list(self.data.shape),  # with "config" and "arch": enough to rebuild the generator
            "arch": self.arch,
            "rollbacks": self.rollbacks,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved. The optimisers take this trainer's config learning
        rates (and Adam betas): the same values on a plain resume, the new ones after an override or
        a rollback."""
        self.generator.load_state_dict(state["generator"])
        self.critic.load_state_dict(state["critic"])
        self.gen_opt.load_state_dict(state["gen_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.step = int(state["step"])
        self.critic_iters = int(state["critic_iters"])
        self.w1_floor = state.get("w1_floor")
        self.rollbacks = int(state.get("rollbacks", 0))
        self._apply_config_hparams()
        ckpt.restore_rng(state["rng"]["global"])
        # A checkpoint holds every rank's loop stream ("loop_ranks", gathered at the tick); a state
        # without it is this process's own (a rollback snapshot) and holds its own stream in "loop".
        loops = state["rng"].get("loop_ranks")
        own = state["rng"]["loop"] if loops is None else (
            loops[self.comm.rank] if len(loops) == self.comm.world_size else None)
        if own is not None:  # the same world size: every rank continues its own stream
            self.rng.set_state(own.to(self.rng.get_state().device))
        else:  # another world size: per-rank streams cannot be continued exactly; reseed them
            self.rng.manual_seed(self.config.seed * 1_000_003 + 17 + self.comm.rank + 7919 * self.step)
        self.comm.broadcast_module(self.generator)
        self.comm.broadcast_module(self.critic)

    def _apply_config_hparams(self) -> None:
        c = self.config
        for opt, lr in ((self.gen_opt, c.lr_g), (self.critic_opt, c.lr_c)):
            for group in opt.param_groups:
                group["lr"] = lr
                if "betas" in group and c.beta1 is not None and c.beta2 is not None:
                    group["betas"] = (c.beta1, c.beta2)

    @classmethod
    def load_run(cls, run_dir: str | Path, device: str | None = None) -> "Trainer":
        """Rebuild a finished or running run from its latest checkpoint, read-only (writes nothing)."""
        run_dir = Path(run_dir)
        latest = run_dir / "checkpoints" / "latest.pt"
        if not latest.is_file():
            raise ConfigError(f"{str(run_dir)!r} has no checkpoints/latest.pt; is it a wgan run directory?")
        state = ckpt.load_checkpoint(latest)
        config = from_dict(state["config"])
        if device is not None:
            config = dataclasses.replace(config, device=device)
        trainer = cls(config, run_dir=None, comm=Comm())  # one process, no collectives (rank 0 under torchrun)
        trainer.load_state_dict(state)
        trainer.history = _read_jsonl(run_dir / "metrics.jsonl")
        return trainer

    @classmethod
    def resume(cls, run_dir: str | Path, overrides: dict[str, Any] | None = None, force: bool = False,
               comm: Comm | None = None, progress: bool = False) -> "Trainer":
        """Continue the run in ``run_dir`` from ``checkpoints/latest.pt``.

        ``overrides`` may change schedule fields (``steps``, ``tick_every_steps``, learning rates...);
        the accepted changes are listed in ``trainer.resume_changes``. A change to a model or data
        field (:data:`wgan.config.MODEL_FIELDS`) is refused with a message listing every difference,
        unless ``force``; even with ``force``, a change that the saved weights or optimiser state
        cannot follow (another width, depth, optimiser, a spectral-norm critic...) is refused.

        Raises:
            ConfigError: not a run, or a refused change.
            CheckpointError: ``latest.pt`` is corrupt, unsafe or of another format.
        """
        run_dir = Path(run_dir)
        where = f"--resume {str(run_dir)!r}"
        latest = run_dir / "checkpoints" / "latest.pt"
        if not latest.is_file():
            if (run_dir / "config.json").is_file():
                raise ConfigError(f"{where}: the run has no checkpoint yet (it stopped before its first tick); "
                                  f"start it again instead")
            raise ConfigError(f"{where}: no checkpoints/latest.pt there; is it a wgan run directory?")
        state = ckpt.load_checkpoint(latest)
        saved = state["config"]
        merged = dict(saved)
        for k, v in (overrides or {}).items():
            if k in saved and saved[k] != v:
                merged[k] = v
        changed = [k for k in merged if merged[k] != saved[k]]

        def listing(keys):
            return "; ".join(f"{k.replace('_', '-')} {saved[k]!r} -> {merged[k]!r}" for k in keys)

        model_changes = [k for k in changed if k in MODEL_FIELDS]
        if model_changes and not force:
            raise ConfigError(f"{where}: the model/data configuration differs from the run's: "
                              f"{listing(model_changes)}; drop these flags to continue the run as it was, "
                              f"or add --force to accept them")
        if "optimizer" in changed:
            raise ConfigError(f"{where}: cannot change the optimiser ({listing(['optimizer'])}), even with "
                              f"--force: the checkpoint holds {saved['optimizer']} state; start a new run")
        config = from_dict(merged)
        trainer = cls(config, run_dir=run_dir, comm=comm, progress=progress)
        try:
            trainer.load_state_dict(state)
        except (RuntimeError, KeyError, ValueError) as e:
            detail = " ".join(line.strip() for line in str(e).strip().splitlines()[:2])[:200]
            if model_changes:
                raise ConfigError(f"{where} --force: the saved weights do not fit the changed model "
                                  f"({listing(model_changes)}): {detail}") from None
            raise ckpt.CheckpointError(f"{str(latest)!r} does not match the run's own configuration: "
                                       f"{detail}") from None
        trainer.resume_changes = tuple(f"{k.replace('_', '-')} {saved[k]!r} -> {merged[k]!r}" for k in changed)
        if any(k in ("data", "data_scale", "data_std", "classes", "image_size", "channels") for k in changed):
            trainer.w1_floor = None  # the saved floor belongs to the old data; train() measures it again
        trainer._last_ckpt_step = trainer.step
        if trainer.comm.is_main:  # rank 0 alone reads (and trims) the log it alone writes
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
            while self.step < total and not self._should_stop():
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
        if c.on_nan == "rollback" and self._good_state is None:
            self._good_state = self._snapshot()  # the start state, until the first good tick
        # the whole step in one compiled call where it applies: the same steps, the same draws in the same
        # order (the interpolation weights drawn here, where critic_step would draw them)
        run = compiled_round(self.generator, self.critic, self.critic_opt, self.gen_opt, self.objective,
                             self.lipschitz, self.comm)
        draws = []
        for _ in range(c.n_critic):
            x_real = self.data.sample(B, self.rng)
            z = torch.randn(B, c.z_dim, generator=self.rng, device=self.device)
            if run is not None:
                draws.append((x_real, z, torch.rand(B, generator=self.rng, device=self.device, dtype=x_real.dtype)))
                continue
            apply_penalty = self.critic_iters % self.lipschitz.interval == 0
            self.acc.add(critic_step(self.critic, self.generator, self.critic_opt, self.objective,
                                     self.lipschitz, self.comm, x_real, z, self.rng, apply_penalty))
            self.critic_iters += 1
        z = torch.randn(B, c.z_dim, generator=self.rng, device=self.device)
        if run is not None:
            critic_stats, gen_stats = run(*zip(*draws), z)
            self.acc.add(critic_stats, count=c.n_critic)
            self.critic_iters += c.n_critic
        else:
            gen_stats = generator_step(self.generator, self.critic, self.gen_opt, self.objective, self.comm, z)
        self.acc.add(gen_stats)
        if self.ema is not None:
            self.ema.update(self.generator)
        self.step += 1
        self._track_nonfinite()

    def _track_nonfinite(self) -> None:
        """Record, on the device, the first step at which each running statistic went NaN or Inf.

        The tick's running sums stay non-finite once a term was (NaN + x = NaN, Inf + x = Inf or
        NaN), so one check of the sums per generator step finds the step; no host sync happens here.
        """
        sums = self.acc.sums
        if len(sums) != len(self._nan_keys):  # a term appeared (first step of a tick, lazy penalty)
            new = [k for k in sums if k not in self._nan_keys]
            pad = torch.full((len(new),), _NEVER, dtype=torch.int64, device=self.device)
            self._first_bad = pad if self._first_bad is None else torch.cat([self._first_bad, pad])
            self._nan_keys = (*self._nan_keys, *new)
        s = torch.stack([sums[k] for k in self._nan_keys])
        self._first_bad = torch.where(torch.isfinite(s), self._first_bad, self._first_bad.clamp(max=self.step))

    def _snapshot(self) -> dict[str, Any]:
        return copy.deepcopy(self.state_dict())

    def _nonfinite_params(self) -> list[str]:
        names, flags = [], []
        for prefix, module in (("generator", self.generator), ("critic", self.critic)):
            for n, p in module.named_parameters():
                names.append(f"{prefix}.{n}")
                flags.append(torch.isfinite(p).all())
        ok = torch.stack(flags).tolist()  # one host sync per tick
        return [n for n, f in zip(names, ok) if not f]

    # ------------------------------------------------------------------ ticks
    def tick(self) -> dict[str, Any]:
        """Reduce statistics, evaluate, and (rank 0) write metrics, samples and a checkpoint."""
        now = time.perf_counter()
        steps_done = max(1, self.step - self._tick_step0)
        record: dict[str, Any] = {"step": self.step, "time/step_ms": 1000 * (now - self._tick_start) / steps_done}
        record.update(self.acc.means(self.comm))
        bad = [k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)]
        first_bad = {}
        if bad and self._first_bad is not None:
            first_bad = {k: s for k, s in zip(self._nan_keys, self._first_bad.tolist()) if s != _NEVER}
        self._nan_keys, self._first_bad = (), None  # the running sums start again
        # Finite losses but non-finite weights: a gradient was NaN/Inf in the tick's last step.
        bad_params = [] if bad else self._nonfinite_params()
        if bad or bad_params:
            self._diverged(bad, record, bad_params, first_bad)  # raises, or rolls back
            return record
        # Every rank (collectives): the ranks must still hold one model, or a clear error; every
        # rank's loop stream goes into the checkpoint, so a resume with the same world size is exact.
        self.comm.check_identical(self.generator, "generator")
        self.comm.check_identical(self.critic, "critic")
        loop_states = self.comm.all_gather_object(self.rng.get_state())
        if self.comm.is_main:
            record.update(self.evaluate())
            record.update(self.diagnose())
            self.history.append(record)
            if self.run_dir is not None:
                with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
                if self.config.tensorboard:
                    from wgan.diagnostics.tb import log_record

                    log_record(self.run_dir, record)
                self._write_samples()
                state = self.state_dict()
                state["rng"]["loop_ranks"] = loop_states
                ckpt.save_with_history(self.run_dir / "checkpoints", state, self.step,
                                       self.config.keep_checkpoints)
                self._last_ckpt_step = self.step
        # Rank 0's evaluation may have run the critic in training mode (a spectral-norm forward advances
        # its vectors): every rank continues from rank 0's state, as the single process would.
        self.comm.broadcast_module(self.critic)
        if self.config.on_nan == "rollback":
            self._good_state = self._snapshot()  # what --on-nan rollback returns to
        self.comm.barrier()
        self._tick_start, self._tick_step0 = time.perf_counter(), self.step
        return record

    def _should_stop(self) -> bool:
        """True once any rank got SIGINT/SIGTERM; every rank agrees, so all stop at the same step."""
        if self.comm.any_rank(self._stop_signal is not None) and self._stop_signal is None:
            self._stop_signal = "a stop signal (on another rank)"
        return self._stop_signal is not None

    def _diverged(self, bad: list[str], record: dict[str, Any], bad_params: list[str] = (),
                  first_bad: dict[str, int] | None = None) -> None:
        """Stop with :class:`TrainingDiverged` naming the step and the terms, after writing
        ``diverged.json``; or, with ``on_nan = "rollback"``, reload the last good state with halved
        learning rates (at most :data:`MAX_ROLLBACKS` times)."""
        c = self.config
        first_bad = first_bad or {}
        span = f"between steps {self._tick_step0 + 1} and {self.step}"
        if bad:
            order = list(first_bad)  # the order the step functions report terms: losses first
            bad = sorted(bad, key=lambda k: order.index(k) if k in order else len(order))
            steps = [first_bad[k] for k in bad if k in first_bad]
            at = min(steps) if steps else None
            terms = [k for k in bad if first_bad.get(k) == at] if at is not None else bad
            msg = (f"training diverged at step {at}: " if at is not None else f"training diverged {span}: ")
            msg += f"{terms[0]} became {_nonfinite_kind(record[terms[0]])}"
            others = terms[1:] + [f"{k} later" for k in bad if k not in terms]
            if others:
                msg += f" (so did {', '.join(others)})"
        else:
            at = self.step
            shown = ", ".join(bad_params[:3]) + (", ..." if len(bad_params) > 3 else "")
            msg = (f"training diverged at step {at}: a gradient became NaN or Inf "
                   f"(non-finite parameters: {shown})")
        event: dict[str, Any] = {
            "step": at, "between_steps": [self._tick_step0 + 1, self.step],
            "terms": {k: str(record[k]) for k in bad}, "first_bad_step": first_bad,
            "nonfinite_parameters": list(bad_params), "on_nan": c.on_nan,
            "lr_g": c.lr_g, "lr_c": c.lr_c, "rollbacks": self.rollbacks,
            "last_good_checkpoint": None if self._last_ckpt_step is None else {
                "step": self._last_ckpt_step,
                "path": str(self.run_dir / "checkpoints" / "latest.pt") if self.run_dir else None},
            "record": {k: (v if isinstance(v, (int, float)) and math.isfinite(v) else str(v))
                       for k, v in record.items()},
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        rollback = c.on_nan == "rollback" and self.rollbacks < MAX_ROLLBACKS and self._good_state is not None
        if rollback:
            good_step = self._good_state["step"]
            lr_g, lr_c = c.lr_g / 2, c.lr_c / 2
            msg += (f"; rolled back to step {good_step} and halved the learning rates (lr-g {c.lr_g:g} -> "
                    f"{lr_g:g}, lr-c {c.lr_c:g} -> {lr_c:g}), rollback {self.rollbacks + 1} of {MAX_ROLLBACKS}")
            event.update(action="rollback", rolled_back_to_step=good_step, new_lr_g=lr_g, new_lr_c=lr_c)
        else:
            if c.on_nan == "rollback":
                msg += f"; gave up after {self.rollbacks} rollbacks"
            if self.run_dir is not None:
                if self._last_ckpt_step is not None:
                    msg += (f"; the last good checkpoint (step {self._last_ckpt_step}) is "
                            f"{self.run_dir / 'checkpoints' / 'latest.pt'}")
                else:
                    msg += "; no checkpoint had been written yet"
                msg += f"; details in {self.run_dir / 'diverged.json'}"
            event["action"] = "stop"
        event["message"] = msg
        self._divergences = (*self._divergences, event)
        if self.run_dir is not None and self.comm.is_main:
            report = dict(event, events=list(self._divergences), config=asdict(c),
                          versions=ckpt.software_versions())
            ckpt.atomic_write_text(self.run_dir / "diverged.json", json.dumps(report, indent=2, default=str))
        if not rollback:
            raise TrainingDiverged(msg)
        n = self.rollbacks + 1
        self.config = dataclasses.replace(c, lr_g=lr_g, lr_c=lr_c)
        self.load_state_dict(copy.deepcopy(self._good_state))  # a copy: optimisers alias what they load
        self.rollbacks = n
        if self.comm.is_main:
            print(f"wgan: warning: {msg}", file=sys.stderr, flush=True)
        self._tick_start, self._tick_step0 = time.perf_counter(), self.step

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
            if self._stop_signal is not None:  # a second signal: quit now; checkpoint writes are atomic
                raise KeyboardInterrupt
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


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl; a torn last line (crash mid-write) is skipped."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _read_history(path: Path, up_to_step: int) -> list[dict[str, Any]]:
    """Records of metrics.jsonl up to ``up_to_step`` (a crash may have logged past the checkpoint)."""
    if not path.is_file():
        return []
    out = [r for r in _read_jsonl(path) if r.get("step", 0) <= up_to_step]
    ckpt.atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in out))
    return out


def format_summary(summary: dict[str, Any], history: list[dict[str, Any]] | None = None,
                   config: Any = None) -> str:
    """The end-of-run summary as a few human lines, then the health verdict.

    The verdict (:func:`wgan.diagnostics.health.health_verdict`) is read from ``history`` (the
    trainer's tick records) or, when ``None``, from ``summary['run_dir']/metrics.jsonl``.
    """
    lines = [f"wgan: {summary['variant']} on {summary['data']}, {summary['step']} generator steps"]
    if "metrics/modes" in summary:
        lines.append(f"  modes captured     {summary['metrics/modes']} of {summary['metrics/modes_total']}"
                     f"  ({summary['metrics/modes_1pct']} with >= 1% of samples)")
        lines.append(f"  high quality       {summary['metrics/high_quality_pct']:.1f}% of samples within 3 std "
                     f"of a centre")
    if "metrics/w1" in summary:
        lines.append(f"  exact W1 to data   {summary['metrics/w1']:.4f}  (floor, data vs data: "
                     f"{summary['metrics/w1_floor']:.4f})")
    if summary.get("metrics/classifier_fd") is not None:
        lines.append(f"  classifier FD      {summary['metrics/classifier_fd']:.2f}  (floor, real vs real: "
                     f"{summary.get('metrics/classifier_fd_floor') or float('nan'):.2f}; classifier features, "
                     f"not Inception FID; {summary.get('metrics/n_fake')} generated images)")
    if summary.get("metrics/classifier_is") is not None:
        lines.append(f"  classifier IS      {summary['metrics/classifier_is']:.2f}  (real test images: "
                     f"{summary.get('metrics/classifier_is_real') or float('nan'):.2f})")
    if "metrics/classes_covered" in summary:
        lines.append(f"  classes covered    {summary['metrics/classes_covered']} of "
                     f"{summary['metrics/classes_total']}  (class KL to the data {summary['metrics/class_kl']:.3f})")
    if "critic/gap" in summary:
        objective = get_objective(get_variant(summary["variant"]).objective)
        meaning = ("the critic's W1 estimate, last tick" if objective.wasserstein_gap
                   else f"mean score gap; not a W1 estimate under the {objective.name} objective")
        lines.append(f"  critic gap         {summary['critic/gap']:.4f}  ({meaning})")
    if summary.get("run_dir"):
        lines.append(f"  run directory      {summary['run_dir']}")
        if (Path(summary["run_dir"]) / "report.html").is_file():
            lines.append(f"  report             {Path(summary['run_dir']) / 'report.html'}")
    lines += _verdict_lines(summary, history, config)
    return "\n".join(lines)


def _verdict_lines(summary: dict[str, Any], history, config) -> list[str]:
    from wgan.diagnostics.health import health_verdict, read_history

    if history is None and summary.get("run_dir") and (Path(summary["run_dir"]) / "metrics.jsonl").is_file():
        history = read_history(summary["run_dir"])
    if not history:
        return []
    return health_verdict(history, config if config is not None else {"variant": summary.get("variant")}
                          ).text(indent="  ").splitlines()
