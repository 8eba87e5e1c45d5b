"""The divergence guard: a NaN or Inf in a loss or a parameter stops the run (or rolls it back).

Per generator step the guard records, on the device, the first step at which each running statistic
went non-finite (:meth:`DivergenceGuard.track`, no host sync). At the tick, where the statistics are
read anyway, :meth:`DivergenceGuard.check` finds the terms that went bad and, when the losses are
finite, the parameters that did (a NaN gradient in the tick's last step). :meth:`DivergenceGuard.event`
then words the message (the step, the terms, the last good checkpoint) and the ``diverged.json``
record; :func:`handle_divergence` stops the run with :class:`~wgan.errors.TrainingDiverged` or, with
``--on-nan rollback``, reloads the last good state (:attr:`DivergenceGuard.good_state`) with halved
learning rates, at most :data:`MAX_ROLLBACKS` times.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from wgan.errors import TrainingDiverged
from wgan.training import checkpoint as ckpt
from wgan.training import rundir

MAX_ROLLBACKS = 3  # --on-nan rollback: reloads (each halving the learning rates) before giving up
_NEVER = 2**62  # "no non-finite value seen" in the on-device first-bad-step tracker


def nonfinite_kind(v: float) -> str:
    """``"NaN"``, ``"+Inf"`` or ``"-Inf"``."""
    return "NaN" if math.isnan(v) else ("+Inf" if v > 0 else "-Inf")


@dataclass
class Divergence:
    """What went bad in one tick: non-finite terms of the record, their first bad steps (where known)
    and, when every term was finite, the non-finite parameters."""

    terms: list[str]
    first_bad: dict[str, int] = field(default_factory=dict)
    params: list[str] = field(default_factory=list)


class DivergenceGuard:
    """Tracks non-finite statistics on the device and words what went wrong.

    Args:
        on_nan: ``"stop"`` or ``"rollback"`` (``config.on_nan``).
        device: where the tracker lives.
    """

    def __init__(self, on_nan: str, device: torch.device):
        self.on_nan = on_nan
        self.device = device
        self.keys: tuple[str, ...] = ()  # statistics tracked this tick, in the order of first_bad
        self.first_bad: torch.Tensor | None = None  # (len(keys),) int64 on the device
        self.good_state: dict[str, Any] | None = None  # --on-nan rollback: a copy of the last good state
        self.events: tuple[dict[str, Any], ...] = ()  # every divergence event of this process

    @property
    def rollback(self) -> bool:
        return self.on_nan == "rollback"

    def remember(self, state: dict[str, Any]) -> None:
        """Keep a copy of a good state to roll back to (only with ``on_nan = "rollback"``)."""
        if self.rollback:
            self.good_state = copy.deepcopy(state)

    def track(self, sums: dict[str, torch.Tensor], step: int) -> None:
        """Record, on the device, the first step at which each running sum went NaN or Inf.

        The tick's running sums stay non-finite once a term was (NaN + x = NaN, Inf + x = Inf or
        NaN), so one check of the sums per generator step finds the step; no host sync happens here.
        """
        if len(sums) != len(self.keys):  # a term appeared (first step of a tick, lazy penalty)
            new = [k for k in sums if k not in self.keys]
            pad = torch.full((len(new),), _NEVER, dtype=torch.int64, device=self.device)
            self.first_bad = pad if self.first_bad is None else torch.cat([self.first_bad, pad])
            self.keys = (*self.keys, *new)
        s = torch.stack([sums[k] for k in self.keys])
        self.first_bad = torch.where(torch.isfinite(s), self.first_bad, self.first_bad.clamp(max=step))

    def check(self, record: dict[str, Any], modules: dict[str, nn.Module]) -> Divergence | None:
        """The tick's divergence, if any; starts the tracker again for the next tick.

        Args:
            record: the tick's statistics (host floats).
            modules: the trained nets by name, whose parameters are checked when the terms are finite.
        """
        bad = [k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)]
        first_bad = {}
        if bad and self.first_bad is not None:
            first_bad = {k: s for k, s in zip(self.keys, self.first_bad.tolist()) if s != _NEVER}
        self.keys, self.first_bad = (), None  # the running sums start again
        if bad:
            return Divergence(bad, first_bad)
        # Finite losses but non-finite weights: a gradient was NaN/Inf in the tick's last step.
        names, flags = [], []
        for prefix, module in modules.items():
            for name, p in module.named_parameters():
                names.append(f"{prefix}.{name}")
                flags.append(torch.isfinite(p).all())
        ok = torch.stack(flags).tolist() if flags else []  # one host sync per tick
        bad_params = [n for n, f in zip(names, ok) if not f]
        return Divergence([], {}, bad_params) if bad_params else None

    def event(self, div: Divergence, record: dict[str, Any], *, step: int, tick_step0: int, config,
              rollbacks: int, last_ckpt_step: int | None, run_dir: Path | None) -> dict[str, Any]:
        """The divergence event: its ``message`` (one line), ``action`` (``"rollback"`` or ``"stop"``)
        and everything ``diverged.json`` records. Appended to :attr:`events`."""
        c = config
        span = f"between steps {tick_step0 + 1} and {step}"
        bad, first_bad = div.terms, div.first_bad
        if bad:
            order = list(first_bad)  # the order the step functions report terms: losses first
            bad = sorted(bad, key=lambda k: order.index(k) if k in order else len(order))
            steps = [first_bad[k] for k in bad if k in first_bad]
            at = min(steps) if steps else None
            terms = [k for k in bad if first_bad.get(k) == at] if at is not None else bad
            msg = (f"training diverged at step {at}: " if at is not None else f"training diverged {span}: ")
            msg += f"{terms[0]} became {nonfinite_kind(record[terms[0]])}"
            others = terms[1:] + [f"{k} later" for k in bad if k not in terms]
            if others:
                msg += f" (so did {', '.join(others)})"
        else:
            at = step
            shown = ", ".join(div.params[:3]) + (", ..." if len(div.params) > 3 else "")
            msg = (f"training diverged at step {at}: a gradient became NaN or Inf "
                   f"(non-finite parameters: {shown})")
        latest = run_dir / "checkpoints" / "latest.pt" if run_dir is not None else None
        event: dict[str, Any] = {
            "step": at, "between_steps": [tick_step0 + 1, step],
            "terms": {k: str(record[k]) for k in bad}, "first_bad_step": first_bad,
            "nonfinite_parameters": list(div.params), "on_nan": c.on_nan,
            "lr_g": c.lr_g, "lr_c": c.lr_c, "rollbacks": rollbacks,
            "last_good_checkpoint": None if last_ckpt_step is None else {
                "step": last_ckpt_step, "path": str(latest) if latest else None},
            "record": {k: (v if isinstance(v, (int, float)) and math.isfinite(v) else str(v))
                       for k, v in record.items()},
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        if self.rollback and rollbacks < MAX_ROLLBACKS and self.good_state is not None:
            good_step = self.good_state["step"]
            lr_g, lr_c = c.lr_g / 2, c.lr_c / 2
            msg += (f"; rolled back to step {good_step} and halved the learning rates (lr-g {c.lr_g:g} -> "
                    f"{lr_g:g}, lr-c {c.lr_c:g} -> {lr_c:g}), rollback {rollbacks + 1} of {MAX_ROLLBACKS}")
            event.update(action="rollback", rolled_back_to_step=good_step, new_lr_g=lr_g, new_lr_c=lr_c)
        else:
            if self.rollback:
                msg += f"; gave up after {rollbacks} rollbacks"
            if run_dir is not None:
                if last_ckpt_step is not None:
                    msg += f"; the last good checkpoint (step {last_ckpt_step}) is {latest}"
                else:
                    msg += "; no checkpoint had been written yet"
                msg += f"; details in {run_dir / 'diverged.json'}"
            event["action"] = "stop"
        event["message"] = msg
        self.events = (*self.events, event)
        return event


def handle_divergence(trainer, div: Divergence, record: dict[str, Any]) -> None:
    """Write ``diverged.json`` and raise :class:`TrainingDiverged`; or, with ``on_nan = "rollback"``,
    reload ``trainer``'s last good state with halved learning rates and warn on stderr."""
    guard, c = trainer.guard, trainer.config
    event = guard.event(div, record, step=trainer.step, tick_step0=trainer._tick_step0, config=c,
                        rollbacks=trainer.rollbacks, last_ckpt_step=trainer.last_checkpoint_step,
                        run_dir=trainer.run_dir)
    if trainer.run_dir is not None and trainer.comm.is_main:
        rundir.write_json(trainer.run_dir, rundir.DIVERGED, dict(
            event, events=list(guard.events), config=asdict(c), versions=ckpt.software_versions()))
    if event["action"] == "stop":
        raise TrainingDiverged(event["message"])
    rollbacks = trainer.rollbacks + 1
    trainer.config = dataclasses.replace(c, lr_g=event["new_lr_g"], lr_c=event["new_lr_c"])
    trainer.load_state_dict(copy.deepcopy(guard.good_state))  # a copy: optimisers alias what they load
    trainer.rollbacks = rollbacks
    if trainer.comm.is_main:
        print(f"wgan: warning: {event['message']}", file=sys.stderr, flush=True)
