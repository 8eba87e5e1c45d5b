"""The compiled MLP steps (wgan.engines.native, csrc/mlp.cpp) against the PyTorch paths.

The compiled critic step runs fastgrad's algorithm with the element-wise work fused; it must give the
same loss, scores, penalty, norms and every parameter gradient as autograd's double backward (float64:
rtol 1e-9, the products summed in another order) and as the PyTorch written-out path in float32. The
extension is built by ``make`` (``python -m wgan.engines``); these tests build it if needed and fail
when it cannot be built, since the machine has a compiler: a silent fallback would hide a broken build.
Its closed forms are copies of Python definitions (the Wasserstein objective's in ``wgan.objectives``,
the norm penalty's in ``wgan.lipschitz.gradient_penalty``); these tests check that both agree.
"""

import copy

import pytest
import torch
from torch import nn

from wgan.engines import choose_engine, fastgrad, native
from wgan.lipschitz import LipschitzMethod
from wgan.lipschitz.gradient_penalty import GradientPenalty, NormPenalty
from wgan.lipschitz.weight_clipping import WeightClipping
from wgan.nets.mlp import MLPCritic, MLPGenerator
from wgan.objectives import get_objective, wasserstein_critic_loss_grads
from wgan.training.distributed import Comm
from wgan.training.steps import critic_step, generator_step

# the C++ build: the extension is compiled here when missing (about 30 s)
pytestmark = pytest.mark.slow

F64 = torch.float64


@pytest.fixture(scope="module")
def ext():
    module = native.load()
    assert module is not None, f"the compiled MLP step did not build: {native.error()}"
    return module


@pytest.fixture
def three_threads():
    """Three threads: the compiled steps cut a batch of at least 3 x 64 rows into three blocks."""
    old = torch.get_num_threads()
    torch.set_num_threads(3)
    yield
    torch.set_num_threads(old)


def _reference(net, x_real, x_fake, x_hat, gain, one_sided):
    """autograd: separate forwards, create_graph=True, one backward of the sum."""
    s_real, s_fake = net(x_real).reshape(-1), net(x_fake).reshape(-1)
    loss = s_fake.mean() - s_real.mean()
    x_hat = x_hat.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(net(x_hat).sum(), x_hat, create_graph=True)
    norms = (g.square().sum(1) + 1e-12).sqrt()
    excess = (norms - 1).clamp_min(0) if one_sided else norms - 1
    term = gain * excess.square().mean()
    (loss + term).backward()
    return loss.detach(), s_real.detach(), s_fake.detach(), term.detach(), norms.detach()


def _compiled(net, x_real, x_fake, x_hat, penalty):
    """The compiled critic step on given samples."""
    return native.wgan_gp_critic(native.mlp_layers(net), x_real, x_fake, x_hat, penalty)


NETS = {
    "2x128-leaky": lambda: nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 16), nn.LeakyReLU(0.2),
                                         nn.Linear(16, 1)),
    "3-relu-wide-input": lambda: nn.Sequential(nn.Linear(20, 12), nn.ReLU(), nn.Linear(12, 9), nn.ReLU(),
                                               nn.Linear(9, 7), nn.ReLU(), nn.Linear(7, 1)),
    "one-hidden-no-bias": lambda: nn.Sequential(nn.Linear(3, 8, bias=False), nn.LeakyReLU(0.1),
                                                nn.Linear(8, 1, bias=False)),
}


def _mlps(dtype=torch.float32, g_activation="leaky_relu", c_activation="leaky_relu"):
    return MLPGenerator(2, (2,), 16, 2, g_activation).to(dtype), MLPCritic(2, 32, 2, c_activation).to(dtype)


def _engine(generator, critic, objective="wasserstein", lipschitz=None, opts=(None, None)):
    return choose_engine(generator, critic, get_objective(objective), lipschitz or GradientPenalty(10.0), opts, Comm())


