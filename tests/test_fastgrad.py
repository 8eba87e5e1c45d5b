"""The written-out input gradient (wgan.engines.fastgrad) against autograd's double backward.

Every fast path of the critic step — the written-out input gradient, and one critic forward over the
real and fake batches together — must give the same penalty, losses and parameter gradients as the
general path: autograd's ``create_graph=True`` gradient and a double backward, with separate
forwards. All comparisons run in float64; the tolerance is ``rtol=1e-9, atol=1e-12`` (the two paths
sum the same products in different orders, nothing more).
"""

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils.parametrizations import spectral_norm

from wgan.engines import choose_engine, fastgrad, native
from wgan.engines.written_out import written_out_critic
from wgan.lipschitz.gradient_penalty import GradientPenalty, gradient_penalty, input_gradient, penalty_of_gradient
from wgan.nets.conv import ConvCritic, ConvGenerator
from wgan.nets.mlp import MLPCritic, MLPGenerator
from wgan.objectives import get_objective
from wgan.training.distributed import Comm
from wgan.training.steps import critic_step

TOL = {"rtol": 1e-9, "atol": 1e-12}
F64 = torch.float64


def autograd_input_gradient(net, x):
    """The reference: autograd's gradient of sum(net(x)) with respect to x, with a graph."""
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(net(x).sum(), x, create_graph=True)
    return g


def sequential_nets():
    """Sequentials with every supported layer, odd sizes (output_padding), groups, dilation, 'same'."""
    return {
        "mlp-relu": (nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1)),
                     (9, 3)),
        "mlp-leaky-nested": (nn.Sequential(nn.Sequential(nn.Linear(3, 8), nn.LeakyReLU(0.2)), nn.Identity(),
                                           nn.Linear(8, 8), nn.LeakyReLU(0.1), nn.Linear(8, 1)), (9, 3)),
        "mlp-several-outputs": (nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 4)), (9, 3)),
        "mlp-ends-with-activation": (nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2), nn.LeakyReLU(0.3)),
                                     (9, 3)),
        "conv-odd-sizes": (nn.Sequential(nn.Conv2d(2, 4, 5, stride=2, padding=2), nn.LeakyReLU(0.2),
                                         nn.Conv2d(4, 6, 3, stride=3, padding=1), nn.ReLU(),
                                         nn.Flatten(), nn.Linear(6 * 3 * 3, 1)), (5, 2, 13, 13)),
        "conv-groups-dilation-same": (nn.Sequential(nn.Conv2d(2, 4, 3, padding="same", dilation=2, groups=2),
                                                    nn.LeakyReLU(0.2), nn.Conv2d(4, 3, (3, 2), stride=(2, 1),
                                                                                 padding="valid"),
                                                    nn.ReLU(), nn.Conv2d(3, 1, 2)), (4, 2, 10, 9)),
        "unflatten": (nn.Sequential(nn.Flatten(), nn.Linear(12, 32), nn.ReLU(), nn.Unflatten(1, (2, 4, 4)),
                                    nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.LeakyReLU(0.2), nn.Flatten(),
                                    nn.Linear(12, 1)), (6, 3, 4)),
    }


@pytest.mark.parametrize("name", list(sequential_nets()))
def test_input_gradient_equals_autograd(name, seed):
    net, shape = sequential_nets()[name]
    net = net.to(F64)
    x = torch.randn(*shape, dtype=F64)
    assert fastgrad.supports(net)
    torch.testing.assert_close(fastgrad.input_gradient(net, x), autograd_input_gradient(net, x), **TOL)


@pytest.mark.parametrize("name", list(sequential_nets()))
def test_parameter_gradients_of_a_loss_on_it_equal_double_backward(name, seed):
    net, shape = sequential_nets()[name]
    net = net.to(F64)
    x = torch.randn(*shape, dtype=F64)
    params = [p for p in net.parameters()]
    target = torch.randn(shape, dtype=F64)  # a loss that weights every entry differently

    def loss(g):
        return ((g - target) ** 2).sum() + g.flatten(1).norm(dim=1).sum()

    fast = torch.autograd.grad(loss(fastgrad.input_gradient(net, x)), params, allow_unused=True)
    slow = torch.autograd.grad(loss(autograd_input_gradient(net, x)), params, allow_unused=True)
    for p, a, b in zip(params, fast, slow):
        # biases only choose the linear piece: autograd gives exact zeros, the written-out graph none
        torch.testing.assert_close(a if a is not None else torch.zeros_like(p),
                                   b if b is not None else torch.zeros_like(p), **TOL)


