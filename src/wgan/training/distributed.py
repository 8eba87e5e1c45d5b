"""Process group plumbing: one model trained by several processes (``torchrun``), no DDP.

The single process is :class:`Comm`, world size 1, whose collectives are the identity; a
``torchrun`` launch gets :class:`TorchComm` on ``torch.distributed``. The training loop calls the
same methods either way, so it has no ``if distributed`` branches.

As in StyleGAN3 (``training/training_loop.py``), parameters and buffers are broadcast from rank 0
once, and after every backward the gradients are averaged by hand as one flat tensor.
DistributedDataParallel is not used: it does not support ``torch.autograd.grad``, which the
gradient penalty needs (its double backward), and its hooks would fire inside the penalty's own
backward.

Averaging the per-rank gradients of per-rank means is the gradient of the mean over the global
batch (equal per-rank batches), so ``W`` processes with batch ``B`` each train exactly like one
process with batch ``W x B`` -- the penalty included, since it too is a mean of per-sample terms.

Only this module reads the environment (torchrun's ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``LOCAL_WORLD_SIZE``;
``torch.distributed`` itself reads ``MASTER_ADDR`` and ``MASTER_PORT``).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable
from datetime import timedelta
from itertools import chain
from typing import Any, TypeVar

import torch

T = TypeVar("T")


class Comm:
    """World size 1: every collective is the identity.

    Every method is a collective in :class:`TorchComm`: every rank must call it, in the same order.

    Example:
        >>> comm = get_comm()  # world size 1 unless launched by torchrun
        >>> comm.all_reduce_mean(torch.tensor([1.0, 2.0]))
        tensor([1., 2.])
    """

    rank = 0
    world_size = 1
    local_rank = 0
    local_world_size = 1  # processes of this run on this machine (they share its cores)

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that writes files and prints."""
        return self.rank == 0

    def resolve_device(self, device: torch.device) -> torch.device:
        """The device this rank trains on: ``cuda`` without an index means this rank's GPU."""
        return device

    def all_reduce_grads(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Average the gradients of ``params`` across ranks, in place, as one flat tensor.

        A parameter without a gradient on this rank contributes zeros to the sum and keeps ``None``
        (the same graph on every rank gives every rank the same pattern).
        """

    def all_reduce_mean(self, t: torch.Tensor) -> torch.Tensor:
        """The mean of a floating tensor across ranks (a new tensor on other world sizes)."""
        return t

    def any_rank(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is True on any rank (e.g. a signal received by one)."""
        return bool(flag)

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers (spectral-norm vectors included) to every rank."""

    def broadcast_object(self, obj: T) -> T:
        """Rank 0's ``obj`` (picklable), returned on every rank."""
        return obj

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, as a list indexed by rank."""
        return [obj]

    def on_main(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` on rank 0 only and return its result on every rank.

        An exception raised by ``fn`` on rank 0 is raised on every rank, so no rank is left waiting.
        """
        return fn()

    def barrier(self) -> None:
        """Wait for every rank."""

    def check_identical(self, module: torch.nn.Module, name: str, atol: float = 0.0) -> None:
        """Raise RuntimeError on every rank if ``module``'s parameters or buffers differ across ranks.

        Args:
            module: the module to compare with rank 0's copy.
            name: its name in the message (``"critic"``).
            atol: the largest absolute difference accepted; 0 = bit-identical.
        """

    def close(self, wait: bool = True) -> None:
        """Leave the process group (nothing to do for world size 1).

        Args:
            wait: first wait for every rank (the normal end: a rank tearing its connections down
                while another still uses them aborts it); ``False`` after an error, when another
                rank may never arrive.
        """


class TorchComm(Comm):
    """A ``torch.distributed`` process group: gloo on the CPU, NCCL (with gloo for CPU tensors) on CUDA.

    Args:
        rank: this process's rank, 0 .. world_size - 1.
        world_size: the number of processes.
        local_rank: the rank on this machine; picks the GPU ``cuda:local_rank``.
        device: ``"cpu"``, ``"cuda"`` (this rank's GPU) or ``"cuda:N"``.
        init_method: how ranks find each other; ``"env://"`` reads ``MASTER_ADDR`` and
            ``MASTER_PORT`` (set by torchrun), ``"tcp://127.0.0.1:PORT"`` for tests.
        timeout_s: a collective waiting longer than this fails instead of hanging.

    Example (two processes on the CPU, each running)::

        comm = TorchComm(rank, 2, init_method="tcp://127.0.0.1:29500")
        comm.broadcast_module(critic)
        loss.backward(); comm.all_reduce_grads(critic.parameters()); critic_opt.step()
    """

    def __init__(self, rank: int, world_size: int, local_rank: int = 0, device: str | torch.device = "cpu",
                 init_method: str = "env://", timeout_s: float = 1800.0, local_world_size: int = 1):
        import torch.distributed as dist

        if not dist.is_available():
            raise RuntimeError("this PyTorch build has no torch.distributed; multi-process training needs it")
        if not 0 <= rank < world_size:
            raise RuntimeError(f"rank must be in 0..{world_size - 1}, got {rank}")
        self.rank, self.world_size, self.local_rank = int(rank), int(world_size), int(local_rank)
        self.local_world_size = max(1, int(local_world_size))
        dev = torch.device(device)
        kwargs: dict[str, Any] = {}
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise RuntimeError(f"device {str(device)!r} requested but CUDA is not available; use --device cpu")
            if dev.index is None:
                dev = torch.device("cuda", self.local_rank)
            if dev.index >= torch.cuda.device_count():
                raise RuntimeError(f"LOCAL_RANK {self.local_rank} needs CUDA device {dev.index}, but "
                                   f"{torch.cuda.device_count()} are visible; use --nproc_per_node <= "
                                   f"{torch.cuda.device_count()} on this machine")
            torch.cuda.set_device(dev)
            backend = "cpu:gloo,cuda:nccl"  # NCCL for CUDA tensors, gloo for small CPU ones (flags, objects)
            if "device_id" in inspect.signature(dist.init_process_group).parameters:  # torch >= 2.3
                kwargs["device_id"] = dev  # binds the rank to its GPU (barriers, eager NCCL set-up)
        else:
            backend = "gloo"
        self.device = dev
        self.backend = backend
        self._dist = dist
        dist.init_process_group(backend, init_method=init_method, rank=self.rank, world_size=self.world_size,
                                timeout=timedelta(seconds=timeout_s), **kwargs)

    def resolve_device(self, device: torch.device) -> torch.device:
        if device.type == "cuda" and device.index is None:
            return torch.device("cuda", self.local_rank)
        return device

    @torch.no_grad()
    def all_reduce_grads(self, params: Iterable[torch.nn.Parameter]) -> None:
        params = [p for p in params if p.requires_grad]
        for group in _groups(params).values():  # one group (one flat tensor) unless dtypes are mixed
            flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in group])
            self._dist.all_reduce(flat)  # sum; gloo has no AVG
            flat.div_(self.world_size)
            offset = 0
            for p in group:
                n = p.numel()
                if p.grad is not None:
                    p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
                offset += n

    @torch.no_grad()
    def all_reduce_mean(self, t: torch.Tensor) -> torch.Tensor:
        out = t.detach().clone()
        self._dist.all_reduce(out)
        return out.div_(self.world_size)

    def any_rank(self, flag: bool) -> bool:
        t = torch.tensor([1 if flag else 0], dtype=torch.int32)  # a CPU tensor: gloo, no GPU sync
        self._dist.all_reduce(t, op=self._dist.ReduceOp.MAX)
        return bool(t.item())

    @torch.no_grad()
    def broadcast_module(self, module: torch.nn.Module) -> None:
        tensors = list(chain(module.parameters(), module.buffers()))
        for group in _groups(tensors).values():
            flat = torch.cat([t.detach().reshape(-1) for t in group])
            self._dist.broadcast(flat, src=0)
            offset = 0
            for t in group:
                n = t.numel()
                t.copy_(flat[offset:offset + n].view_as(t))
                offset += n

    def broadcast_object(self, obj: T) -> T:
        box = [obj if self.is_main else None]
        self._dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_gather_object(self, obj: Any) -> list[Any]:
        out: list[Any] = [None] * self.world_size
        self._dist.all_gather_object(out, obj)
        return out

    def on_main(self, fn: Callable[[], T]) -> T:
        payload: tuple[bool, Any] | None = None
        if self.is_main:
            try:
                payload = (True, fn())
            except Exception as e:  # re-raised on every rank below
                payload = (False, e)
        ok, value = self.broadcast_object(payload)
        if not ok:
            raise value
        return value

    def barrier(self) -> None:
        self._dist.barrier()

    @torch.no_grad()
    def check_identical(self, module: torch.nn.Module, name: str, atol: float = 0.0) -> None:
        named = list(chain(module.named_parameters(), module.named_buffers()))
        if not named:
            return
        diffs = []
        for _, t in named:
            ref = t.detach().clone()
            self._dist.broadcast(ref, src=0)
            if t.numel() == 0:
                diffs.append(torch.zeros((), dtype=torch.float64, device=t.device))
                continue
            a, b = t.detach().double(), ref.double()
            d = torch.where(torch.isnan(a) & torch.isnan(b), torch.zeros_like(a), (a - b).abs())
            diffs.append(torch.nan_to_num(d, nan=float("inf")).max())
        vec = torch.stack(diffs)
        self._dist.all_reduce(vec, op=self._dist.ReduceOp.MAX)
        values = vec.tolist()  # one host sync, at checkpoint time only
        worst = sorted(((v, n) for v, (n, _) in zip(values, named) if v > atol), reverse=True)
        if worst:
            where = ", ".join(f"{n!r} ({v:.3g})" for v, n in worst[:3])
            raise RuntimeError(
                f"the {name} differs across the {self.world_size} ranks: max |difference| {worst[0][0]:.3g} "
                f"(accepted: {atol:g}) in {len(worst)} of {len(named)} tensors, largest in {where}; the ranks "
                f"have diverged (a gradient not all-reduced, or rank-0-only code running the {name} in "
                "training mode, which advances spectral-norm vectors)")

    def close(self, wait: bool = True) -> None:
        global _ACTIVE
        if self._dist.is_initialized():
            if wait:
                self._dist.barrier()
            self._dist.destroy_process_group()
        if _ACTIVE is self:
            _ACTIVE = None


