"""Checkpoints: atomic writes, safe loading, every random state.

A checkpoint is written to a temporary file in the same folder, flushed and fsynced, then renamed
over the target (rename is atomic on POSIX), and the folder is fsynced: a crash or ``kill -9`` at
any moment leaves either the old or the new file, never a torn one. Loading uses
``torch.load(weights_only=True)`` only: a file that would need full unpickling is refused.
"""

from __future__ import annotations

import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: missing, corrupt, unsafe or from another format."""


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))


def capture_rng() -> dict[str, Any]:
    """Global random states (torch CPU and CUDA, numpy, python) as tensors and plain types."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def software_versions() -> dict[str, str]:
    import platform

    from wgan import __version__

    return {"wgan": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (plus format and software versions) atomically to ``path``."""
    payload = dict(state, format_version=FORMAT_VERSION, versions=software_versions())
    atomic_write_bytes(Path(path), lambda f: torch.save(payload, f))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, refusing anything unsafe or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {str(path)!r}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, random bytes, a pickle asking for arbitrary globals
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot load checkpoint {str(path)!r}: not a valid wgan checkpoint "
                              f"({first[:200]})") from None
    if not isinstance(state, dict) or "format_version" not in state:
        raise CheckpointError(f"{str(path)!r} is not a wgan checkpoint (no format_version)")
    if state["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{str(path)!r} has checkpoint format {state['format_version']}; "
                              f"this wgan reads format {FORMAT_VERSION}")
    return state


_NUMBERED = re.compile(r"^step-(\d+)\.pt$")


def save_with_history(ckpt_dir: Path, state: dict[str, Any], step: int, keep: int) -> Path:
    """Write ``latest.pt`` and ``step-NNNNNNN.pt``; keep only the ``keep`` newest numbered files."""
    ckpt_dir = Path(ckpt_dir)
    latest = ckpt_dir / "latest.pt"
    save_checkpoint(latest, state)
    if keep > 0:
        numbered = ckpt_dir / f"step-{step:07d}.pt"
        try:
            os.link(latest, numbered)  # same bytes, no second write; both names stay valid files
        except FileExistsError:
            pass
        except OSError:
            save_checkpoint(numbered, state)
        old = sorted((p for p in ckpt_dir.iterdir() if _NUMBERED.match(p.name)), key=lambda p: p.name)
        for p in old[:-keep]:
            p.unlink(missing_ok=True)
    return latest
