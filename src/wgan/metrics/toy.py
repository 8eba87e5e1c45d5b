"""Toy metrics on the VEEGAN / PacGAN protocol (Srivastava et al. 2017, sec. 5.1; Lin et al. 2018).

From 2,500 generated samples: a sample is *high quality* when it lies within 3 standard deviations
of its nearest mode centre; a mode is *captured* when it is the nearest centre of at least one
high-quality sample. We add the exact W1 (Euclidean optimal transport) between the generated
samples and as many fresh data samples, and its floor: the W1 between two independent data sets
of that size, which is what a perfect generator would score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from wgan import stats
from wgan.distances import wasserstein_exact
from wgan.metrics.base import Column, Evaluator, critic_gap, generate
from wgan.seeds import derive_seed

MODES = "metrics/modes"
MODES_TOTAL = "metrics/modes_total"
MODES_1PCT = "metrics/modes_1pct"
HIGH_QUALITY_PCT = "metrics/high_quality_pct"
W1 = "metrics/w1"
W1_FLOOR = "metrics/w1_floor"

PROBE_SAMPLES = 1024  # points per tick for the diagnostics' gradient norms and Lipschitz probe


def mode_statistics(x_fake, centers, std: float) -> dict[str, float]:
    """Modes captured, % high quality and per-mode shares for samples around known centres."""
    x = torch.as_tensor(np.asarray(x_fake), dtype=torch.float64)
    c = torch.as_tensor(np.asarray(centers), dtype=torch.float64)
    dist = torch.cdist(x, c)  # (n, K)
    nearest_dist, nearest = dist.min(1)
    hq = nearest_dist < 3 * std
    counts = torch.bincount(nearest[hq], minlength=len(c))
    share = counts.double() / len(x)
    return {
        "modes": int((counts > 0).sum()),
        "modes_total": len(c),
        "modes_1pct": int((share >= 0.01).sum()),  # modes holding >= 1% of all samples as high quality
        "high_quality_pct": 100.0 * float(hq.double().mean()),
    }


def toy_metrics(x_fake, data, rng: torch.Generator, with_w1: bool = True) -> dict[str, float]:
    """Every toy metric for ``x_fake`` (n, 2) against the data source ``data`` (n fresh samples)."""
    x_fake = np.asarray(x_fake, dtype=np.float64)
    out: dict[str, float] = {}
    if data.centers is not None:
        out.update(mode_statistics(x_fake, data.centers.cpu(), data.std))
    if with_w1:
        x_data = data.sample(len(x_fake), rng).double().cpu().numpy()
        out["w1"] = wasserstein_exact(x_fake, x_data)
    return out


def w1_floor(data, n: int, rng: torch.Generator) -> float:
    """W1 between two independent data sets of ``n`` samples: the score of a perfect generator."""
    a = data.sample(n, rng).double().cpu().numpy()
    b = data.sample(n, rng).double().cpu().numpy()
    return wasserstein_exact(a, b)


class ToyEvaluator(Evaluator):
    """The toy protocol on 2-D data: modes captured, % high quality, exact W1 and its floor.

    Evaluates ``config.eval_samples`` samples from a fixed latent batch (seeded by ``config.seed``)
    against as many fresh data samples, the same at every tick (their own seeded generator).
    """

    kind = "toy"
    columns = (
        Column(MODES, "modes", ".1f", "modes captured (nearest centre of at least one high-quality sample)",
               better="higher",
               summary=("modes captured", "{modes} of {modes_total}  ({modes_1pct} with >= 1% of samples)"),
               progress="modes {modes}/{modes_total}"),
        Column(HIGH_QUALITY_PCT, "% high quality", ".1f", "% of samples within 3 std of a mode centre",
               better="higher", summary=("high quality", "{value:.1f}% of samples within 3 std of a centre"),
               progress="hq {value:.0f}%"),
        Column(W1, "exact W1", ".3f", "exact W1 (optimal transport, Euclidean cost) between generated and data samples",
               floor_key=W1_FLOOR, better="lower",
               summary=("exact W1 to data", "{value:.4f}  (floor, data vs data: {floor:.4f})")),
    )
    descriptions = {
        MODES_TOTAL: "mode centres of the data",
        MODES_1PCT: "modes holding at least 1% of the samples",
        W1_FLOOR: "exact W1 between two data samples of the same size: a perfect generator's score",
    }
    curves = (HIGH_QUALITY_PCT,)
    samples_caption = ": orange over the data in grey, crosses at the mode centres."
    plane = True

    def __init__(self, data, config, device):
        super().__init__(data, config, device)
        g = torch.Generator().manual_seed(derive_seed(config.seed, "fixed_z"))
        self.fixed_z = torch.randn(config.eval_samples, config.z_dim, generator=g).to(self.device)
        self.w1_floor: float | None = None

    def _data_rng(self) -> torch.Generator:
        # the same data samples at every tick (and in the sample figure)
        return torch.Generator(device=self.device).manual_seed(derive_seed(self.config.seed, "eval_data"))

    def setup(self) -> None:
        if self.w1_floor is None:
            rng = torch.Generator(device=self.device).manual_seed(derive_seed(self.config.seed, "w1_floor"))
            self.w1_floor = w1_floor(self.data, self.config.eval_samples, rng)

    def evaluate(self, generator: nn.Module) -> dict[str, Any]:
        self.setup()
        x_fake = generate(generator, self.fixed_z).double().cpu().numpy()
        out: dict[str, Any] = {f"metrics/{k}": v for k, v in toy_metrics(x_fake, self.data, self._data_rng()).items()}
        out[W1_FLOOR] = self.w1_floor
        return out

    def samples_png(self, generator: nn.Module, path: Path, title: str = "") -> None:
        from wgan.plots import scatter_png  # matplotlib, deferred on purpose

        x = generate(generator, self.fixed_z)
        x_real = self.data.sample(len(x), self._data_rng()).cpu().numpy()
        centers = self.data.centers.cpu().numpy() if self.data.centers is not None else None
        scatter_png(path, x.cpu().numpy(), x_real, centers, title=title)

    def probe_samples(self, batch_size: int) -> int:
        return PROBE_SAMPLES

    def critic_gaps(self, critic, generator, x_real, x_fake, rng):
        x_eval_fake = generate(generator, self.fixed_z)  # the samples whose exact W1 evaluate() reports
        x_eval_real = self.data.sample(len(x_eval_fake), rng)
        return {stats.GAP_EVAL: critic_gap(critic, x_eval_real, x_eval_fake)}

    def state_dict(self) -> dict[str, Any]:
        return {"w1_floor": self.w1_floor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.w1_floor = state.get("w1_floor")
