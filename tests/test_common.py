"""Common tests over every registry (as scikit-learn's ``test_common.py``): a new entry joins them.

* every variant (``wgan.variants.VARIANTS``): its recipe names registered parts, and it trains;
* every Lipschitz method (``wgan.lipschitz.LIPSCHITZ``) x every objective (``wgan.objectives.OBJECTIVES``):
  a critic step runs and returns finite statistics; a bad coefficient is refused; the diagnostics read
  the method's own target and advice;
* every architecture (``wgan.nets.ARCHITECTURES``): builds, runs forward on a toy and a tiny image
  shape where it applies, and rebuilds through the export path;
* every data source (``wgan.data.TOY``, ``wgan.data.PREFIXED``): loads a toy or a tiny file made here.

The last tests register throwaway entries (a Lipschitz method, a variant, an architecture, a toy set)
in fixtures, run the same checks on them, and unregister them.
"""

import copy
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from test_images_data import make_cifar, make_mnist
from wgan.config import FIELDS, resolve
from wgan.data import PREFIXED, TOY, DataSource, load_data
from wgan.data.toy import MixtureSampler
from wgan.diagnostics.gradnorm import grad_norm_verdict
from wgan.duality import DualityResult, duality_methods, format_result
from wgan.errors import ConfigError
from wgan.export import build_generator
from wgan.lipschitz import LIPSCHITZ, LipschitzMethod, build_lipschitz
from wgan.lipschitz.gradient_penalty import GradientPenalty, interpolate
from wgan.metrics import EVALUATORS, kind_of
from wgan.nets import ARCHITECTURES, build_nets
from wgan.objectives import OBJECTIVES, get_objective
from wgan.training.distributed import Comm
from wgan.training.steps import critic_step, generator_step
from wgan.training.trainer import Trainer
from wgan.variants import VARIANTS, Variant

PROBE_SHAPES = ((2,), (1, 28, 28))  # a toy point and a tiny image


# ----------------------------------------------------------------------------- the checks
def check_variant(name, tiny):
    """The recipe names registered parts and sets only config fields; three steps move both nets."""
    v = VARIANTS[name]
    assert v.objective in OBJECTIVES, f"{name}: objective {v.objective!r} is not registered"
    assert v.lipschitz in LIPSCHITZ, f"{name}: Lipschitz method {v.lipschitz!r} is not registered"
    assert set(v.defaults()) <= set(FIELDS), f"{name}: sets unknown fields {set(v.defaults()) - set(FIELDS)}"
    trainer = Trainer(resolve({**tiny, "variant": name, "steps": 3, "tick_every_steps": 3}))
    assert isinstance(trainer.lipschitz, LIPSCHITZ[v.lipschitz])
    g0 = copy.deepcopy(trainer.generator.state_dict())
    c0 = copy.deepcopy(trainer.critic.state_dict())
    summary = trainer.train()
    assert summary["step"] == 3
    for before, net in ((g0, trainer.generator), (c0, trainer.critic)):
        after = net.state_dict()
        assert any(not torch.equal(before[k], after[k]) for k in before), f"{name}: a net did not move"
        assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    assert "metrics/modes" in summary and "metrics/w1" in summary


def _method_config(method, tiny):
    # the method's own coefficients (the source paper's values): no variant needs to use it
    return resolve({**tiny, "variant": "wgan-gp", **LIPSCHITZ[method].coefficients})


