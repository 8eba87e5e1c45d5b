"""What an evaluator is: the columns it produces and the interface the trainer calls.

One evaluator per data kind (:data:`wgan.metrics.EVALUATORS`) owns its set-up (floors, fixed
latents, a feature classifier, its own seeded generators), its evaluation, its sample figure and the
columns it produces. The report, ``wgan compare``, the progress bar and the end-of-run summary list
metrics by iterating :attr:`Evaluator.columns`, never by spelling metric keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import nn


@dataclass(frozen=True)
class Column:
    """One metric an evaluator produces, and how to show it.

    Attributes:
        key: the record key (``metrics/...``).
        title: the column title in tables (``wgan compare``).
        fmt: a format spec for one value, e.g. ``".4f"``.
        description: what the value means (the report's metrics table).
        floor_key: the key of what a perfect generator would score, if measured.
        better: ``"lower"``, ``"higher"`` or ``None`` (no direction).
        summary: ``(label, template)`` of the end-of-run line, or ``None`` for no line. The template
            is formatted with ``value``, ``floor`` and every ``metrics/NAME`` of the record as ``NAME``.
        progress: the progress bar's short text (the same fields), or ``None``.
    """

    key: str
    title: str
    fmt: str
    description: str
    floor_key: str | None = None
    better: Literal["lower", "higher"] | None = None
    summary: tuple[str, str] | None = None
    progress: str | None = None

    def fields(self, record: dict[str, Any]) -> dict[str, Any]:
        """The values a template can name; a missing or ``None`` number reads as NaN."""
        out = {k.split("/", 1)[1]: _num(v) for k, v in record.items() if k.startswith("metrics/")}
        out["value"] = _num(record.get(self.key))
        out["floor"] = _num(record.get(self.floor_key)) if self.floor_key else math.nan
        return out

    def summary_line(self, record: dict[str, Any]) -> str | None:
        """``"  label   text"`` for the end-of-run summary, or ``None`` (no line, or no value)."""
        if self.summary is None or record.get(self.key) is None:
            return None
        label, template = self.summary
        return f"  {label:<18} {template.format(**self.fields(record))}"

    def progress_text(self, record: dict[str, Any]) -> str | None:
        """The progress bar's text for ``record``, or ``None``."""
        if self.progress is None or record.get(self.key) is None:
            return None
        return self.progress.format(**self.fields(record))


def _num(v: Any) -> Any:
    return math.nan if v is None else v


@torch.no_grad()
def generate(generator: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """``generator(z)`` in eval mode (restored after), without a graph."""
    was_training = generator.training
    generator.eval()
    try:
        return generator(z)
    finally:
        generator.train(was_training)


class Evaluator:
    """The evaluation of one data kind; subclasses set :attr:`kind` and :attr:`columns`.

    Args:
        data: the run's :class:`~wgan.data.DataSource` (on ``device``).
        config: the run's :class:`~wgan.config.TrainConfig`.
        device: where the generator runs.

    Attributes:
        fixed_z: the fixed latent batch of the samples at every tick (on ``device``).
    """

    kind: ClassVar[str] = ""
    columns: ClassVar[tuple[Column, ...]] = ()
    #: other keys the evaluation writes, with their meaning (the report's metrics table)
    descriptions: ClassVar[dict[str, str]] = {}
    #: keys drawn among the report's training curves
    curves: ClassVar[tuple[str, ...]] = ()
    #: file name of :meth:`describe` in the run directory, if any
    describe_file: ClassVar[str | None] = None
    #: the end of the report's caption under the samples figure
    samples_caption: ClassVar[str] = "."
    #: samples are points in the plane: the report draws the critic's value contours there
    plane: ClassVar[bool] = False

    def __init__(self, data, config, device: torch.device):
        self.data, self.config, self.device = data, config, torch.device(device)
        self.fixed_z = torch.empty(0, config.z_dim, device=self.device)

    # -------------------------------------------------------------- the interface
    def setup(self) -> None:
        """Measure the references (floors, real features) once; later calls do nothing. ``evaluate``
        calls it; call it earlier to keep its cost out of a timed stretch."""

    def evaluate(self, generator: nn.Module) -> dict[str, Any]:
        """The metrics of ``generator`` (``metrics/...``: numbers, or ``None`` where undefined)."""
        return {}

    def samples_png(self, generator: nn.Module, path: Path, title: str = "") -> None:
        """Write the samples of ``generator`` from :attr:`fixed_z` as a PNG."""

    def probe_samples(self, batch_size: int) -> int:
        """Points per tick for the diagnostics' gradient norms and Lipschitz probe."""
        return max(2, batch_size)

    def critic_gaps(self, critic: nn.Module, generator: nn.Module, x_real: torch.Tensor, x_fake: torch.Tensor,
                    rng: torch.Generator) -> dict[str, torch.Tensor]:
        """The critic gaps the diagnostics report for this kind (0-d tensors on the device, no sync)."""
        return {}

    def describe(self) -> dict[str, Any] | None:
        """What the evaluation measures against (written once to :attr:`describe_file`), or ``None``."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of the set-up (cheap to keep, costly to measure again)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (keys it does not know are ignored)."""

    @classmethod
    def all_descriptions(cls) -> dict[str, str]:
        """Every key this kind's evaluation writes, with its meaning."""
        return {**cls.descriptions, **{c.key: c.description for c in cls.columns}}


def critic_gap(critic: nn.Module, x_real: torch.Tensor, x_fake: torch.Tensor) -> torch.Tensor:
    """E[f(x_real)] - E[f(x_fake)] in float64, without a graph (0-d, on the device)."""
    with torch.no_grad():
        return critic(x_real).double().mean() - critic(x_fake).double().mean()
