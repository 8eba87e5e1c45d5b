"""EMA of the generator's weights: the warm-up's exact weights, the initial weights' share against its
closed-form bound, buffers copied, and loading from checkpoints written before the warm-up."""

from __future__ import annotations

from math import comb

import pytest
import torch
from torch import nn

from wgan.training.ema import EMA


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).double()


def _fill(module: nn.Module, value: float) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(value)


def _params(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def test_first_update_keeps_a_tenth_of_the_initial_weights():
    # TF's ramp at num_updates = 0: decay (1 + 0) / (10 + 0) = 0.1, whatever the configured decay
    net = _net()
    theta_0 = _params(net)
    ema = EMA(net, decay=0.999)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    theta_1 = _params(net)
    ema.update(net)
    assert ema.updates == 1
    for avg, p0, p1 in zip(ema.module.parameters(), theta_0, theta_1):
        torch.testing.assert_close(avg, 0.1 * p0 + 0.9 * p1, rtol=0, atol=1e-15)


@pytest.mark.parametrize("decay", [0.999, 0.9, 0.5])
def test_initial_weights_share_is_below_the_closed_form_bound(decay):
    # With theta_0 = 1 and every later weight 0, the average is exactly the initial weights' share:
    # prod_{s<=t} min(decay, s / (s + 9)) <= t! 9! / (t + 9)! = 1 / C(t + 9, 9).
    net = _net()
    _fill(net, 1.0)
    ema = EMA(net, decay)
    _fill(net, 0.0)
    share = 1.0
    for t in range(1, 201):
        ema.update(net)
        share_now = ema.module[0].weight[0, 0].item()
        assert share_now <= 1 / comb(t + 9, 9) * (1 + 1e-12), (t, share_now)
        assert share_now <= share  # the initial weights only ever lose weight
        share = share_now
        if t in (1, 10, 100):
            assert share_now <= {1: 0.1, 10: 1.1e-5, 100: 2.4e-13}[t]
    for p in ema.module.parameters():
        assert torch.all(p == share)  # every parameter averaged alike


def test_the_decay_reaches_its_value_and_stays():
    ema = EMA(_net(), decay=0.999)
    assert ema.decay_at(1) == pytest.approx(0.1)
    assert ema.decay_at(91) == pytest.approx(91 / 100)
    assert all(ema.decay_at(t) < 0.999 for t in range(1, 8991))
    assert all(ema.decay_at(t) == 0.999 for t in range(8991, 20_000, 7))


def test_a_warmed_up_update_is_the_plain_average():
    net = _net()
    ema = EMA(net, decay=0.99)
    ema.load_state_dict(ema.state_dict(), updates=10_000)
    old = _params(ema.module)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(net)
    for avg, a, p in zip(ema.module.parameters(), old, net.parameters()):
        torch.testing.assert_close(avg, 0.99 * a + 0.01 * p, rtol=0, atol=1e-15)


def test_buffers_are_copied_not_averaged():
    net = _net()
    ema = EMA(net, decay=0.999)
    net.train()
    net(torch.randn(16, 3, dtype=torch.float64))  # moves BatchNorm's running statistics and its counter
    net(torch.randn(16, 3, dtype=torch.float64))
    ema.update(net)
    for (name, b_ema), b in zip(ema.module.named_buffers(), net.buffers()):
        assert torch.equal(b_ema, b), name
    assert int(ema.module[1].num_batches_tracked) == 2


def test_the_copy_is_frozen_and_separate():
    net = _net()
    ema = EMA(net, decay=0.9)
    assert not ema.module.training
    assert all(not p.requires_grad for p in ema.module.parameters())
    assert all(p.data_ptr() != q.data_ptr() for p, q in zip(ema.module.parameters(), net.parameters()))


def _moved(net: nn.Module, k: int) -> None:
    g = torch.Generator().manual_seed(k)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype))


def test_saved_count_continues_the_warm_up_exactly():
    straight_net, split_net = _net(), _net()
    straight = EMA(straight_net, decay=0.999)
    for k in range(6):
        _moved(straight_net, k)
        straight.update(straight_net)

    first = EMA(split_net, decay=0.999)
    for k in range(3):
        _moved(split_net, k)
        first.update(split_net)
    saved, count = first.state_dict(), first.updates
    resumed = EMA(_net(), decay=0.999)
    resumed.load_state_dict(saved, updates=count)
    for k in range(3, 6):
        _moved(split_net, k)
        resumed.update(split_net)
    assert resumed.updates == straight.updates == 6
    for a, b in zip(straight.module.parameters(), resumed.module.parameters()):
        assert torch.equal(a, b)


def test_a_state_dict_from_before_the_warm_up_loads_as_warmed_up(tmp_path):
    # Checkpoints written before the warm-up hold the averaged module's state dict alone, built with the
    # constant decay: it loads, and the next update uses that constant decay as before.
    net = _net()
    old_ema_module = _net()
    _moved(old_ema_module, 99)
    path = tmp_path / "old.pt"
    torch.save({"ema": old_ema_module.state_dict()}, path)
    state = torch.load(path, weights_only=True)["ema"]

    ema = EMA(net, decay=0.999)
    ema.load_state_dict(state)
    for a, b in zip(ema.module.parameters(), old_ema_module.parameters()):
        assert torch.equal(a, b)
    before = _params(ema.module)
    ema.update(net)
    for avg, a, p in zip(ema.module.parameters(), before, net.parameters()):
        torch.testing.assert_close(avg, 0.999 * a + 0.001 * p, rtol=0, atol=1e-15)
    assert set(ema.state_dict()) == set(net.state_dict())  # still a generator's state dict (export, sample)
