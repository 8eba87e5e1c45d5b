"""``wgan compare``: every variant on the same data, seeds and budget; a measured table and one figure."""

from __future__ import annotations

from wgan.cli import subparser


def add_parser(sub) -> None:
    p = subparser(sub, "compare", "compare GAN variants on equal terms (being written)")
    p.set_defaults(run=lambda args: 2)
