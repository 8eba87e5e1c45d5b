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


@torch.no_grad()
def _pieces(layers: list[nn.Module], x: torch.Tensor) -> tuple[list, tuple[int, ...]]:
    """Forward without a graph, recording per layer what the backward chain needs.

    Activation: its input :math:`a` (its slope there is 1 where a > 0, else the negative slope);
    any other layer: its input's shape. Returns the records and the output shape. Layers after the
    last activation are affine with constant slopes: only shapes are tracked there (a final Linear
    is not computed).
    """
    tape: list = []
    h = x
    last_act = max((i for i, m in enumerate(layers) if isinstance(m, _ACTIVATIONS)), default=-1)
    for i, m in enumerate(layers):
        if isinstance(m, _ACTIVATIONS):
            tape.append(h)
            slope = _slope(m)  # never in place: h may be the caller's x
            h = F.relu(h) if slope == 0.0 else F.leaky_relu(h, slope)
        else:
            tape.append(tuple(h.shape))
            if i > last_act and isinstance(m, nn.Linear):
                h = h.new_empty(h.shape[:-1] + (m.out_features,))  # only its shape is needed
            else:
                h = m(h)
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
            # g * sigma'(a) as one fused op: the activation's own backward kernel, whose derivative
            # with respect to g is itself (torch.where and a bool mask are several times slower)
            slope = _slope(m)
            g = (torch.ops.aten.threshold_backward(g, rec, 0.0) if slope == 0.0
                 else torch.ops.aten.leaky_relu_backward(g, rec, slope, False))
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
