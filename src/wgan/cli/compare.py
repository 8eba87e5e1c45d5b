"""``wgan compare``: every variant on the same data, seeds and budget; a measured table and one figure.

Each variant is trained once per seed with the same data, the same seeds and the same budget:
``--steps N`` generator steps, or ``--seconds S`` of training time per run (evaluation excluded;
equal compute, so a costlier variant gets fewer steps). Toy data use the VEEGAN/PacGAN protocol
(``--preset veegan``: 2,500 evaluation samples). A run that fails is recorded with its reason and
the comparison continues. Writes OUT/table.md, table.csv, runs.csv, results.json, compare.png,
report.html and each run's directory under OUT/runs/.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from wgan.cli import UsageError, subparser
from wgan.cli.train import add_config_flags, config_overrides
from wgan.compare import DEFAULT_SECONDS, DEFAULT_TICKS, DEFAULT_VARIANTS, compare, load_compare, write_outputs
from wgan.config import resolve
from wgan.variants import VARIANTS

EXAMPLES = """examples:
  wgan compare --data ring8 --seeds 3                     # the four variants, 60 s of training per run
  wgan compare --data grid25 --variants wgan-gp,sngan --steps 5000 --out runs/grid-gp-sn
  wgan compare --data ring8 --seeds 1 --seconds 10 --batch-size 128   # any training flag applies to every run
  wgan compare --rebuild runs/compare-00001-ring8         # re-render the files of an earlier comparison
"""

_SET_HERE = ("variant", "data", "seed", "steps", "out", "tick_every_steps")


def add_parser(sub) -> None:
    p = subparser(sub, "compare", "compare GAN variants on equal terms: one table, one figure, one report",
                  description=__doc__ + "\n" + EXAMPLES)
    p.add_argument("--data", default="ring8", help="data set for every run (default ring8)")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                   help=f"comma-separated variants (default {','.join(DEFAULT_VARIANTS)})")
    p.add_argument("--seeds", default="3", metavar="N|LIST",
                   help="number of seeds (0..N-1), or a list such as 0,5,7 (default 3)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, metavar="N", help="budget: generator steps per run")
    budget.add_argument("--seconds", type=float, metavar="S",
                        help=f"budget: seconds of training per run, evaluation excluded (default {DEFAULT_SECONDS:g})")
    p.add_argument("--ticks", type=int, default=DEFAULT_TICKS,
                   help=f"evaluations per run: points of the W-estimate curves (default {DEFAULT_TICKS})")
    p.add_argument("--out", metavar="DIR", help="output folder (default runs/compare-NNNNN-DATA); must be new or empty")
    p.add_argument("--rebuild", metavar="DIR",
                   help="re-render the table, CSV, figure and report of an earlier comparison in DIR (no training)")
    add_config_flags(p, skip=_SET_HERE)
    p.set_defaults(run=run)


def _seeds(text: str) -> int | list[int]:
    text = text.strip()
    try:
        if "," not in text:
            n = int(text)
            if n < 1:
                raise UsageError(f"--seeds must be >= 1, got {n}")
            return n
        seeds = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"--seeds must be a count like 3 or a list like 0,5,7, got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds list must hold distinct seeds >= 0, got {text!r}")
    return seeds


def _default_out(data: str) -> Path:
    root = Path("runs")
    found = root.glob("compare-[0-9][0-9][0-9][0-9][0-9]-*") if root.is_dir() else []
    nums = [int(p.name.split("-")[1]) for p in found]
    return root / f"compare-{max(nums, default=0) + 1:05d}-{data.split(':', 1)[0]}"


def _rebuild(folder: str) -> int:
    if not (Path(folder) / "results.json").is_file():
        raise UsageError(f"--rebuild {folder!r}: no results.json there; is it a wgan compare folder?")
    result = load_compare(folder)
    write_outputs(result)
    print(result.markdown())
    print(f"rewrote {Path(folder) / 'table.md'}, table.csv, runs.csv, compare.png, report.html")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.rebuild:
        return _rebuild(args.rebuild)

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if not variants or unknown:
        raise UsageError(f"--variants must be a comma-separated list of {', '.join(VARIANTS)}; "
                         f"got {args.variants!r}")
    if len(set(variants)) != len(variants):
        raise UsageError(f"--variants lists a variant twice: {args.variants!r}")
    seeds = _seeds(args.seeds)
    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be >= 1, got {args.steps}")
    if args.seconds is not None and not args.seconds > 0:
        raise UsageError(f"--seconds must be > 0, got {args.seconds}")
    if args.ticks < 1:
        raise UsageError(f"--ticks must be >= 1, got {args.ticks}")
    overrides = {k: v for k, v in config_overrides(args).items() if k not in _SET_HERE}
    for v in variants:  # every flag and the data spec checked before hours of training
        resolve({**overrides, "variant": v, "data": args.data})
    out = Path(args.out) if args.out else _default_out(args.data)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out {str(out)!r} exists and is not an empty folder; choose a new one")
    budget = f"{args.steps} steps" if args.steps else f"{args.seconds or DEFAULT_SECONDS:g} s of training"
    n_seeds = seeds if isinstance(seeds, int) else len(seeds)
    print(f"wgan: comparing {', '.join(variants)} on {args.data}: {n_seeds} seed(s), budget {budget} per run "
          f"-> {out}", flush=True)
    result = compare(args.data, variants, seeds, steps=args.steps, seconds=args.seconds, out=out,
                     overrides=overrides, ticks=args.ticks, log=lambda line: print(line, flush=True))
    print()
    print(result.markdown())
    print(f"wrote {out / 'table.md'}, table.csv, compare.png, report.html")
    return 1 if all(not r.ok for r in result.runs) else 0
