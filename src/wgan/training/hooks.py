"""Hooks into the training loop, and where its ticks fall.

A hook is any object with either or both of ``on_tick(trainer, record)`` and
``should_stop(trainer)`` (:class:`Hook`), given to :meth:`wgan.training.trainer.Trainer.add_hook`.
:class:`TickSchedule` says when a tick is due: every ``tick_every_steps``, or at even marks of
steps or of training time (a time budget), the loop's one clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

CALIBRATION_STEPS = 20  # with a time budget and ticks: the first chunk, which ends in an early tick


class Hook(Protocol):
    """What ``Trainer.add_hook`` accepts: an object with either or both methods (both optional)."""

    def on_tick(self, trainer: Any, record: dict[str, Any]) -> None:
        """Called on rank 0 after each tick's record is complete (evaluated and written)."""

    def should_stop(self, trainer: Any) -> bool:
        """Checked after every generator step; ``True`` ends training with a final tick."""


def hook_name(hook: Any) -> str:
    """How ``Trainer.stopped_by`` names a hook: its ``name`` attribute, else its class name."""
    return str(getattr(hook, "name", type(hook).__name__))


@dataclass
class TickSchedule:
    """When ticks fall: every ``every`` steps, or at the listed ``steps`` and ``seconds`` of training
    (ascending; passing one or more marks gives one tick).

    Example:
        >>> s = TickSchedule.plan(every=100, start=0, total=1000, budget=None, ticks=4)
        >>> [k for k in range(1, 1001) if s.due(k, 0.0)]
        [250, 500, 750, 1000]
    """

    every: int | None
    steps: list[int]
    seconds: list[float]

    @classmethod
    def plan(cls, every: int, start: int, total: int, budget: float | None, ticks: int | None) -> TickSchedule:
        """Every ``every`` steps without ``ticks``; else ``ticks`` marks spread evenly over the
        training time ``budget`` (after a first chunk of :data:`CALIBRATION_STEPS` steps that also
        ends in a tick) or, without a budget, over the steps from ``start`` to ``total``."""
        if not ticks:
            return cls(every, [], [])
        if budget is not None:
            return cls(None, [start + CALIBRATION_STEPS], [budget * k / ticks for k in range(1, ticks + 1)])
        return cls(None, [start + round(k * (total - start) / ticks) for k in range(1, ticks + 1)], [])

    def due(self, step: int, train_s: float) -> bool:
        """Whether a tick is due after ``step`` with ``train_s`` seconds of training."""
        if self.every:
            return step % self.every == 0
        due = False
        while self.steps and step >= self.steps[0]:
            self.steps.pop(0)
            due = True
        while self.seconds and train_s >= self.seconds[0]:
            self.seconds.pop(0)
            due = True
        return due