@pytest.mark.parametrize("name", ["mlp-leaky-nested", "conv-odd-sizes", "unflatten"])
def test_gradcheck_of_the_written_out_gradient_with_respect_to_the_weights(name, seed):
    """Finite differences of the weights against the first-order graph: torch.autograd.gradcheck.

    The pieces are found again at every perturbed point; a 1e-6 step moves no generic
    pre-activation across 0, so the numerical derivative is the one of the fixed piece.
    """
    net, shape = sequential_nets()[name]
    wrapper = _GradientOf(net.to(F64))
    x = torch.randn(*shape, dtype=F64)
    names = [n for n, _ in wrapper.named_parameters() if n.endswith("weight")]
    base = {n: p.detach() for n, p in wrapper.named_parameters()}

    def f(*weights):
        return functional_call(wrapper, {**base, **dict(zip(names, weights))}, (x,))

    inputs = tuple(base[n].clone().requires_grad_(True) for n in names)
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7, rtol=1e-6)


class _GradientOf(nn.Module):
    """x -> the written-out input gradient of ``net`` at x (so functional_call can swap its weights)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return fastgrad.input_gradient(self.net, x)


def test_no_gradient_flows_back_to_the_input(seed):
    net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1)).to(F64)
    x = torch.randn(5, 2, dtype=F64, requires_grad=True)
    g = fastgrad.input_gradient(net, x)
    assert g.grad_fn is not None  # a graph to the weights...
    assert torch.autograd.grad(g.sum(), x, allow_unused=True)[0] is None  # ...but none to x


@pytest.mark.parametrize("module, expected", [
    (nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1)), False),  # smooth activation
    (nn.Sequential(nn.Linear(2, 4), nn.LayerNorm(4), nn.ReLU(), nn.Linear(4, 1)), False),
    (nn.Sequential(nn.Linear(2, 4), nn.Dropout(0.1), nn.Linear(4, 1)), False),
    (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), nn.Flatten(), nn.Linear(8, 1)), False),
    (nn.Sequential(nn.Conv2d(1, 2, 2, padding="same"), nn.Flatten(), nn.Linear(8, 1)), False),  # asymmetric
    (nn.Sequential(nn.ReLU(), nn.Flatten()), False),  # no weights at all
    (nn.Linear(2, 1), False),  # not a Sequential
    (nn.Sequential(nn.Linear(2, 4), nn.ReLU(inplace=True), nn.Linear(4, 1)), True),
])
def test_supports(module, expected):
    assert fastgrad.supports(module) is expected


def test_supports_refuses_parametrised_and_hooked_layers():
    net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
    assert fastgrad.supports(net)
    spectral_norm(net[0])
    assert not fastgrad.supports(net)
    net2 = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
    net2[2].register_forward_hook(lambda m, i, o: o * 2)
    assert not fastgrad.supports(net2)
    with pytest.raises(ValueError, match="supports"):
        fastgrad.input_gradient(net2, torch.randn(3, 2))
    x = torch.randn(3, 2)
    with pytest.raises(ValueError, match="supports"):
        fastgrad.penalised_loss_backward(net2, x, x, x, lambda r, f: f.mean() - r.mean(), lambda g: (g.sum(), None))


def test_inplace_activation_leaves_the_input_alone(seed):
    net = nn.Sequential(nn.LeakyReLU(0.2, inplace=True), nn.Linear(3, 1)).to(F64)
    x = torch.randn(4, 3, dtype=F64)
    x0 = x.clone()
    g = fastgrad.input_gradient(net, x)
    assert torch.equal(x, x0)
    reference = nn.Sequential(nn.LeakyReLU(0.2), net[1])  # autograd refuses in-place on a leaf
    torch.testing.assert_close(g, autograd_input_gradient(reference, x0), **TOL)


# --------------------------------------------------------------------------- the project's critics
def project_critics():
    return {
        "mlp-relu": (lambda: MLPCritic(2, 32, 3, "relu"), (16, 2)),
        "mlp-leaky_relu": (lambda: MLPCritic(2, 32, 2, "leaky_relu"), (16, 2)),
        "mlp-images": (lambda: MLPCritic(28 * 28, 16, 2, "leaky_relu"), (6, 1, 28, 28)),
        "conv-28": (lambda: ConvCritic(1, 28, width=4), (6, 1, 28, 28)),
        "conv-32-rgb-relu": (lambda: ConvCritic(3, 32, width=4, activation="relu"), (6, 3, 32, 32)),
    }


def _written_out(critic) -> bool:
    return written_out_critic(critic, GradientPenalty(10.0)) is not None


def written_out_input_gradient(critic, x):
    """The project critic's input gradient by its declared layer stack, written out."""
    net, rows = fastgrad.declared_stack(critic)
    return fastgrad.input_gradient(net, x.flatten(1) if rows else x).view_as(x)


