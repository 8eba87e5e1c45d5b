"""Resuming a run: which changes it accepts (the messages when it refuses), and rebuilding its trainer.

A resume may change schedule fields (``steps``, ``tick_every_steps``, learning rates...). A change
to a model or data field (:data:`wgan.config.MODEL_FIELDS`) is refused with a message listing every
difference, unless ``force``; even with ``force``, a change of optimiser is refused (the checkpoint
holds its state), and so is one the saved weights cannot follow (found when they are loaded:
:func:`load_failure`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wgan.config import MODEL_FIELDS, TrainConfig, from_dict
from wgan.errors import CheckpointError, ConfigError
from wgan.metrics import evaluator_for
from wgan.training import checkpoint as ckpt
from wgan.training import rundir
from wgan.training.distributed import Comm

# fields whose change means other data: the evaluator's saved references (the W1 floor) are void
DATA_FIELDS = ("data", "data_scale", "data_std", "classes", "image_size", "channels")


@dataclass
class ResumePlan:
    """A checkpoint and the configuration the resumed run continues with.

    Attributes:
        state: the loaded ``checkpoints/latest.pt``.
        config: the saved configuration with the accepted overrides.
        changed: the fields that differ from the saved configuration.
        model_changes: those of them that are model or data fields (accepted with ``force``).
        saved: the saved configuration (a dict).
        merged: the saved configuration with the accepted overrides (a dict).
        where: ``--resume 'RUN_DIR'``, the prefix of every message.
        latest: the checkpoint's path.
    """

    state: dict[str, Any]
    config: TrainConfig | None
    changed: list[str]
    model_changes: list[str]
    saved: dict[str, Any]
    merged: dict[str, Any]
    where: str
    latest: Path

    def listing(self, keys=None) -> list[str]:
        """``"field old -> new"`` of each change (all of them by default)."""
        return [f"{k.replace('_', '-')} {self.saved[k]!r} -> {self.merged[k]!r}"
                for k in (self.changed if keys is None else keys)]

    @property
    def data_changed(self) -> bool:
        return any(k in DATA_FIELDS for k in self.changed)


def plan_resume(run_dir: str | Path, overrides: dict[str, Any] | None = None, force: bool = False) -> ResumePlan:
    """Load ``run_dir``'s latest checkpoint and decide the resumed configuration.

    Raises:
        ConfigError: not a run, no checkpoint yet, or a refused change.
        CheckpointError: ``latest.pt`` is corrupt, unsafe or of another format.
    """
    run_dir = Path(run_dir)
    where = f"--resume {str(run_dir)!r}"
    latest = run_dir / rundir.LATEST
    if not latest.is_file():
        if (run_dir / rundir.CONFIG).is_file():
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
    model_changes = [k for k in changed if k in MODEL_FIELDS]
    plan = ResumePlan(state, None, changed, model_changes, saved, merged, where, latest)
    if model_changes and not force:
        raise ConfigError(f"{where}: the model/data configuration differs from the run's: "
                          f"{'; '.join(plan.listing(model_changes))}; drop these flags to continue the run "
                          f"as it was, or add --force to accept them")
    if "optimizer" in changed:
        raise ConfigError(f"{where}: cannot change the optimiser ({'; '.join(plan.listing(['optimizer']))}), "
                          f"even with --force: the checkpoint holds {saved['optimizer']} state; start a new run")
    plan.config = from_dict(merged)
    return plan


def load_failure(plan: ResumePlan, error: Exception) -> Exception:
    """The error to raise when the saved state does not load into the resumed trainer."""
    detail = " ".join(line.strip() for line in str(error).strip().splitlines()[:2])[:200]
    if plan.model_changes:
        return ConfigError(f"{plan.where} --force: the saved weights do not fit the changed model "
                           f"({'; '.join(plan.listing(plan.model_changes))}): {detail}")
    return CheckpointError(f"{str(plan.latest)!r} does not match the run's own configuration: {detail}")


def resume_trainer(cls, run_dir: str | Path, overrides: dict[str, Any] | None = None, force: bool = False,
                   comm=None, progress: bool = False):
    """``cls.resume``: a trainer of class ``cls`` continuing the run in ``run_dir`` (see :func:`plan_resume`)."""
    plan = plan_resume(run_dir, overrides, force)
    trainer = cls(plan.config, run_dir=run_dir, comm=comm, progress=progress)
    try:
        trainer.load_state_dict(plan.state)
    except (RuntimeError, KeyError, ValueError) as e:
        raise load_failure(plan, e) from None
    trainer.resume_changes = tuple(plan.listing())
    if plan.data_changed:  # the saved references (the W1 floor) belong to the old data
        trainer.evaluator = evaluator_for(trainer.data, trainer.config, trainer.device)
    trainer.last_checkpoint_step = trainer.step
    if trainer.comm.is_main:  # rank 0 alone reads (and trims) the log it alone writes
        trainer.history = rundir.trim_metrics(trainer.run_dir, trainer.step)
        rundir.write_config(trainer.run_dir, plan.config)
    return trainer


def load_run(cls, run_dir: str | Path, device: str | None = None):
    """``cls.load_run``: the run's trainer rebuilt from its latest checkpoint, read-only: it writes
    nothing and leaves the process's global random states as they were."""
    run_dir = Path(run_dir)
    latest = run_dir / rundir.LATEST
    if not latest.is_file():
        raise ConfigError(f"{str(run_dir)!r} has no checkpoints/latest.pt; is it a wgan run directory?")
    state = ckpt.load_checkpoint(latest)
    config = from_dict(state["config"])
    if device is not None:
        config = dataclasses.replace(config, device=device)
    trainer = cls(config, run_dir=None, comm=Comm())  # one process, no collectives (rank 0 under torchrun)
    saved = ckpt.capture_rng()
    try:
        trainer.load_state_dict(state)
    finally:
        ckpt.restore_rng(saved)
    trainer.history = rundir.read_metrics(run_dir)
    return trainer