def _groups(tensors: list[torch.Tensor]) -> dict[tuple[torch.dtype, torch.device], list[torch.Tensor]]:
    out: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
    for t in tensors:
        out.setdefault((t.dtype, t.device), []).append(t)
    return out


_ACTIVE: TorchComm | None = None


def _env_int(name: str, default: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        if default is None:
            raise RuntimeError(f"environment variable {name} is not set; launch with torchrun")
        return default
    try:
        return int(raw)
    except ValueError:
        raise RuntimeError(f"environment variable {name} must be an integer, got {raw!r}") from None


def get_comm(device: str = "auto") -> Comm:
    """The communicator for this process: world size 1 unless launched by torchrun.

    Under torchrun (``RANK`` and ``WORLD_SIZE`` set) the process group is created once and reused:
    gloo for ``device`` ``cpu``, NCCL for CUDA on ``cuda:LOCAL_RANK``; ``auto`` is CUDA when
    available.

    Args:
        device: the training device as in the config: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    """
    global _ACTIVE
    if _ACTIVE is not None:
        return _ACTIVE
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return Comm()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    _ACTIVE = TorchComm(_env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK", 0), device=device,
                        local_world_size=_env_int("LOCAL_WORLD_SIZE", 1))
    return _ACTIVE


def shutdown(wait: bool = True) -> None:
    """Destroy the process group that :func:`get_comm` created, if any (at program exit).

    Args:
        wait: wait for every rank first; ``False`` when leaving on an error.
    """
    if _ACTIVE is not None:
        _ACTIVE.close(wait=wait)
