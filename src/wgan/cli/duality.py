"""``wgan duality``: train a critic alone on two sample sets; its dual estimate against the exact W1.

P and Q are files of n-D samples, one per row (.npy, CSV or text), or a built-in pair with
``--demo gaussians|ring``. The critic is a small ReLU MLP trained with the trainer's own critic step
and one Lipschitz method; its estimate E_P[f] - E_Q[f] is compared with the exact W1 of the same
two sets (optimal transport, Euclidean cost): the Kantorovich-Rubinstein duality, measured.
"""

from __future__ import annotations

import argparse
import json

from wgan.cli import UsageError, subparser
from wgan.cli.distance import load_distribution
from wgan.distances import EXACT_MAX_SAMPLES
from wgan.duality import DEMOS, demo_samples, duality_check, duality_methods, format_result

EXAMPLES = """examples:
  wgan duality --demo gaussians --method gp       # N(0, I) vs N((2, 1), 0.25 I): within a few per cent
  wgan duality --demo ring --method clip          # clipping: K x W1 for a small unknown K
  wgan duality p.npy q.csv --method sn --steps 1000
"""


def add_parser(sub) -> None:
    p = subparser(sub, "duality", "a critic trained alone on two sample sets: its dual estimate vs the exact W1",
                  description=__doc__ + "\n" + EXAMPLES)
    p.add_argument("p", nargs="?", metavar="P", help="file of samples, one per row (.npy, CSV, text)")
    p.add_argument("q", nargs="?", metavar="Q", help="the same for the second set")
    p.add_argument("--demo", metavar="NAME", help="built-in pair instead of files: gaussians | ring")
    p.add_argument("--n", type=int, default=1000, help="with --demo: samples per set (default 1000)")
    p.add_argument("--method", default="gp",
                   help=f"Lipschitz method: {' | '.join(duality_methods())} (default gp)")
    p.add_argument("--steps", type=int, default=600, help="critic updates (default 600)")
    p.add_argument("--batch-size", type=int, default=256, help="samples per set per step (default 256)")
    p.add_argument("--width", type=int, default=64, help="critic MLP width (default 64)")
    p.add_argument("--depth", type=int, default=2, help="critic MLP hidden layers (default 2)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--gp-weight", type=float, default=30.0,
                   help="lambda of the penalty (default 30; the paper's 10 overshoots by W1 / 20)")
    p.add_argument("--clip-value", type=float, default=0.01, help="c of weight clipping (default 0.01)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(run=run)


def _check(args) -> None:
    if args.method not in duality_methods():
        raise UsageError(f"--method must be one of {', '.join(duality_methods())}, got {args.method!r}")
    for flag, v in (("--steps", args.steps), ("--batch-size", args.batch_size), ("--width", args.width),
                    ("--depth", args.depth), ("--n", args.n), ("--threads", args.threads)):
        if v < 1:
            raise UsageError(f"{flag} must be >= 1, got {v}")
    for flag, v in (("--lr", args.lr), ("--clip-value", args.clip_value)):
        if not v > 0:
            raise UsageError(f"{flag} must be > 0, got {v}")
    if not args.gp_weight >= 0:
        raise UsageError(f"--gp-weight must be >= 0, got {args.gp_weight}")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    if args.demo is not None:
        if args.demo not in DEMOS:
            raise UsageError(f"--demo must be one of {', '.join(DEMOS)}, got {args.demo!r}")
        if args.p is not None:
            raise UsageError("give either two files P Q or --demo, not both")
    elif args.p is None or args.q is None:
        raise UsageError("duality needs two sample files P and Q, or --demo gaussians|ring")


def run(args: argparse.Namespace) -> int:
    _check(args)
    if args.demo is not None:
        if args.n > EXACT_MAX_SAMPLES:
            raise UsageError(f"--n must be <= {EXACT_MAX_SAMPLES} (the exact W1 is an n x n problem), got {args.n}")
        x_p, x_q = demo_samples(args.demo, args.n, args.seed)
    else:
        p = load_distribution(args.p, "P")
        q = load_distribution(args.q, "Q")
        for name, d in (("P", p), ("Q", q)):
            if d.weights is not None:
                raise UsageError(f"{name}: duality takes samples (one per row), not value:weight pairs")
            if len(d.values) > EXACT_MAX_SAMPLES:
                raise UsageError(f"{name} has {len(d.values)} samples; at most {EXACT_MAX_SAMPLES} per set "
                                 "(the exact W1 is an n x m problem): subsample it")
        if p.dim != q.dim:
            raise UsageError(f"P has {p.dim} columns and Q has {q.dim}; the samples must have the same dimension")
        x_p, x_q = p.values, q.values
    result = duality_check(x_p, x_q, args.method, steps=args.steps, batch_size=args.batch_size, width=args.width,
                           depth=args.depth, lr=args.lr, gp_weight=args.gp_weight, clip_value=args.clip_value,
                           seed=args.seed, threads=args.threads)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(format_result(result))
    return 0