def check_lipschitz_step(method, objective, tiny):
    """One critic step with a big learning rate: finite statistics, the penalty reported when the
    method has one, and after_step applied after the optimiser step (applying it again changes nothing)."""
    cfg = _method_config(method, tiny)
    lip = build_lipschitz(method, cfg)
    assert isinstance(lip, LIPSCHITZ[method]) and lip.interval >= 1
    data = load_data(cfg)
    generator, critic = build_nets(cfg, data)
    critic = lip.wrap(critic)
    opt = torch.optim.SGD(critic.parameters(), lr=10.0)  # a big step, so a projection must act after it
    rng = torch.Generator().manual_seed(0)
    x_real = data.sample(32, rng)
    stats = critic_step(critic, generator, opt, get_objective(objective), lip, Comm(), x_real,
                        torch.randn(32, cfg.z_dim), rng)
    for key, value in stats.items():
        assert torch.isfinite(value).all(), f"{method} x {objective}: {key} = {value}"
    x_fake = generator(torch.randn(32, cfg.z_dim)).detach()
    x_hat = interpolate(x_real, x_fake, rng) if lip.needs_interpolates else None
    has_penalty = lip.penalty(critic, x_real, x_fake, x_hat) is not None
    assert ("lipschitz/penalty" in stats) == has_penalty
    if lip.has_after_step:
        before = [p.detach().clone() for p in critic.parameters()]
        lip.after_step(critic)
        assert all(torch.equal(b, p) for b, p in zip(before, critic.parameters()))
    for field, value in LIPSCHITZ[method].coefficients.items():
        assert field in FIELDS, f"{method}: coefficient {field!r} is not a TrainConfig field"
        assert getattr(cfg, field) == value


def check_lipschitz_rejects(method, field):
    """A negative coefficient is refused with a one-line ConfigError naming the flag."""
    flag = "--" + field.replace("_", "-")
    with pytest.raises(ConfigError, match=flag):
        resolve({field: -1.0})


def check_lipschitz_advice(method):
    """The diagnostics read the method's own target and texts; nothing is judged as another method."""
    cls = LIPSCHITZ[method]
    for mean in (0.05, 1.0, 3.0):
        verdict = grad_norm_verdict(mean, method)
        if cls.grad_norm_target is None:
            assert verdict.level == "n/a" and verdict.meaning == cls.grad_norm_reading
        else:
            assert verdict.level in ("excellent", "acceptable", "poor")
            if verdict.level == "poor":
                assert verdict.remedy in (cls.remedy_above_target, cls.remedy_below_target) and verdict.remedy
    assert cls.remedy_unstable and cls.remedy_explosion and cls.grad_norm_reading
    assert (method in duality_methods()) == (cls.duality_reading is not None)


def check_architecture(name, tiny):
    """Builds for every probe shape it accepts (at least one): generator (N, z) -> (N, *shape), critic
    (N, *shape) -> (N,), both finite; the export path rebuilds the same generator."""
    cfg = resolve({**tiny, "arch": name, "z_dim": 8, "g_width": 4, "c_width": 4})
    built = 0
    for shape in PROBE_SHAPES:
        try:
            generator, critic = build_nets(cfg, shape)
        except ConfigError:
            continue  # not an architecture for this kind of sample
        built += 1
        z = torch.randn(4, cfg.z_dim)
        x = generator(z)
        assert x.shape == (4, *shape) and torch.isfinite(x).all()
        score = critic(torch.randn(4, *shape))
        assert score.shape == (4,) and torch.isfinite(score).all()
        rebuilt = build_generator(cfg, shape, name)
        rebuilt.load_state_dict(generator.state_dict())  # the same layout, parameter for parameter
    assert built, f"architecture {name!r} built for none of {PROBE_SHAPES}"


def check_data_source(spec, tiny):
    """Loads, draws with an explicit generator (the same rows twice), finite rows of its shape, a kind
    that an evaluator measures."""
    source = load_data(resolve({**tiny, "data": spec}))
    assert isinstance(source, DataSource)
    a = source.sample(16, torch.Generator().manual_seed(3))
    b = source.sample(16, torch.Generator().manual_seed(3))
    assert a.shape == (16, *source.shape) and torch.isfinite(a).all()
    torch.testing.assert_close(a, b)
    assert kind_of(source) in EVALUATORS
    if source.kind == "image":
        assert a.min() >= -1 and a.max() <= 1


# ----------------------------------------------------------------------------- every registered entry
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant(variant, tiny):
    check_variant(variant, tiny)


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
@pytest.mark.parametrize("method", list(LIPSCHITZ))
def test_every_lipschitz_method_with_every_objective(method, objective, tiny, seed):
    check_lipschitz_step(method, objective, tiny)


