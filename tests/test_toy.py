import math

import numpy as np
import pytest
import torch

from wgan.config import resolve
from wgan.data import load_data
from wgan.metrics.toy import mode_statistics, toy_metrics


def _data(name, **kw):
    return load_data(resolve({"data": name, **kw}))


def test_ring8_follows_the_standard_protocol():
    d = _data("ring8")
    radii = d.centers.norm(dim=1)
    torch.testing.assert_close(radii, torch.full((8,), 2.0))
    angles = torch.atan2(d.centers[:, 1], d.centers[:, 0]).sort().values
    torch.testing.assert_close(angles.diff(), torch.full((7,), 2 * math.pi / 8), atol=1e-5, rtol=0)
    assert d.std == pytest.approx(0.02)  # radius / std = 100
    x = d.sample(20000, torch.Generator().manual_seed(0))
    dist = torch.cdist(x, d.centers).min(1).values
    # distance to the centre of a 2-D Gaussian is Rayleigh(std): mean std * sqrt(pi / 2)
    assert dist.mean().item() == pytest.approx(0.02 * math.sqrt(math.pi / 2), rel=0.03)


def test_grid25_spacing_over_std_is_40():
    d = _data("grid25")
    assert len(d.centers) == 25 and d.std == pytest.approx(0.05)
    xs = sorted(set(d.centers[:, 0].tolist()))
    assert xs == pytest.approx([-4, -2, 0, 2, 4])


def test_parameters_scale_the_toy_sets():
    d = _data("ring8", data_scale=5.0, data_std=0.1)
    torch.testing.assert_close(d.centers.norm(dim=1), torch.full((8,), 5.0))
    assert d.std == 0.1
    m3 = _data("mixture3")
    assert m3.centers.tolist() == [[0, 0], [3, 3], [-2, 3]] and m3.std == 0.5


def test_swissroll_is_deterministic_given_the_generator():
    d = _data("swissroll")
    a = d.sample(100, torch.Generator().manual_seed(3))
    b = d.sample(100, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (100, 2)


def test_mode_statistics_on_known_samples():
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    at_one = np.zeros((100, 2))
    s = mode_statistics(at_one, centers, std=0.1)
    assert (s["modes"], s["modes_1pct"], s["high_quality_pct"]) == (1, 1, 100.0)
    spread = np.concatenate([centers, np.full((1, 2), 5.0)])  # 3 on centres, 1 far away
    s = mode_statistics(spread, centers, std=0.1)
    assert s["modes"] == 3 and s["high_quality_pct"] == pytest.approx(75.0)
    # just outside 3 std is not high quality; just inside is
    s = mode_statistics(np.array([[0.301, 0.0], [0.299, 0.0]]), centers, std=0.1)
    assert s["high_quality_pct"] == pytest.approx(50.0)


def test_toy_metrics_of_data_itself_are_perfect_and_w1_near_floor():
    d = _data("ring8")
    x = d.sample(1000, torch.Generator().manual_seed(1)).numpy()
    m = toy_metrics(x, d, torch.Generator().manual_seed(2))
    assert m["modes"] == 8 and m["high_quality_pct"] > 99
    assert m["w1"] < 0.2  # sampling noise only: mode counts differ by a few percent
    collapsed = np.repeat(d.centers[:1].numpy(), 1000, 0)
    m2 = toy_metrics(collapsed, d, torch.Generator().manual_seed(2))
    assert m2["modes"] == 1 and m2["w1"] > 1.0  # 7/8 of the mass must travel across the ring
