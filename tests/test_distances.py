import math

import numpy as np
import ot
import pytest
import scipy.spatial.distance
import scipy.stats

from wgan.distances import js_divergence, kl_divergence, wasserstein_1d, wasserstein_exact


# --- worked examples of the source texts -------------------------------------------------------------
def test_w1_worked_example_three_points_shift_by_two():
    # spec 000: p uniform on {0,1,2}, q uniform on {2,3,4}: W1 = 2
    assert wasserstein_1d([0, 1, 2], [2, 3, 4]) == pytest.approx(2.0, abs=1e-12)


def test_w1_worked_example_two_point_shift_by_one():
    # spec 001: mass 1/2 at 0 and 2 vs mass 1/2 at 1 and 3: W1 = 1
    assert wasserstein_1d([0, 2], [1, 3], [0.5, 0.5], [0.5, 0.5]) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("theta", [-3.5, -1.0, 0.0, 0.25, 7.0])
def test_w1_point_masses_is_abs_theta(theta):
    assert wasserstein_1d([0.0], [theta]) == pytest.approx(abs(theta), abs=1e-12)


def test_w1_gaussians_shifted_by_four():
    # spec 004: W1(N(0,1), N(4,1)) = 4; large samples with common noise cancel the sampling error
    rng = np.random.default_rng(0)
    z = rng.standard_normal(20000)
    assert wasserstein_1d(z, z + 4) == pytest.approx(4.0, abs=1e-9)
    assert wasserstein_1d(z, rng.standard_normal(20000) + 4) == pytest.approx(4.0, abs=0.05)


def test_js_disjoint_is_log2_and_kl_infinite():
    assert js_divergence([0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]) == pytest.approx(math.log(2), abs=1e-12)
    assert kl_divergence([1, 0], [0, 1]) == math.inf


# --- independent oracles ------------------------------------------------------------------------------
def test_w1_matches_scipy_weighted():
    rng = np.random.default_rng(1)
    for _ in range(20):
        u, v = rng.normal(size=rng.integers(1, 40)), rng.normal(1, 2, size=rng.integers(1, 40))
        uw, vw = rng.random(len(u)), rng.random(len(v))
        assert wasserstein_1d(u, v, uw, vw) == pytest.approx(
            scipy.stats.wasserstein_distance(u, v, uw, vw), rel=1e-10, abs=1e-12)


def test_w1_invariants_shift_and_symmetry():
    rng = np.random.default_rng(2)
    u = rng.normal(size=50)
    assert wasserstein_1d(u, u + 1.7) == pytest.approx(1.7)  # a shift by c gives c
    v = rng.exponential(size=30)
    assert wasserstein_1d(u, v) == pytest.approx(wasserstein_1d(v, u))


def test_js_and_kl_match_scipy():
    rng = np.random.default_rng(3)
    for _ in range(20):
        p, q = rng.random(8), rng.random(8)
        # scipy's jensenshannon returns the distance, the square root of the divergence
        assert js_divergence(p, q) == pytest.approx(scipy.spatial.distance.jensenshannon(p, q) ** 2, rel=1e-9)
        assert kl_divergence(p, q) == pytest.approx(scipy.stats.entropy(p, q), rel=1e-9)


def test_exact_w1_matches_pot_with_euclidean_cost_not_squared():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(60, 3)), rng.normal(1, 1, size=(45, 3))
    ref = ot.emd2(np.full(60, 1 / 60), np.full(45, 1 / 45), ot.dist(x, y, metric="euclidean"))
    assert wasserstein_exact(x, y) == pytest.approx(ref, rel=1e-9)
    sq = ot.emd2(np.full(60, 1 / 60), np.full(45, 1 / 45), ot.dist(x, y))  # POT's default: squared
    assert abs(wasserstein_exact(x, y) - sq) > 0.1


def test_exact_w1_in_1d_equals_cdf_formula_and_shift():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=200), rng.normal(2, 0.5, size=150)
    assert wasserstein_exact(a, b) == pytest.approx(wasserstein_1d(a, b), rel=1e-9)
    x = rng.normal(size=(100, 2))
    assert wasserstein_exact(x, x + np.array([3.0, 4.0])) == pytest.approx(5.0, rel=1e-9)


def test_exact_w1_refuses_too_many_samples_naming_the_limit():
    with pytest.raises(ValueError, match="max_samples=10"):
        wasserstein_exact(np.zeros((11, 2)), np.zeros((5, 2)), max_samples=10)


@pytest.mark.parametrize("bad", [[], [np.nan], [1.0, np.inf]])
def test_w1_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        wasserstein_1d(bad, [1.0])


def test_w1_rejects_mismatched_or_negative_weights():
    with pytest.raises(ValueError, match="must match"):
        wasserstein_1d([0, 1], [1], [1.0], None)
    with pytest.raises(ValueError, match="non-negative"):
        wasserstein_1d([0, 1], [1], [1.0, -1.0], None)