@pytest.mark.parametrize("method,field", [(m, f) for m, cls in LIPSCHITZ.items() for f in cls.coefficients])
def test_every_lipschitz_coefficient_is_validated(method, field):
    check_lipschitz_rejects(method, field)


@pytest.mark.parametrize("method", list(LIPSCHITZ))
def test_every_lipschitz_method_gives_its_own_advice(method):
    check_lipschitz_advice(method)


def test_an_unknown_method_is_not_judged_as_a_gradient_penalty():
    verdict = grad_norm_verdict(1.6, "renamed-method")
    assert verdict.level == "n/a" and verdict.meaning == LipschitzMethod.grad_norm_reading


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_every_architecture(arch, tiny, seed):
    check_architecture(arch, tiny)


@pytest.mark.parametrize("name", list(TOY))
def test_every_toy_set(name, tiny):
    check_data_source(name, tiny)


def _tiny_images(rng):
    return rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)


def _make_folder(root, rng):
    for i, img in enumerate(_tiny_images(rng)):
        path = root / f"class{i % 2}" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(path)
    return root


def _make_npy(root, rng):
    np.save(root / "x.npy", _tiny_images(rng))
    return root / "x.npy"


def _make_npz(root, rng):
    np.savez(root / "x.npz", x=_tiny_images(rng), y=np.arange(12) % 3)
    return root / "x.npz"


def _make_mnist(root, rng):
    make_mnist(root)
    return root


def _make_cifar(root, rng):
    make_cifar(root)
    return root


# prefix -> a tiny file or folder for it, made in the test; a new reader adds its maker here
TINY_FILES = {"mnist": _make_mnist, "folder": _make_folder, "npy": _make_npy, "npz": _make_npz,
              "cifar10": _make_cifar}


@pytest.mark.parametrize("prefix", list(PREFIXED))
def test_every_file_reader(prefix, tiny, tmp_path):
    assert prefix in TINY_FILES, f"add a maker of a tiny {prefix}: file to TINY_FILES"
    root = tmp_path / prefix
    root.mkdir()
    path = TINY_FILES[prefix](root, np.random.default_rng(0))
    check_data_source(f"{prefix}:{path}", tiny)


# ----------------------------------------------------------------------------- recipe-level invariants
def test_critic_is_frozen_during_generator_step(tiny, seed):
    trainer = Trainer(resolve({**tiny, "variant": "wgan-gp"}))
    critic_before = copy.deepcopy(trainer.critic.state_dict())
    generator_step(trainer.generator, trainer.critic, trainer.gen_opt, trainer.objective, Comm(),
                   torch.randn(32, trainer.config.z_dim))
    for k, v in trainer.critic.state_dict().items():
        assert torch.equal(v, critic_before[k])
    assert all(p.grad is None for p in trainer.critic.parameters())
    assert all(p.requires_grad for p in trainer.critic.parameters())  # unfrozen again afterwards


def test_lazy_penalty_applies_every_k_steps_with_gain_k(tiny):
    cfg = resolve({**tiny, "variant": "wgan-gp", "penalty_every": 4, "gp_weight": 2.0})
    lip = build_lipschitz("gp", cfg)
    assert lip.interval == 4
    trainer = Trainer(cfg)
    x = trainer.data.sample(32, torch.Generator().manual_seed(1))
    term, _ = lip.penalty(trainer.critic, x, x.flip(0), x)
    lip1 = build_lipschitz("gp", resolve({**tiny, "variant": "wgan-gp", "gp_weight": 2.0}))
    term1, _ = lip1.penalty(trainer.critic, x, x.flip(0), x)
    assert term.item() == pytest.approx(4 * term1.item(), rel=1e-6)


