"""``wgan sample SOURCE --n 64 --out grid.png|samples.npy``: samples from a run directory, a checkpoint
or an exported ``.safetensors`` generator.

PNG: a scatter plot for 2-D data (over the data and its mode centres for the toy sets), an image
grid for images. NPY: the raw samples, shape (N, *sample shape); images in [-1, 1].
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from wgan.cli import UsageError, subparser
from wgan.data import is_toy, load_data
from wgan.export import load_generator
from wgan.training.checkpoint import atomic_write_bytes
from wgan.training.runtime import pick_device

EXAMPLES = """examples:
  wgan sample runs/00001-wgan-gp-ring8 --n 2500 --out ring.png
  wgan sample generator.safetensors --n 64 --out grid.png --seed 3
  wgan sample runs/00002-wgan-gp-mnist --n 1000 --out samples.npy
"""


def add_parser(sub) -> None:
    p = subparser(sub, "sample", "draw samples from a run or an exported generator (.png or .npy)",
                  description=__doc__ + "\n" + EXAMPLES)
    p.add_argument("source", metavar="RUN_DIR_OR_FILE", help="run directory, .pt checkpoint or .safetensors export")
    p.add_argument("--n", type=int, default=64, help="number of samples (default: 64)")
    p.add_argument("--out", metavar="FILE", required=True, help="FILE.png (picture) or FILE.npy (array)")
    p.add_argument("--seed", type=int, default=0, help="seed of the latent draws (default: 0)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    kind = out.suffix.lower()
    if kind not in (".png", ".npy"):
        raise UsageError(f"--out must end in .png or .npy, got {args.out!r}")
    if args.n < 1:
        raise UsageError(f"--n must be >= 1, got {args.n}")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    if out.is_dir():
        raise UsageError(f"--out {args.out!r} is a folder; give a file name")

    device = pick_device(args.device)
    loaded = load_generator(args.source, device)
    shape = loaded.data_shape
    if kind == ".png" and shape != (2,) and len(shape) != 3:
        raise UsageError(f"PNG output needs 2-D points or images; this generator makes samples of shape "
                         f"{shape}; use --out FILE.npy")
    x = loaded.sample(args.n, seed=args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind == ".npy":
        arr = x.numpy().astype(np.float32)
        atomic_write_bytes(out, lambda f: np.save(f, arr))
    elif shape == (2,):
        _scatter(out, x, loaded)
    else:
        from wgan.plots.grid import save_image_grid  # imported here: the image path only

        save_image_grid(out, x)
    print(f"wgan: wrote {args.n} samples ({loaded.weights} weights, step {loaded.step}) from {args.source} "
          f"to {out}")
    return 0


def _scatter(out: Path, x, loaded) -> None:
    from wgan.plots import scatter_png  # matplotlib: only when a picture is drawn

    x_real = centers = None
    if is_toy(loaded.config.data):  # the toy sets are defined by name: draw the data to plot under the samples
        data = load_data(loaded.config)
        x_real = data.sample(len(x), torch.Generator().manual_seed(loaded.config.seed * 7 + 3)).cpu().numpy()
        centers = data.centers.cpu().numpy() if data.centers is not None else None
    title = f"{loaded.config.variant} on {loaded.config.data}, step {loaded.step} ({loaded.weights})"
    scatter_png(out, x.numpy(), x_real, centers, title=title)
