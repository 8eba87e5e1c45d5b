"""``wgan report RUN_DIR``: (re)write the run's self-contained ``report.html`` and print its verdict."""

from __future__ import annotations

import argparse
from pathlib import Path

from wgan.cli import UsageError, subparser
from wgan.diagnostics.health import run_health_verdict
from wgan.report import write_report

EXAMPLES = """examples:
  wgan report runs/00001-wgan-gp-ring8          # writes runs/00001-wgan-gp-ring8/report.html
  wgan report runs/00001-wgan-gp-ring8 --no-critic --quiet
"""


def add_parser(sub) -> None:
    p = subparser(sub, "report", "regenerate RUN_DIR/report.html (figures, W1 check, health verdict)",
                  description=__doc__ + "\n" + EXAMPLES)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by wgan train")
    p.add_argument("--no-critic", action="store_true",
                   help="skip the critic contours (they load checkpoints/latest.pt)")
    p.add_argument("--quiet", action="store_true", help="print only the report's path")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"RUN_DIR {str(run_dir)!r} is not a directory")
    if not (run_dir / "metrics.jsonl").is_file() and not (run_dir / "config.json").is_file():
        raise UsageError(f"RUN_DIR {str(run_dir)!r} has no metrics.jsonl or config.json; is it a wgan run?")
    path = write_report(run_dir, with_critic=not args.no_critic)
    if not args.quiet and (run_dir / "metrics.jsonl").is_file():
        print(run_health_verdict(run_dir).text())
    print(f"wgan: report written to {path}")
    return 0
