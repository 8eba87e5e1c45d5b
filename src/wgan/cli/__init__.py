"""Command line: parse arguments -> config -> call the library. One module per command.

Every user error (a bad value, a wrong path, a corrupt file) is one line on stderr and exit status
2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from wgan.errors import CheckpointError, ConfigError, DataError

# command name -> module under wgan.cli with add_parser(subparsers) and run(args) -> int
COMMANDS = {
    "train": "train",
    "report": "report",
    "evaluate": "evaluate",
    "distance": "distance",
    "duality": "duality",
    "compare": "compare",
    "export": "export",
    "sample": "sample",
}


class UsageError(Exception):
    """A bad command-line value; printed as one line, exit status 2."""


def user_errors() -> tuple[type[BaseException], ...]:
    """The errors printed as one line with exit status 2: bad usage, a bad setting, data or checkpoint
    (:mod:`wgan.errors`; a diverged run is not one of them: it exits with 1, ``wgan.cli.train``)."""
    return (UsageError, ConfigError, DataError, CheckpointError, FileNotFoundError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wgan", description="Train and diagnose Wasserstein GANs (clipping, gradient penalty, "
                                 "spectral norm) and the vanilla GAN.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        importlib.import_module(f"wgan.cli.{module}").add_parser(sub)
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (one line, exit 2) instead of printing usage."""

    def error(self, message: str):
        raise UsageError(message)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        parser = build_parser()
        parser.error = _Parser.error.__get__(parser)  # type: ignore[method-assign]  # one line, exit 2
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return 2
        code = int(args.run(args) or 0)
        _leave_process_group(wait=True)  # the normal end: every rank gets here
        return code
    except user_errors() as e:
        if debug:
            raise
        msg = str(e) if not isinstance(e, FileNotFoundError) or not e.filename else f"file not found: {e.filename}"
        print(f"wgan: error: {_one_line(msg)}", file=sys.stderr)
        return 2
    except OSError as e:  # permissions, a full disk, a path that is a file: the system's words, one line
        if debug:
            raise
        msg = f"{e.strerror}: {e.filename}" if e.strerror and e.filename else str(e)
        print(f"wgan: error: {_one_line(msg)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wgan: interrupted", file=sys.stderr)
        return 130
    finally:
        _leave_process_group(wait=False)  # after an error another rank may never arrive; no-op if left


def _one_line(msg: str) -> str:
    return " ".join(msg.split()) or "unknown error"


def _leave_process_group(wait: bool) -> None:
    """Destroy torchrun's process group if this run created one (no torch import otherwise)."""
    distributed = sys.modules.get("wgan.training.distributed")
    if distributed is not None:
        distributed.shutdown(wait=wait)


def subparser(sub, name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
    """A subcommand parser that reports bad usage as one line (exit 2)."""
    p = sub.add_parser(name, help=help, description=description or help,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.error = _Parser.error.__get__(p)  # type: ignore[method-assign]
    return p
