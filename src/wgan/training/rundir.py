"""The run directory on disk: choosing it, and reading and writing its files.

::

    runs/NNNNN-VARIANT-DATA/
      config.json      the resolved configuration
      metrics.jsonl    one JSON object per tick (appended; a torn last line is skipped when read)
      checkpoints/     latest.pt (+ kept history), written atomically (wgan.training.checkpoint)
      samples/         step-NNNNNNN.png from the fixed latent batch
      metrics_*.json   what the evaluation measures against (metrics_classifier.json for images)
      summary.json     the end-of-run summary
      diverged.json    what went wrong, when training diverged

Every file but ``metrics.jsonl`` (appended line by line) is written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wgan.errors import ConfigError
from wgan.io import atomic_write_text

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
DIVERGED = "diverged.json"
CHECKPOINTS = "checkpoints"
SAMPLES = "samples"
LATEST = f"{CHECKPOINTS}/latest.pt"


def new_run_dir(config, root: str | Path = "runs") -> Path:
    """``config.out`` if given (must not exist or be empty), else the next ``runs/NNNNN-VARIANT-DATA``.

    Raises:
        ConfigError: ``--out`` exists and holds files.
    """
    if config.out:
        out = Path(config.out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            what = "a run" if (out / CONFIG).exists() else "not a run"
            hint = f"; to continue it use --resume {out}" if what == "a run" else ""
            raise ConfigError(f"--out {str(out)!r} exists and is {what}; refusing to overwrite it "
                              f"(choose a new folder{hint})")
        return out
    root = Path(root)
    nums = [int(p.name[:5]) for p in root.glob("[0-9][0-9][0-9][0-9][0-9]-*")] if root.is_dir() else []
    name = f"{config.variant}-{config.data.split(':', 1)[0]}"
    return root / f"{max(nums, default=0) + 1:05d}-{name}"


def init_run_dir(run_dir: Path, config) -> None:
    """Create the folders and, for a new run, ``config.json``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CHECKPOINTS).mkdir(exist_ok=True)
    (run_dir / SAMPLES).mkdir(exist_ok=True)
    if not (run_dir / CONFIG).exists():
        atomic_write_text(run_dir / CONFIG, config.to_json())


def write_description(run_dir: Path, evaluator) -> None:
    """What the evaluator measures against (:meth:`wgan.metrics.Evaluator.describe`), if it says."""
    description = evaluator.describe() if evaluator.describe_file else None
    if description is not None:
        write_json(run_dir, evaluator.describe_file, description)


def write_config(run_dir: Path, config) -> None:
    """(Re)write ``config.json`` (a resume with accepted changes)."""
    atomic_write_text(run_dir / CONFIG, config.to_json())


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    """Append one tick record to ``metrics.jsonl``."""
    with open(run_dir / METRICS, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl``; a torn last line (crash mid-write) is skipped."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def trim_metrics(run_dir: Path, up_to_step: int) -> list[dict[str, Any]]:
    """Keep the records up to ``up_to_step`` (a crash may have logged past the checkpoint) and
    return them."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    out = [r for r in read_metrics(run_dir) if r.get("step", 0) <= up_to_step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in out))
    return out


def sample_path(run_dir: Path, step: int) -> Path:
    """``samples/step-NNNNNNN.png`` (the folder is created)."""
    folder = run_dir / SAMPLES
    folder.mkdir(exist_ok=True)
    return folder / f"step-{step:07d}.png"


def write_json(run_dir: Path, name: str, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``run_dir/name``, atomically."""
    atomic_write_text(run_dir / name, json.dumps(obj, indent=2, default=str))
