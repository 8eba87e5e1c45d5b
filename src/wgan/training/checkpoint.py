"""Checkpoints: atomic writes, safe loading, every random state.

A checkpoint is written with :func:`wgan.io.atomic_write_bytes` (a temporary file in the same
folder, fsynced, renamed over the target): a crash or ``kill -9`` at any moment leaves either the
old or the new file, never a torn one. Loading uses ``torch.load(weights_only=True)`` only: a file
that would need full unpickling is refused.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wgan.errors import CheckpointError
from wgan.io import TEMP_NAME, atomic_write_bytes, atomic_write_text  # noqa: F401 - old import path

FORMAT_VERSION = 1


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
    """Set the global random states from what :func:`capture_rng` returned."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def software_versions() -> dict[str, str]:
    """Versions of wgan, torch, numpy and python, stored in every checkpoint and export."""
    import platform

    from wgan import __version__

    # str(): torch.__version__ is a TorchVersion, a class the safe loader would refuse
    return {"wgan": str(__version__), "torch": str(torch.__version__), "numpy": str(np.__version__),
            "python": platform.python_version()}


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (plus format and software versions) atomically to ``path``."""
    payload = dict(state, format_version=FORMAT_VERSION, versions=software_versions())
    atomic_write_bytes(Path(path), lambda f: torch.save(payload, f))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, refusing anything unsafe or corrupt.

    Only ``torch.load(weights_only=True)`` is used, never a fallback to full unpickling, so a file
    that would import or run code when loaded is refused before any of it runs.

    Args:
        path: the ``.pt`` file.
        map_location: where tensors go (default CPU).

    Returns:
        The state dict, with ``format_version`` and ``versions`` (software versions at save time).

    Raises:
        CheckpointError: missing, empty, truncated, not a checkpoint, unsafe, or another format version.
    """
    path = Path(path)
    name = repr(str(path))
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {name}")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint {name} is empty (0 bytes); it is not a wgan checkpoint")
    # torch.save writes a zip archive whose directory is at the end: a truncated file or random
    # bytes fail this check, and the legacy (non-zip) pickle path of torch.load is never reached.
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"checkpoint {name} is truncated or not a wgan checkpoint "
                              f"({size} bytes, not a complete PyTorch zip archive)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pickle-protocol chatter from the safe unpickler
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        what = f"it asks for {found.group(1)}" if found else "it holds something other than tensors and numbers"
        raise CheckpointError(f"refusing checkpoint {name}: {what}, which loading would have to import or "
                              f"run; wgan loads only tensors and plain values (weights_only=True)") from None
    except Exception as e:  # a damaged archive member, a bad record
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint {name} is corrupt: {first[:160]}") from None
    if not isinstance(state, dict) or "format_version" not in state:
        raise CheckpointError(f"{name} is not a wgan checkpoint (no format_version)")
    if state["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{name} has checkpoint format {state['format_version']!r}; "
                              f"this wgan reads format {FORMAT_VERSION}")
    return state


_NUMBERED = re.compile(r"^step-(\d+)\.pt$")


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temporary files that a killed writer left in ``folder`` (``.NAME.*.tmp``); return them.

    Only one process writes a run's checkpoints, so any temporary file present before it writes is
    an orphan of a crash (``kill -9`` between ``mkstemp`` and ``os.replace``).
    """
    removed = []
    folder = Path(folder)
    if folder.is_dir():
        for p in folder.iterdir():
            if TEMP_NAME.match(p.name):  # atomic_write_bytes temps, link temps
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def save_with_history(ckpt_dir: Path, state: dict[str, Any], step: int, keep: int) -> Path:
    """Write ``latest.pt`` and ``step-NNNNNNN.pt``; keep only the ``keep`` newest numbered files.

    ``latest.pt`` is always written (atomically); the numbered file is a hard link to the same bytes
    (a copy where links are not supported), so the history costs no second write.

    Args:
        ckpt_dir: the run's ``checkpoints/`` folder (created if missing).
        state: what :meth:`Trainer.state_dict` returns.
        step: the generator step, used in the numbered name.
        keep: how many numbered checkpoints to keep besides ``latest.pt`` (0 = only ``latest.pt``).

    Returns:
        The path of ``latest.pt``.
    """
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(ckpt_dir)
    latest = ckpt_dir / "latest.pt"
    save_checkpoint(latest, state)
    if keep > 0:
        numbered = ckpt_dir / f"step-{step:07d}.pt"
        tmp = ckpt_dir / f".{numbered.name}.link.tmp"
        try:
            tmp.unlink(missing_ok=True)
            os.link(latest, tmp)  # same bytes, no second write; both names stay valid files
            os.replace(tmp, numbered)  # replaces a stale file of the same step (after a rollback)
        except OSError:
            tmp.unlink(missing_ok=True)
            save_checkpoint(numbered, state)
    old = sorted((p for p in ckpt_dir.iterdir() if _NUMBERED.match(p.name)), key=lambda p: p.name)
    for p in old[:len(old) - keep]:
        p.unlink(missing_ok=True)
    return latest
