r"""The input gradient of a piecewise-linear critic, written out so a penalty on it is first order.

A critic that is an ``nn.Sequential`` of ``Linear``, ``Conv2d``, ``ReLU``, ``LeakyReLU``,
``Flatten``, ``Unflatten`` and ``Identity`` layers is piecewise linear in its input. On each
piece its input gradient is a product of constant matrices:

.. math::
    \nabla_x f(x) = W_1^T D_1 W_2^T D_2 \cdots D_{L-1} W_L^T \mathbf{1}, \qquad
    D_l = \mathrm{diag}\big(\sigma'(a_l(x))\big)

where :math:`W_l^T` is the transposed weight of a linear layer and, for a convolution, the
transposed convolution (``conv_transpose2d`` with the layer's stride, padding, dilation and groups,
and the ``output_padding`` that recovers the input size), and :math:`\sigma'(a_l) \in \{1, s\}`
is the slope of the activation at its input (:math:`s = 0` for ReLU). The slopes are piecewise
constant, so they carry no gradient with respect to the parameters: differentiating this product
with an ordinary (first-order) backward gives exactly the parameter gradients that autograd's
double backward gives for :math:`\nabla_\theta P(\nabla_x f)` — without building the graph of
the first backward. Biases do not appear in the gradient; they only choose the piece.

On a CPU this is the biggest single saving of the WGAN-GP step for MLP critics (see
``docs/performance.md``): the penalty needs no graph of a backward pass, and its backward is a
plain one through :math:`L` matrix products. For convolutions the arithmetic is the same as
autograd's double backward; what is saved is its overhead. The engines (:mod:`wgan.engines`) use it
for a net that declares its layers (:func:`declared_stack`); the closed forms of the losses it
differentiates belong to their owners (the objective, the Lipschitz method).

Example:
    >>> net = nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1))
    >>> x = torch.randn(4, 2)
    >>> supports(net)
    True
    >>> auto = torch.autograd.grad(net(x.requires_grad_()).sum(), x)[0]
    >>> torch.allclose(input_gradient(net, x), auto, atol=1e-6)
    True

References:
    Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017 (eq. 3: the penalty on
    :math:`\|\nabla_{\hat x} f(\hat x)\|_2`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

_AFFINE = (nn.Linear, nn.Conv2d)
_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU)
_SHAPES = (nn.Flatten, nn.Unflatten, nn.Identity)


def declared_stack(module: nn.Module) -> tuple[nn.Sequential, bool] | None:
    """``(net, rows)`` for a module that declares the plain layer stack its forward runs, else ``None``.

    A net declares it with two attributes: ``net``, an ``nn.Sequential``, and ``stack_input``:
    ``"rows"`` when ``forward(x)`` is ``net(x.flatten(1))`` (``rows`` is True), ``"as_is"`` when it is
    ``net(x)``; either way the output is only reshaped (a critic's (N, 1) to (N,), a generator's rows to
    its ``out_shape``). Whether the layers are ones this module can differentiate is :func:`supports`'.
    """
    kind = getattr(module, "stack_input", None)
    net = getattr(module, "net", None)
    if kind not in ("rows", "as_is") or not isinstance(net, nn.Sequential):
        return None
    return net, kind == "rows"


def _layers(module: nn.Module) -> list[nn.Module]:
    """The leaf layers of a (possibly nested) Sequential, in order."""
    if isinstance(module, nn.Sequential):
        return [leaf for child in module for leaf in _layers(child)]
    return [module]


def _has_hooks(m: nn.Module) -> bool:
    return bool(m._forward_hooks or m._forward_pre_hooks or getattr(m, "_forward_hooks_with_kwargs", None))


def _conv_padding(conv: nn.Conv2d) -> tuple[int, int] | None:
    """Numeric (pad_h, pad_w) of a zero-padded conv, or None when the transpose cannot mirror it."""
    if conv.padding_mode != "zeros":
        return None
    if conv.padding == "valid":
        return (0, 0)
    if conv.padding == "same":
        pads = []
        for k, d in zip(conv.kernel_size, conv.dilation):
            total = d * (k - 1)
            if total % 2:
                return None  # asymmetric 'same' padding has no conv_transpose2d counterpart
            pads.append(total // 2)
        return tuple(pads)
    return tuple(conv.padding)


def supports(module: nn.Module) -> bool:
    """True when :func:`input_gradient` applies to ``module``.

    ``module`` must be an ``nn.Sequential`` (nested ones are flattened) of ``Linear``, ``Conv2d``
    (zero padding), ``ReLU``, ``LeakyReLU``, ``Flatten``, ``Unflatten`` and ``Identity`` layers,
    with no parametrisations (spectral norm) and no forward hooks. Anything else — normalisation
    layers, smooth activations, dropout, custom modules — needs autograd's double backward.
    """
    if not isinstance(module, nn.Sequential):
        return False
    layers = _layers(module)
    if not any(isinstance(m, _AFFINE) for m in layers):
        return False
    for m in layers:
        if not isinstance(m, _AFFINE + _ACTIVATIONS + _SHAPES):
            return False
        if type(m) not in (nn.Linear, nn.Conv2d, nn.ReLU, nn.LeakyReLU, nn.Flatten, nn.Unflatten, nn.Identity):
            return False  # a subclass may change forward
        if _has_hooks(m) or parametrize.is_parametrized(m):
            return False
        if isinstance(m, nn.Conv2d) and _conv_padding(m) is None:
            return False
    return True


def _slope(m: nn.Module) -> float:
    return float(m.negative_slope) if isinstance(m, nn.LeakyReLU) else 0.0


def _activation_forward(m: nn.Module, h: torch.Tensor, owned: bool) -> tuple[torch.Tensor, tuple]:
    """The activation without a graph, and the record its backward needs: ``(tensor, is_result)``.

    In place when ``h`` is a fresh output of an affine layer (``owned``; never the caller's input):
    one memory pass instead of two, and the result carries the same pieces (result > 0 iff input > 0
    for ReLU and a non-negative slope).
    """
    slope = _slope(m)
    if owned and slope >= 0.0:
        out = h.relu_() if slope == 0.0 else F.leaky_relu_(h, slope)
        return out, (out, True)
    return (F.relu(h) if slope == 0.0 else F.leaky_relu(h, slope)), (h, False)


def _activation_backward(m: nn.Module, d: torch.Tensor, rec: tuple) -> torch.Tensor:
    """d * sigma'(a) from the record of :func:`_activation_forward`: the activation's own backward
    kernel, as autograd's (``torch.where`` and a bool mask are several times slower here)."""
    t, is_result = rec
    slope = _slope(m)
    if slope == 0.0:
        return torch.ops.aten.threshold_backward(d, t, 0.0)  # zero where t <= 0: input or result alike
    return torch.ops.aten.leaky_relu_backward(d, t, slope, is_result)


@torch.no_grad()
def _pieces(layers: list[nn.Module], x: torch.Tensor) -> tuple[list, tuple[int, ...]]:
    """Forward without a graph, recording per layer what the backward chain needs.

    Activation: ``(tensor, is_result)`` from :func:`_activation_forward`, which fixes its slope
    (1 where the input is > 0, else the negative slope); any other layer: its input's shape. Returns
    the records and the output shape. Layers after the last activation are affine with constant
    slopes: only shapes are tracked there (a final Linear is not computed).
    """
    tape: list = []
    h = x
    owned = False  # h is a fresh output of an affine layer (or a view of one)
    last_act = max((i for i, m in enumerate(layers) if isinstance(m, _ACTIVATIONS)), default=-1)
    for i, m in enumerate(layers):
        if isinstance(m, _ACTIVATIONS):
            h, rec = _activation_forward(m, h, owned)
            tape.append(rec)
            owned = False
        else:
            tape.append(tuple(h.shape))
            if i > last_act and isinstance(m, nn.Linear):
                h = h.new_empty(h.shape[:-1] + (m.out_features,))  # only its shape is needed
            else:
                h = m(h)
            owned = owned if isinstance(m, _SHAPES) else True
    return tape, tuple(h.shape)


def _conv_transpose(g: torch.Tensor, conv: nn.Conv2d, in_hw: tuple[int, ...]) -> torch.Tensor:
    """The adjoint of ``conv`` (without bias) applied to g, sized to the conv's input."""
    pad = _conv_padding(conv)
    output_padding = []
    for i in range(2):
        s, d, k = conv.stride[i], conv.dilation[i], conv.kernel_size[i]
        size = (g.shape[-2 + i] - 1) * s - 2 * pad[i] + d * (k - 1) + 1
        output_padding.append(in_hw[i] - size)  # in [0, max(s, d)): what the conv's floor dropped
    return F.conv_transpose2d(g, conv.weight, None, conv.stride, pad, tuple(output_padding), conv.groups,
                              conv.dilation)


def _chain(layers: list[nn.Module], tape: list, out_shape: tuple[int, ...], dtype: torch.dtype,
           device: torch.device) -> torch.Tensor:
    """g = J(x)^T 1 through the layers in reverse: a first-order graph to the weights."""
    g = None
    for m, rec in zip(reversed(layers), reversed(tape)):
        if g is None and isinstance(m, nn.Linear):
            # seed: ones(out) @ W is the column sums of W, broadcast over the batch; no matmul
            w = m.weight  # (out, in)
            g = (w if w.shape[0] == 1 else w.sum(0, keepdim=True)).expand(rec)
            continue
        if g is None:
            g = torch.ones(out_shape, dtype=dtype, device=device)
        if isinstance(m, nn.Linear):
            g = g.matmul(m.weight)  # (..., out) -> (..., in)
        elif isinstance(m, nn.Conv2d):
            g = _conv_transpose(g, m, rec[-2:])
        elif isinstance(m, _ACTIVATIONS):
            g = _activation_backward(m, g, rec)  # linear in g: its derivative is itself
        elif isinstance(m, (nn.Flatten, nn.Unflatten)):
            g = g.reshape(rec)
        # Identity: nothing
    assert g is not None
    return g


def input_gradient(net: nn.Module, x: torch.Tensor, check: bool = True) -> torch.Tensor:
    r"""The gradient of :math:`\sum_j \mathrm{net}(x)_{ij}` with respect to ``x[i]``, written out.

    For a critic with one output per sample this is :math:`\nabla_x f(x)` for every sample. The
    forward that finds the activation pieces runs without a graph; the result carries a
    first-order graph to the weights, so a loss on it (the gradient penalty) needs only
    ``loss.backward()``, and gives the same parameter gradients as
    ``torch.autograd.grad(net(x).sum(), x, create_graph=True)`` followed by a double backward.

    Args:
        net: a Sequential for which :func:`supports` is True.
        x: the input batch, (N, ...) as ``net`` takes it.
        check: verify :func:`supports` first; a caller that checked once may skip it (it costs
            a walk over the layers on every call).

    Returns:
        The gradient, shaped like ``x``. The pieces are constant, so no gradient flows back to ``x``.

    Shape:
        x (N, ...) -> (N, ...).

    Example:
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
        >>> input_gradient(net, torch.randn(5, 3)).shape
        torch.Size([5, 3])
    """
    if check and not supports(net):
        raise ValueError(f"fastgrad.input_gradient does not support this module (check supports() first): {net}")
    layers = _layers(net)
    tape, out_shape = _pieces(layers, x.detach())
    return _chain(layers, tape, out_shape, x.dtype, x.device).reshape(x.shape)


# ------------------------------------------------------------------------------------------------
# The whole penalised critic loss with its parameter gradients, written out (no autograd graph of
# the network at all). Real, fake and interpolated rows are stacked once: one forward over all of
# them (the interpolates' rows only choose the pieces), one pass down the adjoints that carries
# the score gradients of the real and fake rows and the input-gradient chain of the interpolates
# together, one pass up the chain for the penalty's gradient, and one weight gradient per layer.

_aten = torch.ops.aten


def _adjoint(m: nn.Module, d: torch.Tensor, in_shape: tuple[int, ...]) -> torch.Tensor:
    """The transposed affine map of ``m`` (no bias) applied to ``d``, sized to the layer's input."""
    if isinstance(m, nn.Linear):
        # one output: an outer product, as a broadcast (BLAS is slow at K = 1)
        return d * m.weight if m.out_features == 1 else d.matmul(m.weight)
    return _conv_transpose(d, m, in_shape[-2:])


def _affine_no_bias(m: nn.Module, d: torch.Tensor) -> torch.Tensor:
    """The affine map of ``m`` without its bias: the derivative of its adjoint, for the chain's backward."""
    if isinstance(m, nn.Linear):
        return d.matmul(m.weight.t())
    return F.conv2d(d, m.weight, None, m.stride, _conv_padding(m), m.dilation, m.groups)


def _weight_gradients(m: nn.Module, d_out: torch.Tensor, inp: torch.Tensor, f: int) -> list:
    """``(parameter, gradient)`` of layer ``m`` for the stacked rows: the weight gradient sums the
    products of every row's output-side and input-side values (forward rows: the score gradient and
    the layer's input; chain rows: the chain's value and its gradient); the bias only sees the
    ``f`` forward rows (the chain carries no bias)."""
    out = []
    if isinstance(m, nn.Linear):
        d2 = d_out.reshape(-1, m.out_features)
        if m.weight.requires_grad:
            out.append((m.weight, d2.t().mm(inp.reshape(-1, m.in_features))))
        if m.bias is not None and m.bias.requires_grad:
            out.append((m.bias, d_out[:f].reshape(-1, m.out_features).sum(0)))
        return out
    if m.weight.requires_grad:
        (_, gw, _) = _aten.convolution_backward(d_out, inp, m.weight, None, list(m.stride), list(_conv_padding(m)),
                                                list(m.dilation), False, [0, 0], m.groups, [False, True, False])
        out.append((m.weight, gw))
    if m.bias is not None and m.bias.requires_grad:
        out.append((m.bias, d_out[:f].sum((0, 2, 3))))
    return out


def penalised_loss_backward(net: nn.Module, x_real: torch.Tensor, x_fake: torch.Tensor, x_hat: torch.Tensor,
                            critic_loss, gradient_loss, *, critic_loss_grad=None,
                            gradient_loss_grad=None, check: bool = True) -> tuple[torch.Tensor, ...]:
    r"""A critic loss on the scores plus a loss on the input gradient, and its parameter gradients,
    written out: no autograd graph of ``net`` is built.

    .. math::
        L = \ell\big(f(x_{real}), f(x_{fake})\big) + P\big(\nabla_x f(\hat x)\big)

    The real, fake and interpolated batches are stacked into one: one forward over all rows (the
    interpolates' rows only fix the activation pieces), then one pass down the transposed layers
    that carries both the score gradients :math:`\partial\ell/\partial f` of the real and fake rows
    and the input-gradient chain :math:`W_1^T D_1 \cdots W_L^T \mathbf 1` of the interpolates' rows —
    the same adjoint for both, so one matrix product (or transposed convolution) per layer. The
    chain's backward, from :math:`\partial P/\partial \nabla_x f` up, runs on the interpolates'
    rows only; each weight gradient is then one product over all stacked rows, since both terms
    are sums over rows of (output-side value) x (input-side value). Autograd differentiates only
    the two small outer functions — :math:`\ell` with respect to the scores and :math:`P` with
    respect to the gradient — unless their closed forms are given. The parameter gradients equal
    ``L.backward()``'s through autograd's double backward (``tests/test_fastgrad.py``); they are
    accumulated into ``.grad`` as ``backward()`` would.

    Args:
        net: a Sequential for which :func:`supports` is True, with one output per sample.
        x_real, x_fake: (N, ...) batches as ``net`` takes them.
        x_hat: (M, ...) the points of the gradient term.
        critic_loss: ``(score_real, score_fake) -> scalar``, both (N,); unused (may be ``None``) when
            ``critic_loss_grad`` is given.
        gradient_loss: ``g -> (scalar, aux)`` for the input gradient g shaped like ``x_hat``; unused (may
            be ``None``) when ``gradient_loss_grad`` is given.
        critic_loss_grad: optional closed form, ``(score_real, score_fake) -> (scalar, d_real, d_fake)``,
            used instead of autograd on ``critic_loss`` (on this CPU autograd's engine costs about
            as much as the arithmetic of a small critic step); e.g.
            :func:`wgan.objectives.wasserstein_critic_loss_grads`.
        gradient_loss_grad: optional closed form, ``g -> (scalar, aux, d_g)``, instead of autograd; e.g.
            :class:`wgan.lipschitz.gradient_penalty.NormPenalty`.
        check: verify :func:`supports` first (callers that checked may skip it).

    Returns:
        ``(critic_loss value, score_real, score_fake, gradient_loss value, aux)``, all detached.

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
        >>> x = torch.randn(4, 2)
        >>> def wasserstein(score_real, score_fake):
        ...     return score_fake.mean() - score_real.mean()
        >>> def penalty(g):
        ...     norms = g.norm(dim=1)
        ...     return 10 * ((norms - 1) ** 2).mean(), norms
        >>> loss, s_real, s_fake, term, norms = penalised_loss_backward(net, x, x + 1, x + 0.5, wasserstein, penalty)
        >>> net[0].weight.grad.shape
        torch.Size([8, 2])
    """
    if check and not supports(net):
        raise ValueError(f"fastgrad.penalised_loss_backward does not support this module "
                         f"(check supports() first): {net}")
    layers = _layers(net)
    n, f, r = len(x_real), len(x_real) + len(x_fake), len(x_real) + len(x_fake) + len(x_hat)
    affine = [i for i, m in enumerate(layers) if isinstance(m, _AFFINE)]
    last = len(layers) - 1
    with torch.no_grad():
        # forward over the stacked rows, keeping each layer's input (activations: their record)
        ins: list = []
        h, owned = torch.cat([x_real, x_fake, x_hat]), False
        for i, m in enumerate(layers):
            if isinstance(m, _ACTIVATIONS):
                h, rec = _activation_forward(m, h, owned)
                ins.append(rec)
                owned = False
            else:
                ins.append(h)
                if i == last and isinstance(m, nn.Linear):
                    h = m(h[:f])  # the scores; the interpolates' rows need no output
                elif not isinstance(m, nn.Identity):
                    h = m(h)
                owned = owned if isinstance(m, _SHAPES) else True
        scores = h[:f]
        if scores.numel() != f:
            raise ValueError(f"penalised_loss_backward needs one output per sample, got shape {tuple(h.shape)}")
        tail = tuple(scores.shape[1:])
        scores = scores.reshape(f)
    if critic_loss_grad is not None:
        loss, d_real, d_fake = critic_loss_grad(scores[:n], scores[n:])
        d_scores = torch.cat([d_real, d_fake])
    else:
        with torch.enable_grad():
            s = scores.detach().requires_grad_(True)
            loss = critic_loss(s[:n], s[n:])
            (d_scores,) = torch.autograd.grad(loss, s)

    with torch.no_grad():
        # down: score gradients (forward rows) and the chain seeded with ones (interpolates' rows)
        d = torch.cat([d_scores.reshape((f,) + tail), d_scores.new_ones((r - f,) + tail)])
        d_out = {}  # per affine layer: the stacked value entering its adjoint
        for i in range(last, -1, -1):
            m, rec = layers[i], ins[i]
            if i < affine[0]:  # below the first affine layer only the chain goes on
                rec = (rec[0][f:], rec[1]) if isinstance(m, _ACTIVATIONS) else rec[f:]
            if isinstance(m, _AFFINE):
                d_out[i] = d
                if i == affine[0]:
                    d, rec = d[f:], rec[f:]
                d = _adjoint(m, d, tuple(rec.shape))
            elif isinstance(m, _ACTIVATIONS):
                d = _activation_backward(m, d, rec)
            elif isinstance(m, (nn.Flatten, nn.Unflatten)):
                d = d.reshape(rec.shape)
        g = d.reshape(x_hat.shape)
    if gradient_loss_grad is not None:
        term, aux, d_g = gradient_loss_grad(g)
    else:
        with torch.enable_grad():
            g_leaf = g.detach().requires_grad_(True)
            term, aux = gradient_loss(g_leaf)
            (d_g,) = torch.autograd.grad(term, g_leaf)

    with torch.no_grad():
        # up the chain on the interpolates' rows: each affine layer's input-side gradient replaces
        # those rows of its input (whose only other use, the activation pieces below, is done)
        d = d_g
        grads: list = []
        for i in range(affine[-1] + 1):
            m, rec = layers[i], ins[i]
            if isinstance(m, _AFFINE):
                rec[f:].copy_(d)
                grads += _weight_gradients(m, d_out[i], rec, f)
                if i < affine[-1]:
                    d = _affine_no_bias(m, d)
            elif isinstance(m, _ACTIVATIONS):
                t, is_result = rec
                d = _activation_backward(m, d, (t[f:], is_result))
            elif isinstance(m, (nn.Flatten, nn.Unflatten)):
                d = m(d)
        for p, gr in grads:
            if p.grad is None:
                p.grad = gr
            else:
                p.grad.add_(gr)
    return loss.detach(), scores[:n], scores[n:], term.detach(), aux.detach() if torch.is_tensor(aux) else aux
