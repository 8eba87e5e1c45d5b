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
autograd's double backward; what is saved is its overhead.

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
# the network at all): one forward over real and fake, the pieces at the interpolates, the chain,
# and the backward of both, each a handful of matrix products or convolutions.

_aten = torch.ops.aten


def _accumulate(grads: dict, p: torch.Tensor, g: torch.Tensor) -> None:
    if p in grads:
        grads[p].add_(g)
    else:
        grads[p] = g


def _conv_backward(d: torch.Tensor, inp: torch.Tensor, conv: nn.Conv2d, need_input: bool,
                   transposed: bool = False, output_padding=(0, 0)):
    """aten.convolution_backward for ``conv`` (transposed: its adjoint, the chain's op)."""
    bias = conv.bias is not None and not transposed
    return _aten.convolution_backward(
        d, inp, conv.weight, [conv.out_channels] if bias else None, list(conv.stride),
        list(_conv_padding(conv)), list(conv.dilation), transposed, list(output_padding), conv.groups,
        [need_input, conv.weight.requires_grad, bias and conv.bias.requires_grad])


@torch.no_grad()
def _chain_saving(layers: list[nn.Module], tape: list, out_shape: tuple[int, ...], dtype, device):
    """The chain of :func:`_chain` without a graph, keeping what its backward needs per layer.

    Returns ``g`` (the input gradient) and, per layer from the output side, ``(i, value entering the
    layer's adjoint, extra)`` where extra is the conv's output_padding; a seed Linear keeps ``None``.
    """
    g = None
    saved = []
    for i in range(len(layers) - 1, -1, -1):
        m, rec = layers[i], tape[i]
        if g is None and isinstance(m, nn.Linear):
            w = m.weight
            g = (w if w.shape[0] == 1 else w.sum(0, keepdim=True)).expand(rec)
            saved.append((i, None, None))
            continue
        if g is None:
            g = torch.ones(out_shape, dtype=dtype, device=device)
        g_in = g
        extra = None
        if isinstance(m, nn.Linear):
            g = g.matmul(m.weight)
        elif isinstance(m, nn.Conv2d):
            pad = _conv_padding(m)
            extra = tuple(rec[-2 + k] - ((g.shape[-2 + k] - 1) * m.stride[k] - 2 * pad[k]
                                         + m.dilation[k] * (m.kernel_size[k] - 1) + 1) for k in range(2))
            g = F.conv_transpose2d(g, m.weight, None, m.stride, pad, extra, m.groups, m.dilation)
        elif isinstance(m, _ACTIVATIONS):
            g = _activation_backward(m, g, rec)
        elif isinstance(m, (nn.Flatten, nn.Unflatten)):
            g = g.reshape(rec)
        saved.append((i, g_in, extra))
    return g, saved