@pytest.mark.parametrize("name", list(NETS))
@pytest.mark.parametrize("one_sided", [False, True])
def test_compiled_critic_step_equals_double_backward(ext, name, one_sided, seed):
    net = NETS[name]().to(F64)
    d = net[0].in_features
    x_real, x_fake = torch.randn(11, d, dtype=F64), torch.randn(11, d, dtype=F64) * 2
    x_hat = torch.randn(13, d, dtype=F64)  # M need not equal N
    reference = copy.deepcopy(net)
    expected = _reference(reference, x_real, x_fake, x_hat, 3.0, one_sided)
    got = _compiled(net, x_real, x_fake, x_hat, NormPenalty(3.0, one_sided))
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    for (pname, a), b in zip(net.named_parameters(), reference.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12, msg=lambda m: f"{pname}: {m}")


@pytest.mark.parametrize("one_sided", [False, True])
def test_the_compiled_closed_forms_equal_their_python_definitions(ext, one_sided, seed):
    """csrc/mlp.cpp has its own copies of the objective's and the penalty's closed forms: the same
    values and gradients as wgan.objectives.wasserstein_critic_loss_grads and
    wgan.lipschitz.gradient_penalty.NormPenalty through the PyTorch written-out backward (float64)."""
    net = NETS["3-relu-wide-input"]().to(F64)
    x_real, x_fake, x_hat = (torch.randn(17, 20, dtype=F64) * s for s in (1, 2, 0.5))
    reference = copy.deepcopy(net)
    penalty = NormPenalty(7.0, one_sided)
    expected = fastgrad.penalised_loss_backward(reference, x_real, x_fake, x_hat, None, None,
                                                critic_loss_grad=wasserstein_critic_loss_grads,
                                                gradient_loss_grad=penalty)
    got = _compiled(net, x_real, x_fake, x_hat, penalty)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    for a, b in zip(net.parameters(), reference.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12)


def test_blocks_of_rows_give_the_same_step(ext, three_threads, seed):
    """Uneven blocks (N, N_fake and M differ and do not divide by three), summed, against autograd."""
    net = NETS["2x128-leaky"]().to(F64)
    x_real, x_fake, x_hat = torch.randn(200, 2, dtype=F64), torch.randn(211, 2, dtype=F64) * 2, torch.randn(
        230, 2, dtype=F64)
    reference = copy.deepcopy(net)
    expected = _reference(reference, x_real, x_fake, x_hat, 3.0, False)
    got = _compiled(net, x_real, x_fake, x_hat, NormPenalty(3.0))
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    for a, b in zip(net.parameters(), reference.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12)


def test_an_error_in_a_block_is_raised_not_lost(ext, three_threads):
    net = NETS["2x128-leaky"]()
    weights, biases, slopes = native.mlp_layers(net)
    weights[1] = torch.randn(16, 15)  # does not fit the layer below: the product fails in every block
    x = torch.randn(300, 2)
    with pytest.raises(RuntimeError):
        ext.wgan_gp_critic(x, x, x, weights, biases, slopes, 1.0, False, 1e-12)


def test_compiled_critic_step_float32_matches_the_pytorch_path(ext, seed):
    net = MLPCritic(2, 64, 2, "leaky_relu").net
    x_real, x_fake, x_hat = (torch.randn(256, 2) for _ in range(3))
    reference = copy.deepcopy(net)
    pen = NormPenalty(10.0)
    expected = fastgrad.penalised_loss_backward(reference, x_real, x_fake, x_hat, None, None,
                                                critic_loss_grad=wasserstein_critic_loss_grads, gradient_loss_grad=pen)
    got = _compiled(net, x_real, x_fake, x_hat, pen)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(net.parameters(), reference.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6)


def test_gradients_accumulate_like_backward(ext, seed):
    net = NETS["2x128-leaky"]().to(F64)
    x = torch.randn(6, 2, dtype=F64)
    args = (x, x + 1, x + 0.5, NormPenalty(1.0))
    _compiled(net, *args)
    once = [p.grad.clone() for p in net.parameters()]
    _compiled(net, *args)
    for a, p in zip(once, net.parameters()):
        torch.testing.assert_close(2 * a, p.grad, rtol=1e-12, atol=0)


