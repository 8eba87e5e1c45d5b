"""The compiled MLP steps (wgan.nets.native, csrc/mlp.cpp) against the PyTorch paths.

The compiled critic step runs fastgrad's algorithm with the element-wise work fused; it must give the
same loss, scores, penalty, norms and every parameter gradient as autograd's double backward (float64:
rtol 1e-9, the products summed in another order) and as the PyTorch written-out path in float32. The
extension is built by ``make`` (``python -m wgan.nets.native``); these tests build it if needed and fail
when it cannot be built, since the machine has a compiler: a silent fallback would hide a broken build.
"""

import copy

import pytest
import torch
from torch import nn

from wgan.lipschitz.gradient_penalty import GradientPenalty
from wgan.nets import fastgrad, native
from wgan.nets.mlp import MLPCritic, MLPGenerator
from wgan.objectives import get_objective
from wgan.training.distributed import Comm
from wgan.training.steps import critic_step

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


NETS = {
    "2x128-leaky": lambda: nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 16), nn.LeakyReLU(0.2),
                                         nn.Linear(16, 1)),
    "3-relu-wide-input": lambda: nn.Sequential(nn.Linear(20, 12), nn.ReLU(), nn.Linear(12, 9), nn.ReLU(),
                                               nn.Linear(9, 7), nn.ReLU(), nn.Linear(7, 1)),
    "one-hidden-no-bias": lambda: nn.Sequential(nn.Linear(3, 8, bias=False), nn.LeakyReLU(0.1),
                                                nn.Linear(8, 1, bias=False)),
}


@pytest.mark.parametrize("name", list(NETS))
@pytest.mark.parametrize("one_sided", [False, True])
def test_compiled_critic_step_equals_double_backward(ext, name, one_sided, seed):
    net = NETS[name]().to(F64)
    d = net[0].in_features
    x_real, x_fake = torch.randn(11, d, dtype=F64), torch.randn(11, d, dtype=F64) * 2
    x_hat = torch.randn(13, d, dtype=F64)  # M need not equal N
    reference = copy.deepcopy(net)
    expected = _reference(reference, x_real, x_fake, x_hat, 3.0, one_sided)
    got = native.wgan_gp_critic(net, x_real, x_fake, x_hat, fastgrad.WassersteinScores(),
                                fastgrad.NormPenalty(3.0, one_sided))
    assert got is not None
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    for (pname, a), b in zip(net.named_parameters(), reference.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12, msg=lambda m: f"{pname}: {m}")


def test_blocks_of_rows_give_the_same_step(ext, three_threads, seed):
    """Uneven blocks (N, N_fake and M differ and do not divide by three), summed, against autograd."""
    net = NETS["2x128-leaky"]().to(F64)
    x_real, x_fake, x_hat = torch.randn(200, 2, dtype=F64), torch.randn(211, 2, dtype=F64) * 2, torch.randn(
        230, 2, dtype=F64)
    reference = copy.deepcopy(net)
    expected = _reference(reference, x_real, x_fake, x_hat, 3.0, False)
    got = native.wgan_gp_critic(net, x_real, x_fake, x_hat, fastgrad.WassersteinScores(), fastgrad.NormPenalty(3.0))
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
    pen = fastgrad.NormPenalty(10.0)
    expected = fastgrad.penalised_loss_backward(reference, x_real, x_fake, x_hat, None, None,
                                                critic_loss_grad=fastgrad.WassersteinScores(), gradient_loss_grad=pen)
    got = native.wgan_gp_critic(net, x_real, x_fake, x_hat, fastgrad.WassersteinScores(), pen)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(net.parameters(), reference.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6)


def test_gradients_accumulate_like_backward(ext, seed):
    net = NETS["2x128-leaky"]().to(F64)
    x = torch.randn(6, 2, dtype=F64)
    args = (x, x + 1, x + 0.5, fastgrad.WassersteinScores(), fastgrad.NormPenalty(1.0))
    native.wgan_gp_critic(net, *args)
    once = [p.grad.clone() for p in net.parameters()]
    native.wgan_gp_critic(net, *args)
    for a, p in zip(once, net.parameters()):
        torch.testing.assert_close(2 * a, p.grad, rtol=1e-12, atol=0)