def test_project_critics_offer_the_fast_path_only_when_it_applies():
    for make, _ in project_critics().values():
        assert _written_out(make())
    assert not _written_out(MLPCritic(2, 8, 2, "tanh"))
    assert not _written_out(MLPCritic(2, 8, 2, "relu", norm="layer"))
    assert not _written_out(ConvCritic(1, 28, width=4, norm="layer"))
    sn = MLPCritic(2, 8, 2, "relu")
    spectral_norm(sn.net[0])
    assert not _written_out(sn)
    assert written_out_critic(MLPCritic(2, 8, 2, "relu"), GradientPenalty(10.0, fast=False)) is None


@pytest.mark.parametrize("name", list(project_critics()))
@pytest.mark.parametrize("one_sided", [False, True])
def test_penalty_and_its_gradients_equal_the_double_backward(name, one_sided, seed):
    make, shape = project_critics()[name]
    critic = make().to(F64)
    x_real, x_fake = torch.randn(*shape, dtype=F64), torch.randn(*shape, dtype=F64)
    x_hat = torch.lerp(x_fake, x_real, torch.rand((shape[0],) + (1,) * (len(shape) - 1), dtype=F64))
    params = list(critic.parameters())
    fast, norms_fast = penalty_of_gradient(written_out_input_gradient(critic, x_hat), one_sided)
    slow, norms_slow = gradient_penalty(critic, x_real, x_fake, x_hat, one_sided=one_sided)
    torch.testing.assert_close(fast, slow, **TOL)
    torch.testing.assert_close(norms_fast, norms_slow, **TOL)
    # the whole critic loss, so every parameter (biases too) has a gradient on both paths
    objective = critic(x_fake).mean() - critic(x_real).mean()
    g_fast = torch.autograd.grad(objective + 10 * fast, params, retain_graph=True)
    g_slow = torch.autograd.grad(objective + 10 * slow, params)
    for a, b in zip(g_fast, g_slow):
        torch.testing.assert_close(a, b, **TOL)


def _plain_critic_step(critic, generator, x_real, z, alpha, gp_weight):
    """The source texts' critic step: separate forwards, autograd.grad with create_graph (with the
    project's 1e-12 under the norm's square root, which shifts small norms by more than roundoff)."""
    x_fake = generator(z).detach()
    x_hat = (alpha * x_real + (1 - alpha) * x_fake).requires_grad_(True)
    score = critic(x_hat)
    (grad,) = torch.autograd.grad(score, x_hat, torch.ones_like(score), create_graph=True)
    norm = (grad.flatten(1).square().sum(1) + 1e-12).sqrt()  # the project's norm, finite at 0
    gp = ((norm - 1) ** 2).mean()
    loss = -(critic(x_real).mean() - critic(x_fake).mean()) + gp_weight * gp
    loss.backward()
    return loss.detach(), gp.detach()


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_trainer_critic_step_equals_the_plain_critic_step(arch, seed):
    """critic_step (one forward over real and fake, the written-out gradient) against the usual
    three forwards and double backward, on identical inputs and interpolation coefficients."""
    if arch == "mlp":
        generator, critic, n = MLPGenerator(2, (2,), 16, 2), MLPCritic(2, 32, 2, "leaky_relu"), 32
        x_real, z = torch.randn(n, 2, dtype=F64), torch.randn(n, 2, dtype=F64)
    else:
        generator, critic, n = ConvGenerator(8, 1, 28, width=4), ConvCritic(1, 28, width=4), 6
        x_real, z = torch.rand(n, 1, 28, 28, dtype=F64) * 2 - 1, torch.randn(n, 8, dtype=F64)
    generator, critic = generator.to(F64).eval(), critic.to(F64)
    reference = copy.deepcopy(critic)
    gp_weight = 10.0
    opt = torch.optim.SGD(critic.parameters(), lr=0.0)  # keep the weights: compare the gradients
    stats = critic_step(critic, generator, opt, get_objective("wasserstein"), GradientPenalty(gp_weight),
                        Comm(), x_real, z, torch.Generator().manual_seed(5))
    alpha = torch.rand((n,) + (1,) * (x_real.dim() - 1), generator=torch.Generator().manual_seed(5), dtype=F64)
    loss, gp = _plain_critic_step(reference, generator, x_real, z, alpha, gp_weight)
    torch.testing.assert_close(stats["loss/critic_total"], loss, **TOL)
    torch.testing.assert_close(stats["lipschitz/penalty"], gp_weight * gp, **TOL)
    for (name, a), b in zip(critic.named_parameters(), reference.parameters()):
        torch.testing.assert_close(a.grad, b.grad, **TOL, msg=lambda m: f"{name}: {m}")


