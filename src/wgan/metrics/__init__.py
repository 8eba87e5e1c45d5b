"""Sample-quality metrics: one evaluator per data kind, a registry, and the columns each produces.

=========  ====================================================================================
kind       evaluator
=========  ====================================================================================
``toy``    :class:`~wgan.metrics.toy.ToyEvaluator`: modes, % high quality, exact W1 (2-D data)
``images`` :class:`~wgan.metrics.image.ImageEvaluator`: classifier-feature FD, KID, IS, classes
=========  ====================================================================================

A new kind is one module with an :class:`~wgan.metrics.base.Evaluator` subclass and one line in
:data:`EVALUATORS`.

Example:
    >>> [c.title for c in columns_for("toy")]
    ['modes', '% high quality', 'exact W1']
"""

from __future__ import annotations

import torch

from wgan.data import is_toy
from wgan.metrics.base import Column, Evaluator, generate
from wgan.metrics.image import ImageEvaluator
from wgan.metrics.toy import ToyEvaluator

#: data kind -> its evaluator
EVALUATORS: dict[str, type[Evaluator]] = {
    "toy": ToyEvaluator,
    "images": ImageEvaluator,
}

# the data sources' own spelling of a kind, where it differs from the registry's
_KIND_ALIASES = {"image": "images"}


def kind_of(data) -> str:
    """The evaluator kind of a :class:`~wgan.data.DataSource`, or of a ``--data`` spec string."""
    if isinstance(data, str):
        return "toy" if is_toy(data) else "images"
    return _KIND_ALIASES.get(data.kind, data.kind)


def evaluator_for(data, config, device: torch.device | str = "cpu") -> Evaluator:
    """The evaluator of ``data``'s kind, set up for this run (cheap: references are measured lazily).

    Raises:
        KeyError: no evaluator for the kind.
    """
    return EVALUATORS[kind_of(data)](data, config, torch.device(device))


def columns_for(kind: str) -> tuple[Column, ...]:
    """The columns of a kind (``"toy"``, ``"images"``; a data source's ``"image"`` is accepted)."""
    return EVALUATORS[_KIND_ALIASES.get(kind, kind)].columns


__all__ = ["EVALUATORS", "Column", "Evaluator", "columns_for", "evaluator_for", "generate", "kind_of",
           "ImageEvaluator", "ToyEvaluator"]
