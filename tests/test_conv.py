"""Conv generator and critic: shapes, layer vocabulary, the paper's MNIST model, per-sample independence."""

import numpy as np
import pytest
import torch
from torch import nn

from wgan.config import ConfigError, resolve
from wgan.lipschitz.gradient_penalty import GradientPenalty, input_gradient
from wgan.nets import build_nets
from wgan.nets.conv import ConvCritic, ConvGenerator

ALLOWED = (nn.Conv2d, nn.LeakyReLU, nn.ReLU, nn.LayerNorm, nn.GroupNorm, nn.Flatten, nn.Linear)


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_ranges(size, channels, seed):
    g = ConvGenerator(16, channels, size, width=8)
    x = g(torch.randn(5, 16))
    assert x.shape == (5, channels, size, size)
    assert x.abs().max() <= 1  # tanh
    f = ConvCritic(channels, size, width=8, norm="layer")
    assert f(x).shape == (5,)
    g.eval()
    assert g(torch.randn(1, 16)).shape == (1, channels, size, size)  # eval mode, batch of one


@pytest.mark.parametrize("norm", ["none", "layer"])
def test_critic_is_one_sequential_of_piecewise_linear_layers(norm):
    f = ConvCritic(3, 64, width=8, norm=norm)
    assert isinstance(f.net, nn.Sequential)
    assert all(isinstance(m, ALLOWED) for m in f.net), [type(m).__name__ for m in f.net]
    convs = [m for m in f.net if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 64]  # width, 2w, 4w, 8w for 64x64
    norms = [m for m in f.net if isinstance(m, nn.GroupNorm)]
    assert len(norms) == (3 if norm == "layer" else 0)
    assert all(m.num_groups == 1 for m in norms)  # GroupNorm(1, C) = LayerNorm over (C, H, W)
    assert isinstance(f.net[-1], nn.Linear) and f.net[-1].in_features == 64 * 4 * 4


def test_paper_mnist_critic_has_the_published_layout():
    # gan_mnist.py (Gulrajani et al. 2017): Conv 1->64, 64->128, 128->256 (5x5, stride 2), Linear 4*4*256 -> 1
    f = ConvCritic(1, 28, width=64)
    convs = [m for m in f.net if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (1, 64, (5, 5), (2, 2)), (64, 128, (5, 5), (2, 2)), (128, 256, (5, 5), (2, 2))]
    expected = (1 * 64 * 25 + 64) + (64 * 128 * 25 + 128) + (128 * 256 * 25 + 256) + (4 * 4 * 256 + 1)
    assert sum(p.numel() for p in f.parameters()) == expected == 1_030_145
    slopes = {m.negative_slope for m in f.net if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.2}
    g = ConvGenerator(128, 1, 28, width=64, norm="none")
    assert g.fc.out_features == 4 * 4 * 4 * 64  # Linear(128, 4*4*4*DIM)
    tconvs = [m for m in g.net if isinstance(m, nn.ConvTranspose2d)]
    assert [(t.in_channels, t.out_channels) for t in tconvs] == [(256, 128), (128, 64), (64, 1)]


def test_presets_build_the_paper_model_and_the_cpu_model():
    paper = resolve({"preset": "wgan-gp-mnist", "data": "mnist:/nonexistent"})
    assert (paper.z_dim, paper.g_width, paper.c_width, paper.batch_size, paper.gp_weight, paper.n_critic) == (
        128, 64, 64, 50, 10.0, 5)
    assert (paper.lr_c, paper.beta1, paper.beta2, paper.critic_norm) == (1e-4, 0.5, 0.9, "none")
    cpu = resolve({"data": "mnist:/nonexistent"})  # auto preset for mnist:...
    assert cpu.preset == "mnist" and cpu.arch == "conv" and cpu.c_width < paper.c_width


def test_layer_norm_critic_scores_each_sample_alone_batch_norm_does_not(seed):
    x = torch.randn(8, 1, 28, 28)
    f = ConvCritic(1, 28, width=8, norm="layer").train()
    torch.testing.assert_close(f(x)[:3], f(x[:3]))
    b = ConvCritic(1, 28, width=8, norm="batch").train()
    assert not torch.allclose(b(x)[:3], b(x[:3]))


def test_gradient_penalty_refuses_batchnorm_and_accepts_layer_norm():
    with pytest.raises(ConfigError, match="LayerNorm"):
        GradientPenalty(10.0).wrap(ConvCritic(1, 28, width=8, norm="batch"))
    GradientPenalty(10.0).wrap(ConvCritic(1, 28, width=8, norm="layer"))


