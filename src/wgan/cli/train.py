"""``wgan train``: every config field is a flag; defaults < variant < preset < --config < flags."""

from __future__ import annotations

import argparse
import signal
import sys
from dataclasses import fields

from wgan.cli import subparser
from wgan.config import FIELD_TYPES, TrainConfig, choices_of, coerce, default_text, load_toml, resolve
from wgan.errors import TrainingDiverged
from wgan.report import write_report
from wgan.training.distributed import get_comm
from wgan.training.rundir import new_run_dir
from wgan.training.summary import format_summary
from wgan.training.trainer import Trainer

EXAMPLES = """examples:
  wgan train                                   # WGAN-GP on ring8 with the toy preset
  wgan train --variant wgan --data grid25 --steps 3000
  wgan train --config my.toml --seed 3 --out runs/try3
  wgan train --resume runs/00001-wgan-gp-ring8 --steps 4000
  wgan train --dry-run --variant sngan         # print the resolved config and exit
"""


def add_config_flags(p: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One flag per TrainConfig field, with the field's help, accepted values and default; only flags
    actually given reach the config (SUPPRESS)."""
    group = p.add_argument_group("configuration (every TrainConfig field; --config FILE.toml takes the same names)")
    for f in fields(TrainConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        choices = choices_of(f.name)
        text = f.metadata["help"] + (f" [{', '.join(choices)}]" if choices else "")
        text = f"{text} (default: {default_text(f.name)})".replace("%", "%%")  # argparse formats help with %
        if FIELD_TYPES[f.name] is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                               help=text)
        else:
            group.add_argument(flag, dest=f.name, metavar=f.name.upper(), default=argparse.SUPPRESS, help=text)


def config_overrides(args: argparse.Namespace) -> dict:
    return {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}


def add_parser(sub) -> None:
    p = subparser(sub, "train", "train a GAN (default: WGAN-GP on 8 Gaussians on a ring)",
                  description=__doc__ + "\n" + EXAMPLES)
    p.add_argument("--config", dest="config_file", metavar="FILE.toml", help="TOML file of config fields")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its latest checkpoint")
    p.add_argument("--force", action="store_true", help="with --resume: accept a changed model/data config")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    overrides = config_overrides(args)
    if args.resume:
        if args.config_file:
            overrides = {**load_toml(args.config_file), **overrides}
        overrides = {k: coerce(k, v) for k, v in overrides.items()}
        trainer = Trainer.resume(args.resume, overrides, force=args.force, progress=not args.quiet)
        comm = trainer.comm  # world size 1, or torchrun's process group for the run's device
        if args.dry_run:
            if comm.is_main:
                print(trainer.config.to_json())
            return 0
        if comm.is_main:
            print(f"wgan: resuming {args.resume} at step {trainer.step} of {trainer.config.steps}"
                  + (f" on {comm.world_size} processes" if comm.world_size > 1 else ""))
            if trainer.resume_changes:
                print(f"wgan: with changes: {'; '.join(trainer.resume_changes)}")
    else:
        config = resolve(overrides, args.config_file)
        comm = get_comm(config.device)  # world size 1, or torchrun's process group
        if args.dry_run:
            if comm.is_main:
                print(config.to_json())
            return 0
        run_dir = comm.on_main(lambda: new_run_dir(config))  # rank 0 picks the folder; every rank agrees
        trainer = Trainer(config, run_dir=run_dir, comm=comm, progress=not args.quiet)
        if comm.is_main:
            procs = (f" on {comm.world_size} processes (global batch {config.batch_size * comm.world_size})"
                     if comm.world_size > 1 else "")
            print(f"wgan: training {config.variant} on {config.data} for {config.steps} steps{procs} -> {run_dir}")
    try:
        summary = trainer.train()
    except TrainingDiverged as e:  # not a usage error: exit status 1, the message on stderr
        if comm.is_main:
            print(f"wgan: error: {e}", file=sys.stderr)
            if _write_report(trainer) is not None:  # the ticks before the divergence, and the diagnosis
                print(f"wgan: report of the ticks before the divergence: {trainer.run_dir / 'report.html'}",
                      file=sys.stderr)
        return 1
    if comm.is_main:
        _write_report(trainer)  # first, so the summary can name it and end with the health verdict
        print(format_summary(summary, trainer.history, trainer.config))
    stopped = summary.get("stopped_by")
    if stopped in ("SIGINT", "SIGTERM"):  # stopped early with a checkpoint: the shell's 128 + signal number
        return 128 + signal.Signals[stopped].value
    return 0


def _write_report(trainer):
    """RUN_DIR/report.html after a run (its path, or None); a failure to draw it is a warning only."""
    if trainer.run_dir is None or not (trainer.run_dir / "metrics.jsonl").is_file():
        return None
    try:
        path = write_report(trainer.run_dir)
    except Exception as e:  # noqa: BLE001 - the run itself succeeded; say why the page is missing
        print(f"wgan: warning: report.html not written ({type(e).__name__}: {e}); "
              f"retry with: wgan report {trainer.run_dir}", file=sys.stderr)
        return None
    return path