@pytest.mark.parametrize("rows", [17, 200])
def test_compiled_forward_equals_the_module(ext, three_threads, rows, seed):
    gen = MLPGenerator(3, (2,), 32, 3, "relu").to(F64)
    z = torch.randn(rows, 3, dtype=F64)
    expected = gen.net(z)
    got = native.forward(native.mlp_layers(gen.net), z)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    # the engine's fake samples (no graph) are the generator's, shaped as it shapes them
    engine = _engine(gen, MLPCritic(2, 8, 1).to(F64))
    torch.testing.assert_close(engine.fake(z), gen(z).detach(), rtol=1e-12, atol=1e-12)
    assert gen(z).grad_fn is not None  # the net itself is an architecture only: a graph when one is wanted


def test_applies_only_where_it_is_exact(ext):
    layers = native.mlp_layers
    assert layers(NETS["2x128-leaky"]()) is not None
    assert layers(nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))) is None
    assert layers(nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.ReLU(), nn.Linear(4, 1))) is None
    assert layers(nn.Sequential(nn.Linear(2, 4), nn.LayerNorm(4), nn.ReLU(), nn.Linear(4, 1))) is None
    sn = NETS["2x128-leaky"]()
    torch.nn.utils.parametrizations.spectral_norm(sn[0])
    assert layers(sn) is None
    assert not native.fits(layers(NETS["2x128-leaky"]().to(torch.float16)))
    # the engine takes each part compiled only where its closed forms are the compiled ones
    e = _engine(*_mlps())
    assert (e.name, e.compiled_critic, e.compiled_generator, e.parallel_rows) == ("compiled", True, True, True)
    e = _engine(*_mlps(), objective="hinge")  # another objective: written out; -E[f] is still the generator's
    assert (e.name, e.compiled_critic, e.compiled_generator, e.parallel_rows) == ("compiled", False, True, False)
    e = _engine(*_mlps(), lipschitz=WeightClipping(0.01))  # no penalty: autograd's critic step
    assert (e.compiled_critic, e.compiled_generator, e.written_out) == (False, True, None)
    e = _engine(*_mlps(), lipschitz=GradientPenalty(10.0, fast=False))  # --fast-penalty false
    assert (e.compiled_critic, e.written_out) == (False, None)
    e = _engine(*_mlps(), objective="minimax")
    assert e.name == "written_out"
    assert _engine(*_mlps(c_activation="tanh")).name == "autograd"
    gen, critic = _mlps()
    e = _engine(gen.double(), critic)  # the generator's dtype is not the critic's: the critic step alone
    assert (e.name, e.g_spec, e.compiled_critic, e.compiled_generator) == ("compiled", None, True, False)


def test_turned_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("WGAN_NATIVE", "0")
    assert native.load() is None
    assert _engine(*_mlps()).name == "written_out"


def test_every_method_with_after_step_work_declares_it():
    """The compiled round fuses the optimiser steps and cannot call after_step between them: a method
    that overrides it must say so (has_after_step), or the round would skip its work."""
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    for cls in subclasses(LipschitzMethod):
        overrides = cls.after_step is not LipschitzMethod.after_step
        assert cls.has_after_step == overrides, cls.__name__