def test_trainer_uses_the_written_out_backward(monkeypatch, tiny):
    from wgan.config import resolve
    from wgan.training.trainer import Trainer

    trainer = Trainer(resolve({**tiny, "variant": "wgan-gp", "steps": 1, "tick_every_steps": 1}))
    assert trainer.engine.name == "compiled"  # chosen once, for the run
    calls = []
    # PyTorch, compiled from the samples, or compiled from the noise (x_real is the argument at `at`)
    for module, name, at in ((fastgrad, "penalised_loss_backward", 1), (native, "wgan_gp_critic", 1),
                             (native, "wgan_gp_critic_step", 2)):
        original = getattr(module, name)

        def spy(*a, _original=original, _at=at, **k):
            out = _original(*a, **k)
            if out is not None:
                calls.append(len(a[_at]))
            return out

        monkeypatch.setattr(module, name, spy)
    trainer._one_generator_step()
    assert calls == [trainer.config.batch_size] * trainer.config.n_critic
    # and the general path is still there for critics that do not offer one
    assert input_gradient(nn.Sequential(nn.Linear(2, 1)), torch.randn(3, 2)).shape == (3, 2)
    net = nn.Sequential(nn.Linear(2, 1))
    assert choose_engine(nn.Identity(), net, get_objective("wasserstein"), GradientPenalty(1.0),
                         (torch.optim.SGD(net.parameters(), lr=0.0), None), Comm()).name == "autograd"


