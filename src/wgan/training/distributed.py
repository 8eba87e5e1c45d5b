"""Process group plumbing. The single process is world size 1 with the same calls, all no-ops.

Only this module reads the environment (torchrun's RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR).
"""

from __future__ import annotations

from typing import Iterable

import torch


class Comm:
    """World size 1: every collective is the identity."""

    rank = 0
    world_size = 1
    local_rank = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_grads(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Average gradients across ranks (one flat tensor)."""

    def all_reduce_mean(self, t: torch.Tensor) -> torch.Tensor:
        """Average a tensor across ranks."""
        return t

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every rank."""

    def barrier(self) -> None:
        """Wait for every rank."""

    def check_identical(self, module: torch.nn.Module, name: str) -> None:
        """Raise RuntimeError if the module's parameters differ across ranks."""

    def close(self) -> None:
        pass


def get_comm() -> Comm:
    """The communicator for this process: world size 1 unless launched by torchrun."""
    return Comm()