@pytest.mark.parametrize("rows", [24, 200])
def test_critic_step_with_and_without_the_compiled_step(ext, monkeypatch, three_threads, rows, seed):
    """The critic step, compiled from the noise (fake and interpolated rows made in the compiled call,
    in one block or three), against PyTorch's written-out path, on identical inputs."""
    generator, critic = _mlps(F64)
    x_real, z = torch.randn(rows, 2, dtype=F64), torch.randn(rows, 2, dtype=F64)
    spy = []
    original = native.wgan_gp_critic_step
    monkeypatch.setattr(native, "wgan_gp_critic_step", lambda *a: spy.append(original(*a)) or spy[-1])
    results = []
    for on in ("1", "0"):
        monkeypatch.setenv("WGAN_NATIVE", on)
        c = copy.deepcopy(critic)
        stats = critic_step(c, generator, torch.optim.SGD(c.parameters(), lr=0.0), get_objective("wasserstein"),
                            GradientPenalty(10.0), Comm(), x_real, z, torch.Generator().manual_seed(3))
        results.append((stats, [p.grad for p in c.parameters()]))
    (s_on, g_on), (s_off, g_off) = results
    assert len(spy) == 1  # compiled, then not
    for k in s_on:
        torch.testing.assert_close(s_on[k], s_off[k], rtol=1e-9, atol=1e-12)
    for a, b in zip(g_on, g_off):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_compiled_critic_step_on_images_and_on_samples(ext, seed):
    """Image-shaped data through MLP nets (rows for the compiled code), and a generator the compiled code
    does not take (the critic step on its samples): the written-out path's statistics and gradients."""
    generator, critic = MLPGenerator(3, (1, 3, 3), 16, 2).to(F64), MLPCritic(9, 16, 2, "leaky_relu").to(F64)
    x_real, z = torch.randn(10, 1, 3, 3, dtype=F64), torch.randn(10, 3, dtype=F64)
    other_generator = MLPGenerator(3, (1, 3, 3), 16, 2, "tanh").to(F64)
    for gen in (generator, other_generator):
        results = []
        for engine_on in (True, False):
            c = copy.deepcopy(critic)
            e = _engine(gen, c, opts=(torch.optim.SGD(c.parameters(), lr=0.0), None))
            assert e.compiled_critic
            if not engine_on:
                e.compiled_critic = False  # the written-out step of the same engine
            stats = e.critic_step(x_real, z, torch.Generator().manual_seed(4))
            results.append((stats, [p.grad for p in c.parameters()]))
        (s_on, g_on), (s_off, g_off) = results
        assert s_on.keys() == s_off.keys()
        for k in s_on:
            torch.testing.assert_close(s_on[k], s_off[k], rtol=1e-9, atol=1e-12)
        for a, b in zip(g_on, g_off):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("out_shape,rows", [((2,), 9), ((1, 4, 4), 9), ((2,), 200)])
def test_compiled_generator_step_equals_autograd(ext, three_threads, out_shape, rows, seed):
    generator = MLPGenerator(3, out_shape, 16, 2, "leaky_relu").to(F64)
    d = 2 if out_shape == (2,) else 16
    critic = MLPCritic(d, 12, 3, "relu").to(F64)
    z = torch.randn(rows, 3, dtype=F64)
    ref_g, ref_c = copy.deepcopy(generator), copy.deepcopy(critic)
    expected = -ref_c(ref_g(z)).mean()
    expected.backward()
    stats = generator_step(generator, critic, torch.optim.SGD(generator.parameters(), lr=0.0),
                           get_objective("wasserstein"), Comm(), z)
    torch.testing.assert_close(stats["loss/generator"], expected.detach(), rtol=1e-9, atol=1e-12)
    for (name, a), b in zip(generator.named_parameters(), ref_g.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12, msg=lambda m: f"{name}: {m}")
    assert all(p.grad is None for p in critic.parameters())  # the critic is not trained here
    assert _engine(generator, critic).compiled_generator  # the compiled path did it


def test_the_compiled_step_gets_every_core_by_default():
    import os

    from wgan.config import resolve
    from wgan.training.trainer import default_threads

    config = resolve({"data": "ring8", "preset": "toy"})
    assert default_threads(config, "mlp", (2,), compiled=True) == os.cpu_count()  # a block of rows per thread
    assert default_threads(config, "mlp", (2,), compiled=False) == 1  # PyTorch ops: overhead-bound
    # torchrun's processes on one machine share its cores
    assert default_threads(config, "mlp", (2,), compiled=True, processes=os.cpu_count()) == 1
    assert default_threads(config, "conv", (1, 28, 28), processes=2 * os.cpu_count()) == 1


