"""Optional TensorBoard logging of the tick records (``--tensorboard``; ``pip install 'wgan[tensorboard]'``).

Every numeric value of a tick record becomes a scalar under its hierarchical name
(``critic/gap``, ``metrics/w1``, ``grad_norm/mean`` ...), the gradient-norm histogram a histogram,
in ``RUN_DIR/tensorboard``. One writer per run directory, flushed at every tick.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from wgan import stats
from wgan.diagnostics.gradnorm import GRAD_NORM_EDGES

_WRITERS: dict[str, Any] = {}
_WARNED = False


def _writer(run_dir: Path):
    global _WARNED
    key = str(Path(run_dir).resolve())
    if key not in _WRITERS:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            if not _WARNED:
                print("wgan: warning: --tensorboard needs the tensorboard package "
                      "(pip install 'wgan[tensorboard]'); not logging to TensorBoard", file=sys.stderr)
                _WARNED = True
            return None
        _WRITERS[key] = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))
    return _WRITERS[key]


def log_record(run_dir: str | Path, record: dict[str, Any]) -> bool:
    """Write one tick record to ``RUN_DIR/tensorboard``; ``False`` when TensorBoard is unavailable.

    Args:
        run_dir: the run directory.
        record: a tick record (``step`` plus named values); strings and other non-numbers are skipped.
    """
    import math

    writer = _writer(Path(run_dir))
    if writer is None:
        return False
    step = int(record.get(stats.STEP, 0))
    for key, value in record.items():
        if key == stats.STEP or isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and math.isfinite(value):
            writer.add_scalar(key, value, step)
    hist = record.get(stats.GN_HIST)
    if isinstance(hist, list) and sum(hist) > 0:
        total = sum(hist)
        mean = record.get(stats.GN_MEAN, 0.0)
        std = record.get(stats.GN_STD, 0.0)
        top = float(record.get(stats.GN_MAX, 0.0))
        writer.add_histogram_raw(
            stats.GN_HIST, min=float(record.get(stats.GN_MIN, GRAD_NORM_EDGES[0])),
            max=float(record.get(stats.GN_MAX, GRAD_NORM_EDGES[-1])), num=int(total),
            sum=float(mean * total), sum_squares=float((std ** 2 + mean ** 2) * total),
            # bucket i counts (limit[i-1], limit[i]]: underflow, the 100 bins, overflow
            bucket_limits=list(GRAD_NORM_EDGES) + [max(top, 10 * GRAD_NORM_EDGES[-1])],
            bucket_counts=[int(c) for c in hist], global_step=step)
    writer.flush()
    return True


def close(run_dir: str | Path | None = None) -> None:
    """Close the writer of ``run_dir`` (every writer when ``None``)."""
    keys = [str(Path(run_dir).resolve())] if run_dir is not None else list(_WRITERS)
    for k in keys:
        w = _WRITERS.pop(k, None)
        if w is not None:
            w.close()
