"""``wgan evaluate RUN_DIR``: metrics of the run's latest generator and the health verdict of its curves."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wgan.cli import subparser
from wgan.diagnostics import health_verdict
from wgan.io import atomic_write_text
from wgan.training.trainer import Trainer

EXAMPLES = """examples:
  wgan evaluate runs/00001-wgan-gp-ring8
  wgan evaluate runs/00001-wgan-gp-ring8 --json
"""


def add_parser(sub) -> None:
    p = subparser(sub, "evaluate", "metrics (toy protocol or classifier-feature image metrics) and health "
                                    "verdict of a run", description=__doc__ + "\n" + EXAMPLES)
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--device", default=None, help="evaluate on this device (default: the run's)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(run=run)


def evaluate_run(run_dir, device: str | None = None) -> dict:
    """Load the run's latest checkpoint and return its metrics, diagnostics and verdict."""
    trainer = Trainer.load_run(run_dir, device=device)
    result = {"step": trainer.step, "variant": trainer.config.variant, "data": trainer.config.data}
    result.update(trainer.evaluate())
    result.update(trainer.diagnose())
    result["health"] = health_verdict(trainer.history)
    return result


def run(args: argparse.Namespace) -> int:
    result = evaluate_run(args.run_dir, args.device)
    health = result.pop("health")
    as_json = {**result, "health": health.to_dict() if hasattr(health, "to_dict") else str(health)}
    atomic_write_text(Path(args.run_dir) / "evaluation.json", json.dumps(as_json, indent=2, default=str))
    if args.json:
        print(json.dumps(as_json, default=str))
        return 0
    print(f"wgan evaluate: {result['variant']} on {result['data']} at step {result['step']}")
    for k, v in result.items():
        if k in ("step", "variant", "data") or isinstance(v, (list, dict)):
            continue
        print(f"  {k:34s} {v:.4g}" if isinstance(v, float) else f"  {k:34s} {v}")
    print(health.render() if hasattr(health, "render") else health)
    return 0
