"""Running sums of the step functions' on-device statistics, read once per tick."""

from __future__ import annotations

import torch

from wgan.training.distributed import Comm


class StatsAccumulator:
    """Running sums of on-device scalars; read once per tick (one host sync)."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, stats: dict[str, torch.Tensor], count: int = 1) -> None:
        """Add one step's statistics, or the sums of ``count`` steps'."""
        for k, v in stats.items():
            if k in self.sums:
                self.sums[k] += v
            else:
                self.sums[k] = v.clone().float()
            self.counts[k] = self.counts.get(k, 0) + count

    def means(self, comm: Comm) -> dict[str, float]:
        """The means since the last call, averaged over the ranks; starts the sums again."""
        if not self.sums:
            return {}
        keys = sorted(self.sums)
        vec = torch.stack([self.sums[k] / self.counts[k] for k in keys])
        vec = comm.all_reduce_mean(vec)
        values = vec.tolist()  # the tick's one host-device sync
        self.sums.clear()
        self.counts.clear()
        return dict(zip(keys, values))
