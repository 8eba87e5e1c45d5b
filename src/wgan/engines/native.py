r"""The compiled CPU steps of plain MLPs (``csrc/mlp.cpp``), built on first use.

A small critic's WGAN-GP step on a CPU is bound by per-operation overhead more than by arithmetic:
the PyTorch path (:func:`wgan.engines.fastgrad.penalised_loss_backward`) already needs no autograd
graph, but still dispatches some fifty operations per critic step, each a separate pass over memory.
``csrc/mlp.cpp`` runs the same algorithm in one call: the matrix products are ATen's, the
element-wise work (bias and activation, the activation slopes, the penalty) is fused into single
passes. It takes an ``nn.Sequential`` of ``Linear``, then ``ReLU`` / ``LeakyReLU`` and ``Linear`` in
turn (:func:`mlp_layers`; a critic's last layer has one output), on CPU float32 / float64 tensors,
with the closed forms of the Wasserstein objective
(:func:`wgan.objectives.wasserstein_critic_loss_grads`, :func:`wgan.objectives.wasserstein_generator_loss`)
and the norm penalty (:class:`wgan.lipschitz.gradient_penalty.NormPenalty`) written into it. It gives
the same losses and gradients as the PyTorch path (``tests/test_native.py``). This module is the
mechanics only: which runs use it is :class:`wgan.engines.compiled.CompiledEngine`'s decision.

The calls, smallest to largest: a forward without a graph (:func:`forward`), the critic step on given
samples (:func:`wgan_gp_critic`) or from the generator's noise (:func:`wgan_gp_critic_step`), the
generator step (:func:`wgan_generator_step`), and a whole generator step of training — n_critic critic
steps, the generator step and both fused Adam updates (:func:`wgan_gp_round`, bit-identical to the
steps one by one). Each cuts its batch into one block of rows per thread (OpenMP, one parallel
region per step, single-threaded products inside; see the top of ``csrc/mlp.cpp``).

The extension is compiled with ``torch.utils.cpp_extension`` (ninja and a C++ compiler with OpenMP;
``make`` builds it once at install) into ``$WGAN_NATIVE_DIR/<key>`` (default ``~/.cache/wgan/native``;
not ``$WGAN_CACHE``: the binary depends on nothing a run does), the key a hash of the source, the
build flags, the torch version and the CPU's flags (it is built for this CPU). When it cannot be
built, a warning says why once and the PyTorch path is used. ``WGAN_NATIVE=0`` turns it off.

Usage::

    python -m wgan.engines   # build it now (what ``make`` runs); prints where, or why not
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from wgan.engines.fastgrad import _has_hooks, _layers
from wgan.lipschitz.gradient_penalty import NormPenalty

SOURCE = Path(__file__).with_name("csrc") / "mlp.cpp"
# OpenMP for the row blocks; the process's OpenMP runtime is torch's (the same soname, already loaded)
CFLAGS, LDFLAGS = ["-O3", "-march=native", "-fopenmp"], ["-fopenmp"]
_NO_BIAS = torch.empty(0)  # what the compiled code takes for a layer without a bias
_state: dict = {}  # "module" once loaded (None when it could not be built), "error" (why)


def enabled() -> bool:
    return os.environ.get("WGAN_NATIVE", "1") != "0"


def _cpu_flags() -> bytes:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line.encode()
    except OSError:
        pass
    return b""


def build_dir() -> Path:
    """``$WGAN_NATIVE_DIR`` (default ``~/.cache/wgan/native``) / a key of the source, the build flags,
    torch and the CPU."""
    root = Path(os.environ.get("WGAN_NATIVE_DIR") or Path.home() / ".cache" / "wgan" / "native")
    flags = " ".join(CFLAGS + LDFLAGS).encode()
    key = hashlib.sha256(SOURCE.read_bytes() + flags + torch.__version__.encode() + _cpu_flags()).hexdigest()[:16]
    return root / key


def load():
    """The compiled module, or ``None`` (turned off, or it could not be built: see :func:`error`)."""
    if not enabled():
        return None
    if "module" not in _state:
        _state["module"] = None
        try:
            _state["module"] = _build()
        except Exception as e:  # a missing compiler or ninja, a failed build: the PyTorch path works
            _state["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
            warnings.warn(f"wgan: the compiled MLP step could not be built ({_state['error']}); "
                          f"using the PyTorch path (WGAN_NATIVE=0 silences this)", RuntimeWarning, stacklevel=2)
    return _state["module"]


def error() -> str | None:
    """Why :func:`load` gave ``None`` after trying, if it did."""
    return _state.get("error")


def _build():
    from torch.utils.cpp_extension import load as load_extension

    directory = build_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = os.environ.get("PATH", "")
    bin_dir = os.path.dirname(sys.executable)  # the venv's ninja when python was run by its full path
    if bin_dir not in path.split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + path
    try:  # copies of the flags: load_extension appends to the lists it is given (build_dir's key reads them)
        return load_extension("wgan_native", [str(SOURCE)], build_directory=str(directory),
                              extra_cflags=list(CFLAGS), extra_ldflags=list(LDFLAGS), verbose=False)
    finally:
        os.environ["PATH"] = path


def mlp_layers(net: nn.Module) -> tuple[list, list, list[float]] | None:
    """``(weights, biases, slopes)`` when ``net`` is a Sequential of Linear, then (Leaky)ReLU and Linear
    in turn (plain parameters, no hooks), ending with a Linear; ``None`` otherwise."""
    if not isinstance(net, nn.Sequential):
        return None
    layers = _layers(net)
    if len(layers) < 3 or len(layers) % 2 == 0:
        return None
    weights, biases, slopes = [], [], []
    for i, m in enumerate(layers):
        if i % 2 == 0:
            # a parametrised Linear (spectral norm, weight norm) has a class of its own; the older
            # hook-based ones have hooks and no "weight" parameter
            if type(m) is not nn.Linear or _has_hooks(m) or m._parameters.get("weight") is None:
                return None
            weights.append(m._parameters["weight"])
            bias = m._parameters.get("bias")
            biases.append(bias if bias is not None else _NO_BIAS)
        else:
            if type(m) not in (nn.ReLU, nn.LeakyReLU) or _has_hooks(m):
                return None
            slope = float(m.negative_slope) if isinstance(m, nn.LeakyReLU) else 0.0
            if slope < 0:
                return None
            slopes.append(slope)
    return weights, biases, slopes


def fits(spec) -> bool:
    """True when a spec's parameters are what the compiled code takes: on the CPU, float32 or float64
    (one dtype), contiguous. Its inputs must then be CPU tensors of the same dtype."""
    params = parameters(spec)
    dtype = params[0].dtype
    return dtype in (torch.float32, torch.float64) and all(
        p.device.type == "cpu" and p.dtype == dtype and p.is_contiguous() for p in params)


def parameters(spec) -> list[torch.Tensor]:
    """A spec's parameters in the order of the compiled gradients: the weights, then the biases there are."""
    return [p for p in spec[0] + spec[1] if p is not _NO_BIAS]