@pytest.mark.parametrize("rows", [17, 200])
def test_compiled_forward_equals_the_module(ext, three_threads, rows, seed):
    gen = MLPGenerator(3, (2,), 32, 3, "relu").to(F64)
    z = torch.randn(rows, 3, dtype=F64)
    expected = gen.net(z)
    with torch.no_grad():
        got = native.forward(gen.net, z)
        assert got is not None
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(gen(z), expected.view(rows, 2), rtol=1e-12, atol=1e-12)
    assert native.forward(gen.net, z) is None  # with grad enabled the module runs (a graph is wanted)


def test_applies_only_where_it_is_exact():
    layers = native.mlp_layers
    assert layers(NETS["2x128-leaky"]()) is not None
    assert layers(nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))) is None
    assert layers(nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.ReLU(), nn.Linear(4, 1))) is None
    assert layers(nn.Sequential(nn.Linear(2, 4), nn.LayerNorm(4), nn.ReLU(), nn.Linear(4, 1))) is None
    sn = NETS["2x128-leaky"]()
    torch.nn.utils.parametrizations.spectral_norm(sn[0])
    assert layers(sn) is None
    net = NETS["2x128-leaky"]()
    x = torch.randn(4, 2)
    # another objective or penalty: the PyTorch path does it (nothing done here)
    assert native.wgan_gp_critic(net, x, x, x, lambda r, f: None, fastgrad.NormPenalty(1.0)) is None
    assert native.wgan_gp_critic(net, x.double(), x, x, fastgrad.WassersteinScores(),
                                 fastgrad.NormPenalty(1.0)) is None
    assert all(p.grad is None for p in net.parameters())


def test_turned_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("WGAN_NATIVE", "0")
    assert native.load() is None
    net = NETS["2x128-leaky"]()
    x = torch.randn(4, 2)
    assert native.wgan_gp_critic(net, x, x, x, fastgrad.WassersteinScores(), fastgrad.NormPenalty(1.0)) is None


@pytest.mark.parametrize("rows", [24, 200])
def test_critic_step_with_and_without_the_compiled_step(ext, monkeypatch, three_threads, rows, seed):
    """The trainer's critic step, compiled from the noise (fake and interpolated rows made in the
    compiled call, in one block or three), against PyTorch's written-out path, on identical inputs."""
    generator, critic = MLPGenerator(2, (2,), 16, 2).to(F64), MLPCritic(2, 32, 2, "leaky_relu").to(F64)
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
    assert spy[0] is not None and spy[1] is None  # compiled, then not
    for k in s_on:
        torch.testing.assert_close(s_on[k], s_off[k], rtol=1e-9, atol=1e-12)
    for a, b in zip(g_on, g_off):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("out_shape,rows", [((2,), 9), ((1, 4, 4), 9), ((2,), 200)])
def test_compiled_generator_step_equals_autograd(ext, three_threads, out_shape, rows, seed):
    from wgan.training.steps import generator_step

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
    assert native.wgan_generator_step(generator, critic, z) is not None  # the compiled path did it


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


def test_a_compiled_round_equals_the_steps_one_by_one(ext, monkeypatch, three_threads):
    """A whole generator step in one call (critic steps, generator step, both Adam updates) leaves the
    same parameters, optimiser state, statistics and random stream as the steps one by one."""
    from wgan.config import resolve
    from wgan.training import trainer as trainer_module

    config = resolve({"data": "ring8", "preset": "toy", "variant": "wgan-gp", "g_width": 32, "c_width": 32,
                      "batch_size": 200, "n_critic": 3, "ema_decay": 0.0, "threads": 3})
    rounds = []
    original = trainer_module.compiled_round
    for compiled in (True, False):
        used = []
        monkeypatch.setattr(trainer_module, "compiled_round",
                            lambda *a: used.append(original(*a) if compiled else None) or used[-1])
        t = trainer_module.Trainer(config)
        for _ in range(3):
            t._one_generator_step()
        stats = t.acc.means(t.comm)
        assert [u is not None for u in used] == ([False, True, True] if compiled else [False] * 3)  # Adam's state first
        rounds.append((t, stats))
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


@pytest.mark.parametrize("overrides,compiled", [({}, True), ({"activation": "tanh"}, False),
                                                ({"variant": "wgan"}, False)])
def test_the_trainer_takes_every_core_only_where_the_compiled_steps_apply(ext, overrides, compiled):
    import os

    from wgan.config import resolve
    from wgan.training.trainer import Trainer

    old = torch.get_num_threads()
    try:
        Trainer(resolve({"data": "ring8", "preset": "toy", "variant": "wgan-gp", "threads": 0, **overrides}))
        assert torch.get_num_threads() == (os.cpu_count() if compiled else 1)
    finally:
        torch.set_num_threads(old)