def penalised_loss_backward(net: nn.Module, x_real: torch.Tensor, x_fake: torch.Tensor, x_hat: torch.Tensor,
                            critic_loss, gradient_loss, *, critic_loss_grad=None,
                            gradient_loss_grad=None, check: bool = True) -> tuple[torch.Tensor, ...]:
    r"""A critic loss on the scores plus a loss on the input gradient, and its parameter gradients,
    written out: no autograd graph of ``net`` is built.

    .. math::
        L = \ell\big(f(x_{real}), f(x_{fake})\big) + P\big(\nabla_x f(\hat x)\big)

    The scores come from one forward over the real and fake batches together; :math:`\nabla_x
    f(\hat x)` is :func:`input_gradient`'s product. Autograd differentiates only the two small
    outer functions — :math:`\ell` with respect to the scores and :math:`P` with respect to the
    gradient — and the rest is back-propagated here by hand: per layer one matrix product (or
    convolution) for the weight and one for the layer's input, for the forward and for the chain.
    The parameter gradients equal ``L.backward()``'s through autograd's double backward
    (``tests/test_fastgrad.py``); they are accumulated into ``.grad`` as ``backward()`` would.

    Args:
        net: a Sequential for which :func:`supports` is True, with one output per sample.
        x_real, x_fake: (N, ...) batches as ``net`` takes them.
        x_hat: (M, ...) the points of the gradient term.
        critic_loss: ``(score_real, score_fake) -> scalar``, both (N,).
        gradient_loss: ``g -> (scalar, aux)`` for the input gradient g shaped like ``x_hat``.
        critic_loss_grad: optional closed form, ``(score_real, score_fake) -> (scalar, d_real, d_fake)``,
            used instead of autograd on ``critic_loss`` (on this CPU autograd's engine costs about
            as much as the arithmetic of a small critic step).
        gradient_loss_grad: optional closed form, ``g -> (scalar, aux, d_g)``, instead of autograd.
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
    n = len(x_real)
    with torch.no_grad():
        x = torch.cat([x_real, x_fake])
        inputs = []  # per layer: its input (activations: the record of _activation_forward)
        h, owned = x, False
        for m in layers:
            if isinstance(m, _ACTIVATIONS):
                h, rec = _activation_forward(m, h, owned)
                inputs.append(rec)
                owned = False
            else:
                inputs.append(h)
                h = h if isinstance(m, nn.Identity) else m(h)
                owned = owned if isinstance(m, _SHAPES) else True
        if h.numel() != len(x):
            raise ValueError(f"penalised_loss_backward needs one output per sample, got shape {tuple(h.shape)}")
        out_shape = h.shape
        scores = h.reshape(len(x))
    if critic_loss_grad is not None:
        loss, d_real, d_fake = critic_loss_grad(scores[:n], scores[n:])
        d_scores = torch.cat([d_real, d_fake])
    else:
        with torch.enable_grad():
            s = scores.detach().requires_grad_(True)
            loss = critic_loss(s[:n], s[n:])
            (d_scores,) = torch.autograd.grad(loss, s)
    tape, g_shape = _pieces(layers, x_hat.detach())
    g, chain = _chain_saving(layers, tape, g_shape, x_hat.dtype, x_hat.device)
    if gradient_loss_grad is not None:
        term, aux, d_g = gradient_loss_grad(g)
    else:
        with torch.enable_grad():
            g_leaf = g.detach().requires_grad_(True)
            term, aux = gradient_loss(g_leaf)
            (d_g,) = torch.autograd.grad(term, g_leaf)

    with torch.no_grad():
        grads: dict = {}
        first = min(i for i, m in enumerate(layers) if isinstance(m, _AFFINE))  # no input gradient below it
        # the forward's backward, from the scores down
        d = d_scores.reshape(out_shape)
        for i in range(len(layers) - 1, first - 1, -1):
            m, inp = layers[i], inputs[i]
            if isinstance(m, nn.Linear):
                d2 = d.reshape(-1, m.out_features)
                if m.weight.requires_grad:
                    _accumulate(grads, m.weight, d2.t().mm(inp.reshape(-1, m.in_features)))
                if m.bias is not None and m.bias.requires_grad:
                    _accumulate(grads, m.bias, d2.sum(0))
                if i > first:  # one output: an outer product, as a broadcast (BLAS is slow at K = 1)
                    d = d * m.weight if m.out_features == 1 else d.matmul(m.weight)
            elif isinstance(m, nn.Conv2d):
                gi, gw, gb = _conv_backward(d, inp, m, need_input=i > first)
                if gw is not None:
                    _accumulate(grads, m.weight, gw)
                if gb is not None:
                    _accumulate(grads, m.bias, gb)
                d = gi
            elif isinstance(m, _ACTIVATIONS):
                d = _activation_backward(m, d, inp)
            elif isinstance(m, (nn.Flatten, nn.Unflatten)):
                d = d.reshape(inp.shape)
        # the chain's backward, from the input gradient up to the seed
        d = d_g
        for i, g_in, extra in reversed(chain):
            m = layers[i]
            if g_in is None:  # the seed Linear: g = colsum(W) broadcast over the batch
                if m.weight.requires_grad:
                    dw = d.reshape(-1, m.in_features).sum(0, keepdim=True)
                    _accumulate(grads, m.weight, dw.expand_as(m.weight).clone() if m.out_features > 1 else dw)
                break
            if isinstance(m, nn.Linear):
                if m.weight.requires_grad:
                    a, b = g_in.reshape(-1, m.out_features).t(), d.reshape(-1, m.in_features)
                    if m.weight in grads:  # accumulate in the product itself: no temporary, no extra pass
                        grads[m.weight].addmm_(a, b)
                    else:
                        grads[m.weight] = a.mm(b)
                d = d.matmul(m.weight.t())
            elif isinstance(m, nn.Conv2d):
                gi, gw, _ = _conv_backward(d, g_in, m, need_input=True, transposed=True, output_padding=extra)
                if gw is not None:
                    _accumulate(grads, m.weight, gw)
                d = gi
            elif isinstance(m, _ACTIVATIONS):
                d = _activation_backward(m, d, tape[i])
            elif isinstance(m, (nn.Flatten, nn.Unflatten)):
                d = d.reshape(g_in.shape)
        for p, gr in grads.items():
            if p.grad is None:
                p.grad = gr
            else:
                p.grad.add_(gr)
    return loss.detach(), scores[:n], scores[n:], term.detach(), aux.detach() if torch.is_tensor(aux) else aux