def _assign_grads(params: list, grads) -> None:
    """Accumulate ``grads`` into ``.grad`` as ``backward()`` would (layers without a bias skipped)."""
    for p, g in zip(params, grads):
        if p is _NO_BIAS or not p.requires_grad:
            continue
        if p.grad is None:
            p.grad = g
        else:
            p.grad.add_(g)


# Every call below needs :func:`load` to have given the module and its specs to :func:`fits`; rows are
# (N, d) CPU tensors of the specs' dtype.

def forward(spec, x: torch.Tensor) -> torch.Tensor:
    """The MLP ``spec`` on rows ``x`` (N, d), without a graph: (N, d_out)."""
    return _state["module"].mlp_forward(x.contiguous(), *spec)


def wgan_gp_critic(c_spec, x_real: torch.Tensor, x_fake: torch.Tensor, x_hat: torch.Tensor, penalty: NormPenalty):
    """:func:`wgan.engines.fastgrad.penalised_loss_backward` for an MLP critic with the Wasserstein
    objective and ``penalty``, compiled: the gradients accumulated into ``.grad``.

    Rows: x_real (N, d), x_fake (N_fake, d), x_hat (M, d). Returns ``(objective, score_real,
    score_fake, penalty term, norms)``.
    """
    weights, biases, slopes = c_spec
    with torch.no_grad():
        out = _state["module"].wgan_gp_critic(x_real.contiguous(), x_fake.contiguous(), x_hat.contiguous(), weights,
                                              biases, slopes, penalty.gain, penalty.one_sided, penalty.eps)
    loss, scores, term, norms = out[:4]
    _assign_grads(weights + biases, out[4:])
    n = len(x_real)
    return loss, scores[:n], scores[n:], term, norms


