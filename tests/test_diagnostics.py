"""Diagnostics against analytic answers: gradient norms of known fields, the Lipschitz constant of
linear critics, the source texts' thresholds, every health check on a passing and a failing curve,
and the guarantee that per-tick diagnostics change nothing in the run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from wgan.diagnostics import diagnostics_rng, eval_mode, tick_diagnostics
from wgan.diagnostics.gradnorm import GRAD_NORM_EDGES, grad_norm_stats, grad_norm_summary, grad_norm_verdict
from wgan.diagnostics.health import gap_w1_agreement, health_verdict, pearson
from wgan.diagnostics.lipschitz_probe import empirical_lipschitz


class Linear(nn.Module):
    """f(x) = a . x over every non-batch axis: gradient a everywhere, Lipschitz constant |a|."""

    def __init__(self, a: torch.Tensor):
        super().__init__()
        self.a = a

    def forward(self, x):
        return (x.flatten(1) * self.a.flatten()).sum(1)


class HalfSquaredNorm(nn.Module):
    """f(x) = |x|^2 / 2: gradient x, gradient norm |x| (all non-batch axes)."""

    def forward(self, x):
        return 0.5 * x.flatten(1).square().sum(1)


def _expected_hist(norms: np.ndarray) -> np.ndarray:
    edges = np.asarray(GRAD_NORM_EDGES)
    inner, _ = np.histogram(norms[(norms >= edges[0]) & (norms < edges[-1])], bins=edges)
    return np.concatenate([[np.sum(norms < edges[0])], inner, [np.sum(norms >= edges[-1])]])


# ------------------------------------------------------------------------------ gradient norms
def test_linear_critic_has_every_norm_equal_to_norm_of_a():
    a = torch.tensor([3.0, -4.0, 12.0], dtype=torch.float64)  # |a| = 13
    x = torch.randn(257, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    s = grad_norm_stats(Linear(a), x)
    for k in ("mean", "min", "median", "max"):
        assert float(s[k]) == pytest.approx(13.0, rel=1e-12), k
    assert float(s["std"]) == pytest.approx(0.0, abs=1e-9)
    hist = s["hist"].numpy()
    assert hist.sum() == 257
    idx = int(np.searchsorted(GRAD_NORM_EDGES, 13.0, side="right"))  # bin i holds EDGES[i-1] <= n < EDGES[i]
    assert GRAD_NORM_EDGES[idx - 1] <= 13.0 < GRAD_NORM_EDGES[idx]
    assert hist[idx] == 257


def test_half_squared_norm_gives_norms_over_all_non_batch_axes():
    # image-shaped input: the norm must run over C, H and W together, not one axis (the known trap)
    x = 2 * torch.randn(300, 3, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    s = grad_norm_stats(HalfSquaredNorm(), x)
    expected = np.linalg.norm(x.numpy().reshape(300, -1), axis=1)
    np.testing.assert_allclose(s["norms"].numpy(), expected, rtol=1e-10)
    assert float(s["mean"]) == pytest.approx(expected.mean(), rel=1e-10)
    assert float(s["std"]) == pytest.approx(expected.std(), rel=1e-8)
    assert float(s["min"]) == pytest.approx(expected.min(), rel=1e-10)
    assert float(s["median"]) == pytest.approx(np.median(expected), rel=1e-10)
    assert float(s["max"]) == pytest.approx(expected.max(), rel=1e-10)
    np.testing.assert_array_equal(s["hist"].numpy(), _expected_hist(expected))


def test_histogram_counts_underflow_and_overflow():
    norms = torch.tensor([1e-5, 5e-4, 0.5, 1.0, 2.0, 150.0, 1e4], dtype=torch.float64)
    hist = grad_norm_summary(norms)["hist"].numpy()
    np.testing.assert_array_equal(hist, _expected_hist(norms.numpy()))
    assert hist[0] == 2 and hist[-1] == 2 and hist.sum() == 7


@pytest.mark.parametrize("mean, level", [(1.0, "excellent"), (1.05, "excellent"), (0.93, "excellent"),
                                         (1.2, "acceptable"), (0.75, "acceptable"), (1.5, "poor"),
                                         (0.5, "poor"), (6.0, "poor")])
def test_grad_norm_verdict_uses_the_source_thresholds(mean, level):
    v = grad_norm_verdict(mean, "gp")
    assert v.level == level
    if level != "excellent":
        assert "--gp-weight" in v.remedy or "--n-critic" in v.remedy
    if mean > 1.3:
        assert "increase --gp-weight" in v.remedy


@pytest.mark.parametrize("method", ["clip", "sn", "none"])
def test_grad_norm_verdict_not_applicable_without_a_unit_target(method):
    assert grad_norm_verdict(0.01, method).level == "n/a"


# ------------------------------------------------------------------------------ Lipschitz probe
@pytest.mark.parametrize("shape", [(2,), (1, 4, 4), (3, 8, 8)])
def test_lipschitz_of_linear_critic_equals_norm_of_a(shape):
    g = torch.Generator().manual_seed(3)
    a = torch.randn(shape, dtype=torch.float64, generator=g)
    x_real = torch.randn((200,) + shape, dtype=torch.float64, generator=g)
    x_fake = torch.randn((200,) + shape, dtype=torch.float64, generator=g) + 1.0
    L, kinds = empirical_lipschitz(Linear(a), x_real, x_fake, rng=torch.Generator().manual_seed(4),
                                   return_kinds=True)
    norm_a = float(a.norm())
    assert float(L) == pytest.approx(norm_a, rel=1e-9)
    for kind, value in kinds.items():  # every secant slope is at most |a| (Cauchy-Schwarz)
        assert float(value) <= norm_a * (1 + 1e-9), kind


def test_lipschitz_probe_is_a_lower_bound_for_a_relu_net():
    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1)).double()
    f = lambda x: net(x).squeeze(1)  # noqa: E731
    # an independent upper bound: the product of the layers' spectral norms
    linears = [m for m in net if isinstance(m, nn.Linear)]
    bound = math.prod(float(torch.linalg.matrix_norm(m.weight.detach(), ord=2)) for m in linears)
    g = torch.Generator().manual_seed(6)
    x_real = torch.randn(500, 2, dtype=torch.float64, generator=g)
    x_fake = torch.randn(500, 2, dtype=torch.float64, generator=g)
    L = float(empirical_lipschitz(f, x_real, x_fake, rng=torch.Generator().manual_seed(7)))
    norms = grad_norm_stats(f, x_real)["norms"]
    assert 0 < L <= bound
    # gradient steps make the probe at least about as large as the typical local slope
    assert L >= 0.9 * float(norms.median())


def test_lipschitz_probe_of_the_norm_is_one():
    f = lambda x: x.flatten(1).norm(dim=1)  # noqa: E731 - 1-Lipschitz, slope exactly 1 radially
    g = torch.Generator().manual_seed(8)
    x_real = torch.randn(100, 5, dtype=torch.float64, generator=g)
    x_fake = torch.randn(100, 5, dtype=torch.float64, generator=g)
    L = float(empirical_lipschitz(f, x_real, x_fake, rng=torch.Generator().manual_seed(9)))
    assert L <= 1 + 1e-9
    assert L == pytest.approx(1.0, abs=1e-6)


def test_probe_leaves_the_global_rng_alone():
    torch.manual_seed(10)
    x_real, x_fake = torch.randn(20, 2), torch.randn(20, 2)
    before = torch.get_rng_state()
    empirical_lipschitz(Linear(torch.ones(2)), x_real, x_fake, rng=torch.Generator().manual_seed(1))
    assert torch.equal(before, torch.get_rng_state())


# ------------------------------------------------------------------------------ per-tick diagnostics
def _trainer(variant: str, tiny: dict, **extra):
    from wgan.config import resolve
    from wgan.training.trainer import Trainer

    return Trainer(resolve({"variant": variant, "steps": 4, "tick_every_steps": 2, **tiny, **extra}))


def _state(trainer):
    crit = {k: v.clone() for k, v in trainer.critic.state_dict().items()}
    gen = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    return crit, gen, trainer.rng.get_state().clone(), torch.get_rng_state().clone(), np.random.get_state()[1].copy()


@pytest.mark.parametrize("variant", ["wgan-gp", "sngan", "wgan"])
def test_tick_diagnostics_change_no_state(variant, tiny):
    t = _trainer(variant, tiny)
    t.train(2)
    t.critic.train()
    t.generator.train()
    before = _state(t)
    grads_before = [p.grad for p in t.critic.parameters()]
    out = tick_diagnostics(t)
    after = _state(t)
    for b, a in zip(before[:2], after[:2]):  # every parameter and buffer (spectral norm's u, v included)
        assert b.keys() == a.keys()
        for k in b:
            assert torch.equal(b[k], a[k]), k
    assert torch.equal(before[2], after[2]), "the trainer's loop generator was used"
    assert torch.equal(before[3], after[3]), "the global torch RNG was used"
    assert np.array_equal(before[4], after[4]), "the global numpy RNG was used"
    assert t.critic.training and t.generator.training, "modes not restored"
    assert all(g0 is g1 for g0, g1 in zip(grads_before, [p.grad for p in t.critic.parameters()]))
    # the values are plain numbers, reproducible from (seed, step), and self-consistent
    json.dumps(out)
    assert out == tick_diagnostics(t)
    assert sum(out["grad_norm/hist"]) == 1024
    assert out["grad_norm/min"] <= out["grad_norm/median"] <= out["grad_norm/max"]
    assert out["grad_norm/min"] <= out["grad_norm/mean"] <= out["grad_norm/max"]
    assert out["lipschitz/empirical"] > 0
    assert "critic/gap_eval" in out and math.isfinite(out["critic/gap_eval"])
    assert out["grad_norm/verdict"] == grad_norm_verdict(out["grad_norm/mean"], t.lipschitz.name).level


def test_eval_mode_restores_each_submodule():
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    net.train()
    net[1].eval()
    with eval_mode(net):
        assert not net.training and not net[0].training
    assert net.training and net[0].training and not net[1].training


def test_diagnostics_rng_depends_on_seed_and_step_only():
    a = torch.rand(3, generator=diagnostics_rng(1, 10))
    assert torch.equal(a, torch.rand(3, generator=diagnostics_rng(1, 10)))
    assert not torch.equal(a, torch.rand(3, generator=diagnostics_rng(1, 11)))
    assert not torch.equal(a, torch.rand(3, generator=diagnostics_rng(2, 10)))


def test_resume_with_diagnostics_is_exact(tiny, tmp_path):
    """N steps vs N/2 + resume + N/2 with a spectral-norm critic and diagnostics at every tick."""
    from wgan.config import resolve
    from wgan.training.trainer import Trainer

    cfg = {"variant": "sngan", "steps": 6, "tick_every_steps": 3, **tiny}
    full = Trainer(resolve(cfg), run_dir=tmp_path / "full")
    full.train()
    half = Trainer(resolve({**cfg, "steps": 3}), run_dir=tmp_path / "half")
    half.train()
    resumed = Trainer.resume(tmp_path / "half", {"steps": 6})
    resumed.train()
    for a, b in ((full.critic, resumed.critic), (full.generator, resumed.generator)):
        sa, sb = a.state_dict(), b.state_dict()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), k
    last_full, last_res = full.history[-1], resumed.history[-1]
    for k in ("grad_norm/mean", "lipschitz/empirical", "critic/gap_eval", "grad_norm/hist"):
        assert last_full[k] == last_res[k], k


# ------------------------------------------------------------------------------ health verdict
def _hist(gap, loss=None, **per_tick):
    loss = -np.asarray(gap) if loss is None else loss
    out = []
    for i, g in enumerate(gap):
        rec = {"step": 100 * (i + 1), "critic/gap": float(g), "loss/critic": float(loss[i])}
        for k, v in per_tick.items():
            rec[k] = v[i] if isinstance(v, (list, np.ndarray)) else v
        out.append(rec)
    return out


def _check(verdict, name):
    return next(c for c in verdict.checks if c.name == name)


T = np.arange(24, dtype=float)
RNG = np.random.default_rng(0)
HEALTHY = 0.2 + 2.0 * np.exp(-T / 6) + 0.005 * RNG.standard_normal(24)


def test_healthy_curve_passes_every_check():
    v = health_verdict(_hist(HEALTHY, **{"grad_norm/mean": 1.03}), {"variant": "wgan-gp"})
    assert v.status == "healthy", v.text()
    assert all(c.status == "pass" for c in v.checks if c.name != "no_mode_collapse"), v.text()


def test_w_decreasing_fails_when_rising_with_the_lipschitz_diagnosis():
    c = _check(health_verdict(_hist(0.3 + 0.1 * T)), "w_decreasing")
    assert c.status == "fail"
    assert "Lipschitz" in c.cause and "--gp-weight" in c.remedy


def test_w_decreasing_fails_when_stuck_high_with_the_capacity_diagnosis():
    stuck = 3.0 + 0.01 * RNG.standard_normal(24)
    c = _check(health_verdict(_hist(stuck)), "w_decreasing")
    assert c.status == "fail"
    assert "not powerful enough" in c.cause and "learning rate" in c.cause
    assert "--lr-c" in c.remedy


def test_w_decreasing_passes_when_flat_near_zero():
    curve = np.concatenate([[2.0, 1.0, 0.3], 0.05 + 0.005 * RNG.standard_normal(21)])
    curve[-6:] += 0.02  # converged, not decreasing any more
    assert _check(health_verdict(_hist(curve)), "w_decreasing").status == "pass"


def test_oscillation_passes_a_single_early_drop_and_fails_zigzag_and_spike():
    early_drop = np.concatenate([[8.0], HEALTHY[1:]])  # the source's std/mean test alone would flag this
    assert _check(health_verdict(_hist(early_drop)), "no_oscillation").status == "pass"
    zigzag = 1.0 + 0.8 * (-1) ** T
    c = _check(health_verdict(_hist(zigzag)), "no_oscillation")
    assert c.status == "fail" and "Lipschitz" in c.cause
    spike = HEALTHY.copy()
    spike[18] = 2.5
    assert _check(health_verdict(_hist(spike)), "no_oscillation").status == "fail"


def test_critic_converging_passes_shrinking_and_fails_growing_variance():
    noise = RNG.standard_normal(24)
    shrinking = -1.0 + noise * np.linspace(0.5, 0.01, 24)
    growing = -1.0 + noise * np.linspace(0.01, 0.5, 24)
    assert _check(health_verdict(_hist(HEALTHY, shrinking)), "critic_converging").status == "pass"
    c = _check(health_verdict(_hist(HEALTHY, growing)), "critic_converging")
    assert c.status == "fail" and "--lr-c" in c.remedy


def test_explosion_fails_beyond_100_and_on_nan_with_the_penalty_diagnosis():
    assert _check(health_verdict(_hist(HEALTHY)), "no_explosion").status == "pass"
    exploding = np.exp(T / 3)  # reaches ~2e3
    c = _check(health_verdict(_hist(exploding), {"variant": "wgan-gp"}), "no_explosion")
    assert c.status == "fail" and "penalty weight" in c.cause and "--gp-weight" in c.remedy
    nan = HEALTHY.copy()
    nan[10] = float("nan")
    assert _check(health_verdict(_hist(nan)), "no_explosion").status == "fail"


def test_mode_collapse_needs_a_near_zero_estimate_and_poor_samples():
    to_zero = 2.0 * np.exp(-T / 3)  # the estimate goes to 0
    good = {"metrics/modes": 8, "metrics/modes_total": 8, "metrics/high_quality_pct": 90.0,
            "metrics/w1": 0.05, "metrics/w1_floor": 0.03}
    collapsed = dict(good, **{"metrics/modes": 2, "metrics/high_quality_pct": 95.0, "metrics/w1": 1.2})
    assert _check(health_verdict(_hist(to_zero, **good)), "no_mode_collapse").status == "pass"
    c = _check(health_verdict(_hist(to_zero, **collapsed)), "no_mode_collapse")
    assert c.status == "fail" and "mode collapse" in c.cause
    blurred = dict(good, **{"metrics/high_quality_pct": 20.0, "metrics/w1": 0.15})  # every mode, just blurry
    assert _check(health_verdict(_hist(to_zero, **blurred)), "no_mode_collapse").status == "pass"
    far = dict(good, **{"metrics/w1": 0.5})  # every mode touched, but far from the data: 17x the floor
    assert _check(health_verdict(_hist(to_zero, **far)), "no_mode_collapse").status == "fail"
    # poor samples with a clearly non-zero estimate are not this diagnosis (the critic still sees them)
    assert _check(health_verdict(_hist(HEALTHY + 1.0, **collapsed)), "no_mode_collapse").status == "pass"
    assert _check(health_verdict(_hist(to_zero)), "no_mode_collapse").status == "n/a"
    images = {"metrics/classes_covered": 3, "metrics/classes_total": 10}  # images: classes found by the classifier
    assert _check(health_verdict(_hist(to_zero, **images)), "no_mode_collapse").status == "fail"
    images["metrics/classes_covered"] = 10
    assert _check(health_verdict(_hist(to_zero, **images)), "no_mode_collapse").status == "pass"


def test_mode_collapse_of_a_gan_or_sngan_run_is_judged_from_the_samples():
    """A logit gap or hinge margin says nothing about collapse; the missing modes or classes do."""
    gap = 0.3 + 0.1 * T  # not a W estimate: it may do anything
    all_modes = {"metrics/modes": 8, "metrics/modes_total": 8, "metrics/high_quality_pct": 90.0}
    for variant in ("gan", "sngan"):
        c = _check(health_verdict(_hist(gap, **dict(all_modes, **{"metrics/modes": 3})), {"variant": variant}),
                   "no_mode_collapse")
        assert c.status == "fail" and "misses 5 of 8 modes" in c.cause and "wgan-gp" in c.remedy
        assert "judged from the samples alone" in c.detail
        assert _check(health_verdict(_hist(gap, **all_modes), {"variant": variant}), "no_mode_collapse").status \
            == "pass"
    images = {"metrics/classes_covered": 7, "metrics/classes_total": 10}
    c = _check(health_verdict(_hist(gap, **images), {"variant": "sngan"}), "no_mode_collapse")
    assert c.status == "fail" and "3 of 10 classes" in c.cause
    assert _check(health_verdict(_hist(gap), {"variant": "gan"}), "no_mode_collapse").status == "n/a"  # no samples
    assert _check(health_verdict(_hist(gap[:2], **all_modes), {"variant": "gan"}),
                  "no_mode_collapse").status == "n/a"  # too early


def test_grad_norm_check_passes_near_one_and_warns_far_from_it():
    assert _check(health_verdict(_hist(HEALTHY, **{"grad_norm/mean": 1.04})), "grad_norm").status == "pass"
    c = _check(health_verdict(_hist(HEALTHY, **{"grad_norm/mean": 1.9}), {"variant": "wgan-gp"}), "grad_norm")
    assert c.status == "warn" and "--gp-weight" in c.remedy
    assert _check(health_verdict(_hist(HEALTHY, **{"grad_norm/mean": 0.02}), {"variant": "wgan"}),
                  "grad_norm").status == "n/a"


def test_short_runs_and_other_objectives_are_not_judged():
    v = health_verdict(_hist([1.0, 0.5]))
    assert _check(v, "w_decreasing").status == "n/a" and v.healthy and v.status == "too early to judge"
    assert health_verdict(_hist([1.0, float("inf")])).status == "unhealthy"  # an explosion is never early
    v = health_verdict(_hist(0.3 + 0.1 * T), {"variant": "gan"})  # a rising logit gap is no W estimate
    assert _check(v, "w_decreasing").status == "n/a"
    assert health_verdict([]).status == "unknown"


def test_verdict_text_names_cause_and_remedy_of_each_failure():
    v = health_verdict(_hist(np.exp(T / 3)), {"variant": "wgan-gp"})
    text = v.text()
    assert text.startswith("health: UNHEALTHY")
    for c in v.failed:
        assert c.cause in text and c.remedy in text
    json.dumps(v.to_dict())


def test_gap_w1_agreement_matches_numpy():
    w1 = 1.0 / (1 + T)
    gap = 2.0 * w1 + 0.01 * RNG.standard_normal(24)
    hist = _hist(gap, **{"metrics/w1": w1})
    a = gap_w1_agreement(hist)
    assert a["pearson"] == pytest.approx(np.corrcoef(gap, w1)[0, 1], rel=1e-12)
    assert a["ratio"] == pytest.approx(np.median(gap / w1), rel=1e-12)
    assert health_verdict(hist).correlation == pytest.approx(a["pearson"])
    assert pearson([1, 2, 3], [1, 1, 1]) is None


# ------------------------------------------------------------------------------ TensorBoard
def test_tensorboard_logger_writes_scalars_and_histogram(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from wgan.diagnostics import tb

    norms = torch.tensor([0.5, 1.0, 1.0, 2.0], dtype=torch.float64)
    s = grad_norm_summary(norms)
    rec = {"step": 7, "critic/gap": 0.25, "grad_norm/verdict": "poor", "grad_norm/hist": s["hist"].tolist(),
           "grad_norm/mean": float(s["mean"]), "grad_norm/std": float(s["std"]),
           "grad_norm/min": 0.5, "grad_norm/max": 2.0}
    assert tb.log_record(tmp_path, rec)
    tb.close(tmp_path)
    acc = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"histograms": 0, "scalars": 0})
    acc.Reload()
    (event,) = acc.Scalars("critic/gap")
    assert event.step == 7 and event.value == pytest.approx(0.25)
    (h,) = acc.Histograms("grad_norm/hist")
    assert h.histogram_value.num == 4 and h.histogram_value.sum == pytest.approx(4.5)