# ----------------------------------------------------------------------------- throwaway entries
class ThrowawayLP(GradientPenalty):
    """The Lipschitz penalty of Petzka et al. 2018 (the one-sided penalty) as a method of its own."""

    name = "throwaway-lp"
    coefficients = {"gp_weight": 1.0}
    remedy_unstable = "increase --gp-weight (throwaway)"
    duality_reading = "the one-sided penalty lets the slope fall below 1: a lower bound (throwaway)"

    def __init__(self, weight: float = 1.0, interval: int = 1, fast: bool = True):
        super().__init__(weight, one_sided=True, interval=interval, fast=fast)

    @classmethod
    def from_config(cls, config):
        return cls(config.gp_weight, interval=config.penalty_every, fast=config.fast_penalty)


def build_linear(config, shape):
    """A throwaway architecture: one linear map each way."""
    d = math.prod(shape)
    generator = nn.Sequential(nn.Linear(config.z_dim, d), nn.Unflatten(1, tuple(shape)))
    critic = nn.Sequential(nn.Flatten(), nn.Linear(d, 1), nn.Flatten(0))
    return generator, critic


def throwaway_line(config):
    """A throwaway toy set: two modes on a line."""
    centers = torch.tensor([[-1.0, 0.0], [1.0, 0.0]])
    return DataSource(name="throwaway-line", kind="toy", shape=(2,), sampler=MixtureSampler(centers, 0.05),
                      centers=centers, std=0.05)


@pytest.fixture
def throwaway_entries(monkeypatch):
    """Register a throwaway Lipschitz method, a variant using it, an architecture and a toy set; the
    monkeypatch unregisters them after the test."""
    monkeypatch.setitem(LIPSCHITZ, ThrowawayLP.name, ThrowawayLP)
    monkeypatch.setitem(VARIANTS, "wgan-throwaway", Variant(
        "wgan-throwaway", "wasserstein", ThrowawayLP.name, 2, "adam", 1e-4, (0.5, 0.9), "a test", {"gp_weight": 1.0}))
    monkeypatch.setitem(ARCHITECTURES, "throwaway-linear", build_linear)
    monkeypatch.setitem(TOY, "throwaway-line", throwaway_line)
    yield
    # (monkeypatch restores the registries)


def test_a_throwaway_lipschitz_method_runs_the_common_checks(throwaway_entries, tiny, seed):
    for objective in OBJECTIVES:
        check_lipschitz_step(ThrowawayLP.name, objective, tiny)
    for field in ThrowawayLP.coefficients:
        check_lipschitz_rejects(ThrowawayLP.name, field)
    check_lipschitz_advice(ThrowawayLP.name)
    assert "reading: the one-sided penalty" in format_result(_fake_duality_result(ThrowawayLP.name))


def test_a_throwaway_variant_trains_and_is_validated_by_its_method(throwaway_entries, tiny):
    check_variant("wgan-throwaway", tiny)
    with pytest.raises(ConfigError, match="--gp-weight must be set for --variant wgan-throwaway"):
        resolve({**tiny, "variant": "wgan-throwaway", "gp_weight": None})


def test_a_throwaway_architecture_and_toy_set_run_the_common_checks(throwaway_entries, tiny, seed):
    check_architecture("throwaway-linear", tiny)
    check_data_source("throwaway-line", tiny)
    summary = Trainer(resolve({**tiny, "arch": "throwaway-linear", "data": "throwaway-line", "steps": 2,
                               "tick_every_steps": 2})).train()
    assert summary["step"] == 2


def test_throwaway_entries_are_gone_afterwards():
    assert ThrowawayLP.name not in LIPSCHITZ and "wgan-throwaway" not in VARIANTS
    assert "throwaway-linear" not in ARCHITECTURES and "throwaway-line" not in TOY
    with pytest.raises(ConfigError, match="--arch must be auto, mlp or conv"):
        resolve({"arch": "throwaway-linear"})


def _fake_duality_result(method):
    return DualityResult(method=method, estimate=1.0, exact_w1=1.0, rel_error=0.0, lipschitz=1.0, normalised=1.0,
                         grad_norm_mean=1.0, steps=1, seconds=0.0, n_p=1, n_q=1, dim=2)
