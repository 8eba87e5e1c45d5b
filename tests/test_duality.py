"""The duality check: a critic trained alone; its dual estimate against the exact W1.

Independent answers: W1 of a pure translation is the length of the shift (no solver needed); the
gradient penalty's optimum overshoots by the fraction W1 / (2 lambda) (the scale argument in
wgan.duality's docstring); a weight-clipped critic is K-Lipschitz with a small K; a spectrally
normalised ReLU MLP is at most 1-Lipschitz.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from wgan.cli import main
from wgan.duality import demo_samples, duality_check


@pytest.fixture(scope="module")
def shifted():
    """P ~ N(0, I) in 2-D and Q = P + (3, 0): W1 = 3 exactly (a translation of the same points)."""
    p = np.random.default_rng(0).normal(size=(500, 2))
    return p, p + np.array([3.0, 0.0])


def test_gradient_penalty_estimate_within_10_percent_on_two_gaussians():
    p, q = demo_samples("gaussians", 1000)  # N(0, I) vs N((2, 1), 0.25 I): shift and scale differ
    r = duality_check(p, q, "gp")
    assert r.exact_w1 > 1.5  # a non-trivial distance
    assert abs(r.estimate - r.exact_w1) < 0.10 * r.exact_w1, r
    assert 0.9 < r.grad_norm_mean < 1.1  # the penalty held the slope near 1 at interpolates


def test_gradient_penalty_on_a_translation_matches_the_shift_length(shifted):
    p, q = shifted
    r = duality_check(p, q, "gp", steps=400)
    assert r.exact_w1 == pytest.approx(3.0, abs=1e-9)  # the solver agrees with the geometry
    assert r.estimate == pytest.approx(3.0, rel=0.10)


def test_soft_penalty_overshoots_by_w1_over_two_lambda():
    # s* = argmax_s s W1 - lambda (s - 1)^2 = 1 + W1 / (2 lambda): with lambda = 10 the estimate is ~W1/20 high
    p, q = demo_samples("gaussians", 1000)
    r = duality_check(p, q, "gp", gp_weight=10.0)
    predicted = r.exact_w1 / (2 * 10.0)
    assert 0.5 * predicted < r.rel_error < 1.5 * predicted, (r.rel_error, predicted)


def test_clipping_gives_a_small_lipschitz_constant(shifted):
    p, q = shifted
    r = duality_check(p, q, "clip", steps=200)
    assert r.lipschitz < 0.05  # K << 1 with c = 0.01
    assert 0 < r.estimate < 0.05 * r.exact_w1  # the raw estimate is K x W1, nowhere near W1
    assert r.normalised <= 1.05 * r.exact_w1  # rescaled to slope 1 it is at most about W1


def test_spectral_norm_critic_is_at_most_1_lipschitz(shifted):
    p, q = shifted
    r = duality_check(p, q, "sn", steps=300)
    assert r.lipschitz <= 1.0 + 1e-2
    assert r.estimate <= r.exact_w1 * (1 + 1e-2)  # a (nearly) 1-Lipschitz critic cannot exceed W1


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="method"):
        duality_check(np.zeros((4, 2)), np.ones((4, 2)), "dropout")
    with pytest.raises(ValueError, match="same d"):
        duality_check(np.zeros((4, 2)), np.ones((4, 3)), "gp")


# ------------------------------------------------------------------ the command
def test_cli_demo_json(capsys):
    assert main(["duality", "--demo", "gaussians", "--n", "600", "--method", "gp", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["method"] == "gp" and r["n_p"] == 600
    assert abs(r["rel_error"]) < 0.10


def test_cli_files_and_text_report(capsys, tmp_path, shifted):
    p, q = shifted
    np.save(tmp_path / "p.npy", p)
    np.savetxt(tmp_path / "q.csv", q, delimiter=",")
    assert main(["duality", str(tmp_path / "p.npy"), str(tmp_path / "q.csv"), "--method", "sn",
                 "--steps", "100"]) == 0
    out = capsys.readouterr().out
    assert "exact W1 (optimal transport)       3.0000" in out
    assert "dual estimate" in out and "spectral norm" in out


@pytest.mark.parametrize("argv, expected", [
    (["--demo", "gaussians", "--method", "dropout"], "--method must be one of gp, clip, sn"),
    (["--demo", "moons"], "--demo must be one of"),
    (["--demo", "gaussians", "--steps", "0"], "--steps must be >= 1"),
    (["only-one.npy"], "two sample files"),
    (["missing-p.npy", "missing-q.npy"], "file not found"),
])
def test_cli_bad_input_one_line(capsys, argv, expected):
    assert main(["duality", *argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], captured.err
    assert captured.out == ""


def test_cli_refuses_mismatched_dimensions(capsys, tmp_path):
    np.save(tmp_path / "p.npy", np.zeros((10, 2)))
    np.save(tmp_path / "q.npy", np.zeros((10, 3)))
    assert main(["duality", str(tmp_path / "p.npy"), str(tmp_path / "q.npy")]) == 2
    assert "same dimension" in capsys.readouterr().err