# --------------------------------------------------------------------------- the written-out backward
def _scalar_nets():
    """The sequential nets with one output per sample (a critic's shape)."""
    nets = {k: v for k, v in sequential_nets().items() if k not in ("mlp-several-outputs", "mlp-ends-with-activation",
                                                                     "conv-groups-dilation-same")}
    nets["conv-groups-dilation-same-linear"] = (
        nn.Sequential(nn.Conv2d(2, 4, 3, padding="same", dilation=2, groups=2), nn.LeakyReLU(0.2),
                      nn.Conv2d(4, 3, (3, 2), stride=(2, 1), padding="valid"), nn.ReLU(), nn.Flatten(),
                      nn.Linear(3 * 4 * 8, 1)), (4, 2, 10, 9))
    nets["mlp-no-bias-identity"] = (nn.Sequential(nn.Identity(), nn.Linear(3, 8, bias=False), nn.ReLU(),
                                                  nn.Linear(8, 1, bias=False)), (7, 3))
    nets["dcgan-no-bias"] = (nn.Sequential(nn.Conv2d(3, 4, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
                                           nn.Conv2d(4, 8, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
                                           nn.Conv2d(8, 1, 4, 1, 0, bias=False), nn.Flatten()), (5, 3, 16, 16))
    # an activation on the input, and two affine layers above the last activation
    nets["activation-first-two-linear-top"] = (nn.Sequential(nn.LeakyReLU(0.3), nn.Linear(3, 8), nn.ReLU(),
                                                             nn.Linear(8, 4), nn.Linear(4, 1)), (7, 3))
    return nets


def _reference_backward(net, x_real, x_fake, x_hat, critic_loss, gradient_loss):
    """autograd: separate forwards, create_graph=True, one backward of the sum."""
    s_real, s_fake = net(x_real).reshape(-1), net(x_fake).reshape(-1)
    loss = critic_loss(s_real, s_fake)
    x_hat = x_hat.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(net(x_hat).sum(), x_hat, create_graph=True)
    term, aux = gradient_loss(g)
    (loss + term).backward()
    return loss.detach(), s_real.detach(), s_fake.detach(), term.detach(), aux.detach()


OBJECTIVES = ["wasserstein", "hinge", "minimax"]


def _check_written_out_backward(net, x_real, x_fake, x_hat, objective):
    """penalised_loss_backward against autograd: every output and every parameter gradient."""
    critic_loss = get_objective(objective).critic_loss

    def gradient_loss(g):
        pen, norms = penalty_of_gradient(g)
        return 10.0 * pen, norms

    reference = copy.deepcopy(net)
    expected = _reference_backward(reference, x_real, x_fake, x_hat, critic_loss, gradient_loss)
    got = fastgrad.penalised_loss_backward(net, x_real, x_fake, x_hat, critic_loss, gradient_loss)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, **TOL)
    for (pname, a), b in zip(net.named_parameters(), reference.parameters()):
        torch.testing.assert_close(a.grad, b.grad, **TOL, msg=lambda m: f"{pname}: {m}")


@pytest.mark.parametrize("name", list(_scalar_nets()))
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_written_out_backward_equals_autograd(name, objective, seed):
    net, shape = _scalar_nets()[name]
    _check_written_out_backward(net.to(F64), *(torch.randn(*shape, dtype=F64) for _ in range(3)), objective)


@pytest.mark.parametrize("name", ["mlp-leaky-nested", "conv-odd-sizes"])
def test_written_out_backward_with_more_interpolates_than_samples(name, seed):
    """x_hat need not pair with the batch: M interpolates against N real and N fake rows."""
    net, shape = _scalar_nets()[name]
    x_real, x_fake = (torch.randn(*shape, dtype=F64) for _ in range(2))
    x_hat = torch.randn(2 * shape[0] + 1, *shape[1:], dtype=F64)
    _check_written_out_backward(net.to(F64), x_real, x_fake, x_hat, "wasserstein")


def test_written_out_backward_accumulates_like_backward(seed):
    net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1)).to(F64)
    x = torch.randn(5, 2, dtype=F64)
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    fastgrad.penalised_loss_backward(net, x, x + 1, x + 0.5, lambda r, f: f.mean() - r.mean(),
                                     lambda g: ((g ** 2).sum(), None))
    first = [p.grad.clone() - 1 for p in net.parameters()]
    for p in net.parameters():
        p.grad = None
    fastgrad.penalised_loss_backward(net, x, x + 1, x + 0.5, lambda r, f: f.mean() - r.mean(),
                                     lambda g: ((g ** 2).sum(), None))
    for a, p in zip(first, net.parameters()):
        torch.testing.assert_close(a, p.grad, **TOL)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("one_sided", [False, True])
def test_critic_step_fast_and_general_paths_agree(arch, one_sided, seed):
    """critic_step with the written-out backward against fast_penalty off (autograd's double
    backward, separate nothing else): statistics and every gradient, lazy gain included."""
    if arch == "mlp":
        generator, critic, n = MLPGenerator(2, (2,), 16, 2), MLPCritic(2, 32, 3, "relu"), 24
        x_real, z = torch.randn(n, 2, dtype=F64), torch.randn(n, 2, dtype=F64)
    else:
        generator, critic, n = ConvGenerator(8, 3, 32, width=4), ConvCritic(3, 32, width=4), 4
        x_real, z = torch.rand(n, 3, 32, 32, dtype=F64) * 2 - 1, torch.randn(n, 8, dtype=F64)
    generator, critic = generator.to(F64).eval(), critic.to(F64)
    results = []
    for fast in (True, False):
        c = copy.deepcopy(critic)
        stats = critic_step(c, generator, torch.optim.SGD(c.parameters(), lr=0.0), get_objective("wasserstein"),
                            GradientPenalty(3.0, one_sided=one_sided, interval=2, fast=fast), Comm(), x_real, z,
                            torch.Generator().manual_seed(11))
        results.append((stats, [p.grad for p in c.parameters()]))
    (s_fast, g_fast), (s_slow, g_slow) = results
    assert s_fast.keys() == s_slow.keys()
    for k in s_fast:
        torch.testing.assert_close(s_fast[k], s_slow[k], **TOL, msg=lambda m: f"{k}: {m}")
    for a, b in zip(g_fast, g_slow):
        torch.testing.assert_close(a, b, **TOL)
