"""The process a run trains in: its device, CPU threads and stop signals.

Constructing a trainer changes nothing process-wide; :meth:`wgan.training.trainer.Trainer.train`
applies the run's threads and signal handlers with :func:`num_threads` and :class:`StopSignals`,
and restores the process's own when it returns.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
from collections.abc import Iterator

import torch

from wgan.errors import ConfigError

# Above this many FLOPs in one forward of both MLPs over a batch, a PyTorch step is bound by
# arithmetic and every core pays; below it (the toy 2x128 nets: ~17 MFLOP) per-op overhead rules, and
# one thread is as fast as two and immune to a busy neighbour (benchmarks/, docs/performance.md).
ARITHMETIC_BOUND_FLOPS = 128e6


def default_threads(config, arch: str, data_shape: tuple[int, ...], compiled: bool = False,
                    processes: int = 1) -> int:
    """CPU threads when ``--threads`` is 0: every core (shared among the ``processes`` of the run on
    this machine) for conv nets, large MLPs and the compiled MLP steps (which give each thread a block
    of rows: one parallel region per step, not one per operation); one for other small MLPs."""
    cores = max(1, (os.cpu_count() or 1) // max(1, processes))
    if arch != "mlp" or compiled:
        return cores
    d = math.prod(data_shape)
    macs = (config.z_dim * config.g_width + (config.g_depth - 1) * config.g_width ** 2 + config.g_width * d
            + d * config.c_width + (config.c_depth - 1) * config.c_width ** 2 + config.c_width)
    return cores if 2 * macs * config.batch_size > ARITHMETIC_BOUND_FLOPS else 1


def pick_device(name: str) -> torch.device:
    """``--device``: ``auto`` is CUDA when available, else the CPU.

    Raises:
        ConfigError: CUDA requested but not available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name} requested but CUDA is not available; use --device cpu or auto")
    return dev


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[None]:
    """``torch.set_num_threads(n)`` inside the block, the process's own count after it."""
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


class StopSignals:
    """Inside the block, SIGINT and SIGTERM set :attr:`received` (the signal's name) so the loop can
    end its step and save; a second one raises ``KeyboardInterrupt`` at once (checkpoint writes are
    atomic). Outside the main thread, or when not ``enabled``, nothing is installed."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.received: str | None = None
        self._old: dict[int, object] = {}

    def _handler(self, signum, frame) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def __enter__(self) -> StopSignals:
        if self.enabled and threading.current_thread() is threading.main_thread():
            self._old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
            for s in self._old:
                signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}