def wgan_gp_critic_step(g_spec, c_spec, x_real: torch.Tensor, z: torch.Tensor, rng: torch.Generator | None,
                        penalty: NormPenalty):
    """The whole critic step from the generator's noise, compiled: ``x_fake = G(z)`` without a graph,
    ``x_hat`` = :func:`~wgan.lipschitz.gradient_penalty.interpolate` ``(x_real, x_fake, rng)`` (the same
    draw from ``rng``), then :func:`wgan_gp_critic`'s loss and gradients (accumulated into the critic's
    ``.grad``). Rows: x_real (N, d), z (N, z_dim).

    Returns ``(objective, score_real, score_fake, penalty term, norms)``.
    """
    alpha = torch.rand((len(x_real), 1), generator=rng, dtype=x_real.dtype)  # interpolate's draw
    with torch.no_grad():
        out = _state["module"].wgan_gp_critic_step(x_real.contiguous(), z, alpha, *g_spec, *c_spec, penalty.gain,
                                                   penalty.one_sided, penalty.eps)
    loss, scores, term, norms = out[:4]
    _assign_grads(c_spec[0] + c_spec[1], out[4:])
    n = len(x_real)
    return loss, scores[:n], scores[n:], term, norms


def wgan_generator_step(g_spec, c_spec, z: torch.Tensor) -> torch.Tensor:
    """The generator's Wasserstein loss :math:`-E[f(G(z))]` and its generator gradients (accumulated into
    ``.grad``; the critic's are not computed), compiled. Rows: z (N, z_dim)."""
    with torch.no_grad():
        out = _state["module"].wgan_generator(z, *g_spec, *c_spec)
    _assign_grads(g_spec[0] + g_spec[1], out[1:])
    return out[0]


def wgan_gp_round(g_spec, c_spec, x_reals: list[torch.Tensor], zs: list[torch.Tensor], alphas: list[torch.Tensor],
                  z: torch.Tensor, penalty: NormPenalty, critic_adam, generator_adam):
    """A whole generator step, compiled: for each k the critic step :func:`wgan_gp_critic_step` does from
    ``(x_reals[k], zs[k])`` with the interpolation weights ``alphas[k]`` (N values), and the critic's
    Adam update; then :func:`wgan_generator_step` on ``z`` and the generator's. ``*_adam`` are
    :func:`wgan.engines.optim.fused_adam_args` for :func:`parameters` of each spec. The parameters are
    updated in place, and ``.grad`` holds the last gradients, as the steps one by one leave it.

    Returns ``(critic statistics (K, 5): loss, gap, penalty term, mean norm, loss + term; generator loss)``.
    """
    with torch.no_grad():
        out = _state["module"].wgan_gp_round(
            [x.flatten(1) for x in x_reals], zs, [a.reshape(len(a), 1) for a in alphas], z, *g_spec, *c_spec,
            penalty.gain, penalty.one_sided, penalty.eps, [*critic_adam[0], *critic_adam[1], *critic_adam[2]],
            critic_adam[3], [*generator_adam[0], *generator_adam[1], *generator_adam[2]], generator_adam[3])
    n_critic = 2 * len(c_spec[0])
    for spec, grads in ((c_spec, out[2:2 + n_critic]), (g_spec, out[2 + n_critic:])):
        for p in parameters(spec):
            p.grad = None
        _assign_grads(spec[0] + spec[1], grads)
    return out[0], out[1]


def main() -> int:
    if not enabled():
        print("wgan native: turned off (WGAN_NATIVE=0)")
        return 0
    if load() is None:
        print(f"wgan native: not built ({error()}); the PyTorch path will be used")
        return 0  # not an error: the library works without it
    print(f"wgan native: built in {build_dir()}")
    return 0