def test_critic_without_norm_is_piecewise_linear_in_its_input(seed):
    # along a short segment inside one linear region, f(x + t d) - f(x) = t <grad f(x), d>
    f = ConvCritic(1, 28, width=8).double()
    x = torch.randn(3, 1, 28, 28, dtype=torch.float64)
    d = torch.randn_like(x)
    g = input_gradient(f, x, create_graph=False)
    t = 1e-6
    lhs = (f(x + t * d) - f(x)) / t
    rhs = (g * d).flatten(1).sum(1)
    torch.testing.assert_close(lhs, rhs, rtol=1e-5, atol=1e-6)


def test_build_nets_for_image_data_and_the_vanilla_gan_with_batchnorm():
    class D:
        shape = (3, 32, 32)

    cfg = resolve({"arch": "conv", "data": "npy:x.npy", "g_width": 8, "c_width": 8, "z_dim": 10})
    g, f = build_nets(cfg, D())
    assert g(torch.randn(2, 10)).shape == (2, 3, 32, 32) and f(torch.randn(2, 3, 32, 32)).shape == (2,)
    cfg = resolve({"arch": "conv", "data": "npy:x.npy", "variant": "gan", "critic_norm": "batch", "c_width": 8,
                   "g_width": 8})
    _, f = build_nets(cfg, D())
    assert any(isinstance(m, nn.BatchNorm2d) for m in f.modules())
    odd = type("Odd", (), {"shape": (1, 30, 30)})()
    with pytest.raises(ConfigError, match="28, 32 and 64"):
        build_nets(resolve({"arch": "conv", "data": "npy:x.npy"}), odd)


def test_unsupported_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="28, 32 and 64"):
        ConvCritic(1, 48)
    with pytest.raises(ConfigError, match="1 or 3 channels"):
        ConvGenerator(8, 2, 28)


def test_a_wgan_gp_conv_step_reduces_the_critic_loss_on_separable_data(tmp_path, seed):
    """Integration: the trainer runs the conv nets on a tiny .npy set and the critic learns to separate."""
    from wgan.training.trainer import Trainer

    x = np.zeros((64, 28, 28), np.uint8)
    x[:, 10:18, 10:18] = 255  # every real image is a white square
    np.save(tmp_path / "sq.npy", x)
    cfg = resolve({"data": f"npy:{tmp_path / 'sq.npy'}", "arch": "conv", "g_width": 8, "c_width": 8, "z_dim": 8,
                   "batch_size": 16, "steps": 3, "tick_every_steps": 3, "eval_samples": 20, "threads": 1})
    t = Trainer(cfg)
    summary = t.train()
    assert summary["step"] == 3
    assert t.history[0]["critic/gap"] > 0  # real squares score above the generator's noise


def test_conv_nets_train_channels_last_on_a_cpu_with_the_same_gradients(tmp_path, seed):
    """The trainer keeps conv weights channels-last on a CPU (oneDNN's fast layout); a critic step and a
    generator step give the gradients the default layout gives (float64, relative to the largest)."""
    import copy

    from wgan.training.steps import critic_step, generator_step
    from wgan.training.trainer import Trainer

    x = np.random.default_rng(0).integers(0, 256, (32, 28, 28, 3), dtype=np.uint8)
    np.save(tmp_path / "rgb.npy", x)
    t = Trainer(resolve({"data": f"npy:{tmp_path / 'rgb.npy'}", "arch": "conv", "g_width": 8, "c_width": 8,
                         "z_dim": 8, "batch_size": 6, "threads": 1}))
    convs = [m for m in t.critic.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    g = torch.Generator().manual_seed(1)
    x_real = t.data.sample(6, g).double()
    z = torch.randn(6, 8, generator=g, dtype=torch.float64)
    grads = []
    for layout in (torch.channels_last, torch.contiguous_format):
        gen, critic = copy.deepcopy(t.generator).double(), copy.deepcopy(t.critic).double()
        gen.to(memory_format=layout)
        critic.to(memory_format=layout)
        critic_step(critic, gen, torch.optim.SGD(critic.parameters(), lr=0.0), t.objective, t.lipschitz, t.comm,
                    x_real, z, torch.Generator().manual_seed(2))
        generator_step(gen, critic, torch.optim.SGD(gen.parameters(), lr=0.0), t.objective, t.comm, z)
        grads.append([p.grad for p in [*critic.parameters(), *gen.parameters()]])
    scale = max(float(b.abs().max()) for b in grads[1])
    for a, b in zip(*grads):
        assert float((a - b).abs().max()) <= 1e-12 * scale
