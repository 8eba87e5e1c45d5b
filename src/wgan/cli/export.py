"""``wgan export RUN_DIR --out generator.safetensors``: the generator (EMA weights when the run has
them) plus the config that rebuilds it, as safetensors, with its SHA-256 printed and written beside it."""

from __future__ import annotations

import argparse

from wgan.cli import UsageError, subparser
from wgan.export import export_generator

EXAMPLES = """examples:
  wgan export runs/00001-wgan-gp-ring8                          # -> RUN_DIR/generator.safetensors
  wgan export runs/00001-wgan-gp-ring8 --out g.safetensors
  wgan sample g.safetensors --n 64 --out grid.png               # no run directory needed
  sha256sum -c g.safetensors.sha256
"""


def add_parser(sub) -> None:
    p = subparser(sub, "export", "write a run's generator and its config to a .safetensors file",
                  description=__doc__ + "\n" + EXAMPLES)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (or one of its .pt checkpoints)")
    p.add_argument("--out", metavar="FILE.safetensors", default=None,
                   help="where to write (default: RUN_DIR/generator.safetensors); FILE.sha256 goes beside it")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.out is not None and not args.out.endswith(".safetensors"):
        raise UsageError(f"--out must name a .safetensors file, got {args.out!r}")
    result = export_generator(args.run_dir, args.out)
    print(f"wgan: exported the {result.weights} generator of step {result.step} to {result.path}")
    print(f"sha256 {result.sha256}  {result.path}  (also in {result.sha256_path})")
    return 0
