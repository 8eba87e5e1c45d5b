"""wgan.engines.optim.step: the direct fused-Adam call gives exactly torch.optim.Adam's updates."""

import copy

import pytest
import torch
from torch import nn

from wgan.engines import optim


def _pair(**kwargs):
    net = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 1))
    other = copy.deepcopy(net)
    make = lambda m: torch.optim.Adam(m.parameters(), lr=1e-2, betas=(0.5, 0.9), fused=True, **kwargs)  # noqa: E731
    return (net, make(net)), (other, make(other))


def _train(net, opt, step, x, steps):
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        net(x).square().mean().backward()
        step(opt)


@pytest.mark.parametrize("kwargs", [{}, {"weight_decay": 0.1}, {"amsgrad": True}, {"maximize": True}])
def test_same_parameters_and_state_as_adam_step(kwargs, seed):
    (a, opt_a), (b, opt_b) = _pair(**kwargs)
    x = torch.randn(32, 3)
    _train(a, opt_a, lambda o: o.step(), x, 7)
    _train(b, opt_b, optim.step, x, 7)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    sa, sb = opt_a.state_dict()["state"], opt_b.state_dict()["state"]
    for k in sa:
        for name in sa[k]:
            assert torch.equal(sa[k][name], sb[k][name]), name


def test_lr_changes_and_hooks_are_honoured(seed):
    (a, opt_a), (b, opt_b) = _pair()
    x = torch.randn(8, 3)
    for opt in (opt_a, opt_b):
        opt.param_groups[0]["lr"] = 1e-3  # the trainer's rollback halves it in place
    _train(a, opt_a, lambda o: o.step(), x, 3)
    _train(b, opt_b, optim.step, x, 3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    calls = []
    opt_b.register_step_post_hook(lambda *args: calls.append(1))
    _train(b, opt_b, optim.step, x, 2)
    assert calls == [1, 1]  # with a hook, step() itself runs


def test_other_optimisers_take_their_own_step(seed):
    net = nn.Linear(2, 1)
    opt = torch.optim.RMSprop(net.parameters(), lr=0.1)
    net(torch.ones(1, 2)).sum().backward()
    before = net.weight.detach().clone()
    optim.step(opt)
    assert not torch.equal(before, net.weight)
