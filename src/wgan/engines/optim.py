"""Optimiser steps without the generic machinery where it adds nothing.

``torch.optim.Adam(fused=True).step()`` spends most of its time on a small model outside the kernel:
grouping tensors by device, the profiler's record, hooks, per-group bookkeeping — on the toy critic
about 50 µs around a 14 µs kernel, five times per generator step. :func:`step` calls the same kernel
(``torch._fused_adam_``) directly when that is all ``step()`` would do, with the same state, and
``step()`` otherwise (the first step, which creates the state; hooks; any other setting).
:func:`zero_grad` likewise.
"""

from __future__ import annotations

import torch
from torch.optim import optimizer as _optimizer


def plain_fused_adam(opt: torch.optim.Optimizer) -> dict | None:
    """The single parameter group of a fused Adam with nothing but lr, betas, eps and weight decay set."""
    if type(opt) is not torch.optim.Adam or len(opt.param_groups) != 1:
        return None
    if (opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks
            or _optimizer._global_optimizer_pre_hooks or _optimizer._global_optimizer_post_hooks):
        return None
    g = opt.param_groups[0]
    if not g.get("fused") or g["amsgrad"] or g["maximize"] or g["capturable"] or g["differentiable"] \
            or g.get("decoupled_weight_decay") or torch.is_tensor(g["lr"]):
        return None
    return g


def zero_grad(opt: torch.optim.Optimizer) -> None:
    """``opt.zero_grad(set_to_none=True)`` without the profiler's record around it (about 50 µs)."""
    for group in opt.param_groups:
        for p in group["params"]:
            p.grad = None


def fused_adam_args(opt: torch.optim.Optimizer, params: list[torch.Tensor] | None = None):
    """``(exp_avgs, exp_avg_sqs, steps, [lr, beta1, beta2, weight_decay, eps])`` for ``params`` (default:
    the optimiser's own, in its order) when ``opt.step()`` is exactly one ``torch._fused_adam_`` call
    on them: a plain fused Adam over exactly these parameters, its state already made; else ``None``."""
    g = plain_fused_adam(opt)
    if g is None:
        return None
    own = g["params"]
    if params is None:
        params = own
    elif len(params) != len(own) or {id(p) for p in params} != {id(p) for p in own}:
        return None
    state = opt.state
    if not all(p in state for p in params):
        return None
    states = [state[p] for p in params]
    beta1, beta2 = g["betas"]
    return ([s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [s["step"] for s in states],
            [g["lr"], beta1, beta2, g["weight_decay"], g["eps"]])


def step(opt: torch.optim.Optimizer) -> None:
    """``opt.step()``: the same update, for a plain fused Adam by one direct kernel call."""
    args = fused_adam_args(opt)
    if args is not None:
        params = opt.param_groups[0]["params"]
        grads = [p.grad for p in params]
        if all(gr is not None for gr in grads):
            exp_avgs, exp_avg_sqs, steps, (lr, beta1, beta2, weight_decay, eps) = args
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=lr, beta1=beta1,
                               beta2=beta2, weight_decay=weight_decay, eps=eps, maximize=False)
            return
    opt.step()