ROUND_CONFIG = {"data": "ring8", "preset": "toy", "variant": "wgan-gp", "g_width": 32, "c_width": 32,
                "batch_size": 200, "n_critic": 3, "ema_decay": 0.0, "threads": 3}


def _count_rounds(monkeypatch) -> list[int]:
    calls = []
    original = native.wgan_gp_round
    monkeypatch.setattr(native, "wgan_gp_round", lambda *a: calls.append(1) or original(*a))
    return calls


def test_a_compiled_round_equals_the_steps_one_by_one(ext, monkeypatch, three_threads):
    """A whole generator step in one call (critic steps, generator step, both Adam updates) leaves the
    same parameters, optimiser state, statistics and random stream as the steps one by one."""
    from wgan.config import resolve
    from wgan.training.trainer import Trainer

    rounds = []
    for compiled in (True, False):
        t = Trainer(resolve(ROUND_CONFIG))
        assert t.engine.name == "compiled" and t.engine.compiled_round
        t.engine.compiled_round = compiled
        calls = _count_rounds(monkeypatch)
        used = []
        for _ in range(3):
            t._one_generator_step()
            used.append(len(calls))
        assert used == ([0, 1, 2] if compiled else [0, 0, 0])  # Adam's state first
        rounds.append((t, t.acc.means(t.comm)))
    (a, stats_a), (b, stats_b) = rounds
    for (name, p), q in zip([*a.critic.named_parameters(), *a.generator.named_parameters()],
                            [*b.critic.parameters(), *b.generator.parameters()]):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=lambda m: f"{name}: {m}")
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=0, msg=lambda m: f"{name} grad: {m}")
    for opt_a, opt_b in ((a.critic_opt, b.critic_opt), (a.gen_opt, b.gen_opt)):
        for sa, sb in zip(opt_a.state.values(), opt_b.state.values()):
            for k in sa:
                torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0)
    assert stats_a.keys() == stats_b.keys()
    for k in stats_a:
        assert stats_a[k] == pytest.approx(stats_b[k], rel=1e-6), k
    assert torch.equal(a.rng.get_state(), b.rng.get_state())


def test_a_compiled_round_after_load_state_dict_uses_the_loaded_optimiser_state(ext, monkeypatch, three_threads):
    """load_state_dict (resume, rollback) replaces Adam's state tensors and may change the learning rate:
    the next round updates the loaded state, exactly as it did the first time from there."""
    from wgan.config import resolve
    from wgan.training.trainer import Trainer

    t = Trainer(resolve(ROUND_CONFIG))
    calls = _count_rounds(monkeypatch)
    for _ in range(2):
        t._one_generator_step()
    saved = copy.deepcopy(t.state_dict())
    t._one_generator_step()
    first = [p.detach().clone() for p in [*t.critic.parameters(), *t.generator.parameters()]]
    t._one_generator_step()  # move on, then go back
    t.load_state_dict(saved)
    t._one_generator_step()
    assert len(calls) == 4  # every step after the first was a compiled round
    for p, q in zip([*t.critic.parameters(), *t.generator.parameters()], first):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    # an empty optimiser state (a rollback to the start): the steps one by one until Adam has state again
    t.critic_opt.state.clear()
    t._one_generator_step()
    assert len(calls) == 4
    t._one_generator_step()
    assert len(calls) == 5


@pytest.mark.parametrize("overrides,compiled", [({}, True), ({"activation": "tanh"}, False),
                                                ({"variant": "wgan"}, False)])
def test_the_trainer_takes_every_core_only_where_the_compiled_steps_apply(ext, overrides, compiled):
    import os

    from wgan.config import resolve
    from wgan.training.trainer import Trainer

    old = torch.get_num_threads()
    t = Trainer(resolve({"data": "ring8", "preset": "toy", "variant": "wgan-gp", "threads": 0, **overrides}))
    assert t.threads == (os.cpu_count() if compiled else 1)
    assert torch.get_num_threads() == old  # train() applies it: constructing a trainer changes no global state
