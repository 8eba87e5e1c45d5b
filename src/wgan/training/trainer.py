"""The trainer: builds every object from a config and runs the phases in order.

    for each generator step:
        n_critic x critic step      (self.engine, chosen once: wgan.engines)
        generator step              (self.engine), then the EMA update
        stop?                       a signal, a hook's should_stop, the time budget (every rank agrees)
        every tick (rank 0 writes): statistics -> metrics.jsonl, samples from a fixed z,
                                    evaluation (self.evaluator), atomic checkpoint, hooks' on_tick

All randomness of the loop comes from one explicit generator (``self.rng``) saved in the
checkpoint, so N steps and N/2 + resume + N/2 give the same parameters. Evaluation and diagnostics
draw from their own generators (:mod:`wgan.seeds`) and never touch ``self.rng``. Constructing a
trainer changes no global state: the initial weights come from a forked global generator, and the
CPU threads are applied by :meth:`Trainer.train` and restored after it.

The parts live next door: divergence handling (:mod:`~wgan.training.divergence`), the resume
policy (:mod:`~wgan.training.resume`), the run directory's files (:mod:`~wgan.training.rundir`),
the end-of-run text (:mod:`~wgan.training.summary`), evaluation per data kind (:mod:`wgan.metrics`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from wgan.config import TrainConfig
from wgan.data import load_data
from wgan.diagnostics import tick_diagnostics
from wgan.engines import choose_engine
from wgan.errors import TrainingDiverged
from wgan.lipschitz import build_lipschitz
from wgan.metrics import evaluator_for, generate
from wgan.nets import build_nets, resolve_arch
from wgan.objectives import get_objective
from wgan.seeds import derive_seed
from wgan.stats import STEP, STEP_MS, TICK_S
from wgan.training import checkpoint as ckpt
from wgan.training import rundir
from wgan.training.accumulator import StatsAccumulator
from wgan.training.distributed import Comm, get_comm
from wgan.training.divergence import MAX_ROLLBACKS, DivergenceGuard, handle_divergence
from wgan.training.ema import EMA
from wgan.training.hooks import CALIBRATION_STEPS, Hook, TickSchedule, hook_name
from wgan.training.resume import load_run, resume_trainer
from wgan.training.rundir import new_run_dir
from wgan.training.runtime import StopSignals, default_threads, num_threads, pick_device
from wgan.training.state import load_trainer_state, trainer_state
from wgan.training.summary import format_summary, progress_postfix
from wgan.variants import get_variant

# also importable from here, as before: TrainingDiverged, MAX_ROLLBACKS, format_summary, new_run_dir, ...
__all__ = ["Trainer", "Hook", "TrainingDiverged", "MAX_ROLLBACKS", "StatsAccumulator", "format_summary",
           "new_run_dir", "default_threads", "pick_device", "CALIBRATION_STEPS"]

_OTHER_RANK = "a stop signal (on another rank)"


class Trainer:
    """Train a GAN variant as a config describes; ``train()`` runs to ``config.steps``.

    Args:
        config: a validated :class:`TrainConfig`.
        run_dir: where files go; ``None`` = no files at all (library use and tests).
        comm: the process group (world size 1 by default).
        progress: show a tqdm bar.

    Attributes:
        evaluator: the data kind's :class:`~wgan.metrics.Evaluator`.
        history: the tick records (rank 0).
        stopped_by: what ended the last :meth:`train` early: a signal name, a hook, ``"time budget"``;
            ``None`` when it ran to its step.

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

        variant = get_variant(config.variant)
        self.objective = get_objective(variant.objective)
        self.lipschitz = build_lipschitz(variant.lipschitz, config)

        # Initial weights from the run's seed, the same on every rank (broadcast anyway), drawn from a
        # forked global generator: the process's own random state stays as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(config.seed, "init"))
            self.data = load_data(config).to(self.device)
            self.arch = resolve_arch(config, self.data)
            generator, critic = build_nets(config, self.data)
            self.generator = generator.to(self.device)
            self.critic = self.lipschitz.wrap(critic).to(self.device)
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
        # How the steps run, chosen once for these nets, optimisers and recipe (the compiled round reads
        # the optimisers' state when it runs: Adam makes it at its first step, load_state_dict replaces it)
        self.engine = choose_engine(self.generator, self.critic, self.objective, self.lipschitz,
                                    (self.critic_opt, self.gen_opt), self.comm)
        # CPU threads, applied by train() (not here: constructing a trainer changes no global state)
        self.threads = config.threads or default_threads(config, self.arch, self.data.shape,
                                                         self.engine.parallel_rows, self.comm.local_world_size)

        # One explicit generator for the loop's randomness: data draws, z, interpolation coefficients.
        self.rng = torch.Generator(device=self.device)
        self.rng.manual_seed(derive_seed(config.seed, "loop", rank=self.comm.rank))  # per-rank stream
        # The data kind's evaluation: its fixed latent batch, floors, feature classifier (set up lazily).
        self.evaluator = evaluator_for(self.data, config, self.device)

        self.step = 0  # generator steps done
        self.critic_iters = 0  # critic steps done (lazy regularisation phase)
        self.history: list[dict[str, Any]] = []  # one record per tick (also metrics.jsonl)
        self.acc = StatsAccumulator()
        self.guard = DivergenceGuard(config.on_nan, self.device)
        self.rollbacks = 0  # --on-nan rollback: rollbacks done (saved in checkpoints)
        self.resume_changes: tuple[str, ...] = ()  # "field: old -> new" accepted by resume()
        self.stopped_by: str | None = None
        self.hooks: list[Hook] = []
        self.last_checkpoint_step: int | None = None  # of checkpoints/latest.pt, written or loaded here
        self._signals = StopSignals(enabled=False)  # SIGINT/SIGTERM received during train()
        self._ticked_step: int | None = None  # the step of the last tick
        self._tick_start, self._tick_step0 = time.perf_counter(), 0  # the current tick's clock and first step
        self._train_s = 0.0  # seconds of training steps in this train() call, up to the current tick

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

    @property
    def fixed_z(self) -> torch.Tensor:
        """The fixed latent batch of the samples (the evaluator's)."""
        return self.evaluator.fixed_z

    def add_hook(self, hook: Hook) -> None:
        """Call ``hook.on_tick(trainer, record)`` after every tick and ``hook.should_stop(trainer)`` after
        every generator step (either method may be absent)."""
        self.hooks.append(hook)

    # ------------------------------------------------------------------ the loop
    def train(self, steps: int | None = None, *, time_budget_s: float | None = None,
              ticks: int | None = None) -> dict[str, Any]:
        """Train, then return the summary.

        Args:
            steps: run until this generator step in total (default ``config.steps``).
            time_budget_s: also stop when the seconds spent in training steps (ticks excluded) reach it.
            ticks: place this many ticks evenly: at marks of training time with ``time_budget_s`` (after a
                first chunk of :data:`CALIBRATION_STEPS` steps that also ends in a tick), else of steps;
                default: every ``config.tick_every_steps``.

        Training always ends with a tick at its last step, also when a signal, a hook or the time
        budget stops it (:attr:`stopped_by` says which).
        """
        c = self.config
        total = c.steps if steps is None else steps
        start = self.step
        if self.comm.is_main:
            if self.run_dir is not None:
                rundir.init_run_dir(self.run_dir, c)
            self.evaluator.setup()  # floors, real features: before any clock starts
            if self.run_dir is not None:
                rundir.write_description(self.run_dir, self.evaluator)
        if self.guard.rollback and self.guard.good_state is None:
            self.guard.remember(self.state_dict())  # the start state, until the first good tick
        schedule = TickSchedule.plan(c.tick_every_steps, start, total, time_budget_s, ticks)
        bar = None
        if self.progress and self.comm.is_main:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=self.step, unit="step", dynamic_ncols=True, leave=True)
        self.stopped_by, self._train_s = None, 0.0
        self._signals = StopSignals(enabled=self.run_dir is not None)
        self._tick_start, self._tick_step0 = time.perf_counter(), self.step
        try:
            with num_threads(self.threads), self._signals:
                while self.step < total:
                    # 1. one generator step: n_critic critic steps, the generator step, the EMA update
                    self.train_step()
                    if bar is not None:
                        bar.update(1)
                    # 2. stop early? a signal, a hook, the time budget: every rank agrees
                    self.stopped_by = self._stop_reason(time_budget_s)
                    if self.stopped_by is not None:
                        break
                    # 3. a tick when it is due: statistics, evaluation, checkpoint
                    if schedule.due(self.step, self._training_seconds()):
                        record = self.tick()
                        if bar is not None:
                            bar.set_postfix_str(progress_postfix(record, self.evaluator.columns), refresh=False)
                # 4. the last step always ends in a tick
                if self.step > start and self._ticked_step != self.step:
                    self.tick()
        finally:
            if bar is not None:
                bar.close()
        if (self._signals.received or self.stopped_by == _OTHER_RANK) and self.comm.is_main:
            print(f"\nwgan: {self.stopped_by} received; checkpoint saved at step {self.step}, "
                  f"resume with: wgan train --resume {self.run_dir}", flush=True)
        summary = self.summary()
        if self.run_dir is not None and self.comm.is_main:
            rundir.write_json(self.run_dir, rundir.SUMMARY, summary)
        return summary

    def train_step(self) -> None:
        """One generator step: ``n_critic`` critic steps, the generator step and the EMA update; no tick
        and no host sync (the statistics accumulate on the device until :meth:`flush_stats`)."""
        c = self.config
        B = c.batch_size
        # n_critic critic steps and one generator step, as the engine runs them (the compiled one in a
        # single call); every engine draws x_real, z (and the interpolation weights) in the same order
        critic_stats, gen_stats = self.engine.round(
            lambda: self.data.sample(B, self.rng),
            lambda: torch.randn(B, c.z_dim, generator=self.rng, device=self.device),
            self.rng, c.n_critic, self.critic_iters)
        for stats, count in critic_stats:
            self.acc.add(stats, count=count)
        self.critic_iters += c.n_critic
        self.acc.add(gen_stats)
        if self.ema is not None:
            self.ema.update(self.generator)
        self.step += 1
        self.guard.track(self.acc.sums, self.step)  # the first non-finite step, on the device

    _one_generator_step = train_step  # the old private name (tests/test_native.py, tests/test_fastgrad.py)

    def flush_stats(self) -> dict[str, float]:
        """The means of the statistics accumulated since the last call, over every rank: one host sync."""
        return self.acc.means(self.comm)

    def _training_seconds(self) -> float:
        """Seconds spent in training steps in this :meth:`train` call (ticks excluded); no sync."""
        return self._train_s + time.perf_counter() - self._tick_start

    def _stop_reason(self, budget: float | None) -> str | None:
        reason = self._signals.received
        if reason is None:
            reason = next((hook_name(h) for h in self.hooks
                           if hasattr(h, "should_stop") and h.should_stop(self)), None)
        if reason is None and budget is not None and self._training_seconds() >= budget:
            reason = "time budget"
        if self.comm.any_rank(reason is not None) and reason is None:  # every rank stops at the same step
            reason = _OTHER_RANK
        return reason

    # ------------------------------------------------------------------ ticks
    def tick(self) -> dict[str, Any]:
        """Reduce statistics, evaluate, and (rank 0) write metrics, samples and a checkpoint."""
        t0 = time.perf_counter()
        self._train_s += t0 - self._tick_start
        steps_done = max(1, self.step - self._tick_step0)
        record: dict[str, Any] = {STEP: self.step, STEP_MS: 1000 * (t0 - self._tick_start) / steps_done}
        record.update(self.flush_stats())  # the tick's one host sync of the statistics
        divergence = self.guard.check(record, {"generator": self.generator, "critic": self.critic})
        if divergence is not None:
            handle_divergence(self, divergence, record)  # raises, or rolls back to the last good state
            self._tick_start, self._tick_step0 = time.perf_counter(), self.step
            return record
        # Every rank (collectives): the ranks must still hold one model, or a clear error; every
        # rank's loop stream goes into the checkpoint, so a resume with the same world size is exact.
        self.comm.check_identical(self.generator, "generator")
        self.comm.check_identical(self.critic, "critic")
        loop_states = self.comm.all_gather_object(self.rng.get_state())
        if self.comm.is_main:
            record.update(self.evaluate())
            record.update(self.diagnose())
            if self.run_dir is not None:
                self.evaluator.samples_png(self.sample_generator, rundir.sample_path(self.run_dir, self.step),
                                           title=f"{self.config.variant} step {self.step}")
            record[TICK_S] = time.perf_counter() - t0
            self.history.append(record)
            if self.run_dir is not None:
                self._write_tick(record, loop_states)
            for hook in self.hooks:
                if hasattr(hook, "on_tick"):
                    hook.on_tick(self, record)
        # Rank 0's evaluation may have run the critic in training mode (a spectral-norm forward advances
        # its vectors): every rank continues from rank 0's state, as the single process would.
        self.comm.broadcast_module(self.critic)
        self.guard.remember(self.state_dict())  # what --on-nan rollback returns to
        self.comm.barrier()
        self._ticked_step = self.step
        self._tick_start, self._tick_step0 = time.perf_counter(), self.step
        return record

    def _write_tick(self, record: dict[str, Any], loop_states: list[Any]) -> None:
        """metrics.jsonl (+ TensorBoard), then the checkpoint."""
        rundir.append_metrics(self.run_dir, record)
        if self.config.tensorboard:
            from wgan.diagnostics.tb import log_record  # tensorboard, deferred on purpose

            log_record(self.run_dir, record)
        state = self.state_dict()
        state["rng"]["loop_ranks"] = loop_states
        ckpt.save_with_history(self.run_dir / rundir.CHECKPOINTS, state, self.step, self.config.keep_checkpoints)
        self.last_checkpoint_step = self.step

    def evaluate(self) -> dict[str, Any]:
        """Metrics of the current (EMA) generator, by the data kind's evaluator."""
        return self.evaluator.evaluate(self.sample_generator)

    def diagnose(self) -> dict[str, Any]:
        """Critic diagnostics of this tick (gradient norms at interpolates, Lipschitz probe, gaps)."""
        return tick_diagnostics(self)

    def generate(self, n: int | None = None, z: torch.Tensor | None = None) -> torch.Tensor:
        """Samples from the (EMA) generator in eval mode; ``z`` defaults to the fixed latent batch."""
        if z is None:
            z = self.fixed_z if n is None else self.fixed_z[:n]
        return generate(self.sample_generator, z)

    def summary(self) -> dict[str, Any]:
        """Step, variant, data, run directory, what stopped the run, and the last tick's record."""
        last = self.history[-1] if self.history else {}
        return {"step": self.step, "variant": self.config.variant, "data": self.config.data,
                "run_dir": str(self.run_dir) if self.run_dir else None, "stopped_by": self.stopped_by,
                **{k: v for k, v in last.items() if k != STEP}}

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run exactly (:func:`wgan.training.state.trainer_state`)."""
        return trainer_state(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (:func:`wgan.training.state.load_trainer_state`)."""
        load_trainer_state(self, state)
        self._ticked_step = self.step  # a checkpoint is written at a tick

    @classmethod
    def load_run(cls, run_dir: str | Path, device: str | None = None) -> Trainer:
        """Rebuild a finished or running run from its latest checkpoint, read-only (writes nothing and
        leaves the process's global random states as they were)."""
        return load_run(cls, run_dir, device)

    @classmethod
    def resume(cls, run_dir: str | Path, overrides: dict[str, Any] | None = None, force: bool = False,
               comm: Comm | None = None, progress: bool = False) -> Trainer:
        """Continue the run in ``run_dir`` from ``checkpoints/latest.pt``.

        ``overrides`` may change schedule fields; the accepted changes are listed in
        ``trainer.resume_changes``. Model or data changes need ``force`` (:mod:`wgan.training.resume`).

        Raises:
            ConfigError: not a run, or a refused change.
            CheckpointError: ``latest.pt`` is corrupt, unsafe or of another format.
        """
        return resume_trainer(cls, run_dir, overrides, force, comm, progress)
