"""Generator export: a run's generator as one ``.safetensors`` file that rebuilds itself.

The file holds the generator's weights (the EMA copy when the run keeps one) and, in the
safetensors metadata, everything needed to rebuild the network without the run directory or the
data: the resolved configuration, the sample shape and the architecture. A ``.sha256`` file beside
it (``sha256sum`` format) lets anyone check the bytes; :func:`load_generator` checks it when present.

safetensors holds tensors and strings only, so loading it runs no code, like the checkpoints'
``weights_only`` loading.

Example:
    >>> result = export_generator("runs/00001-wgan-gp-ring8")          # doctest: +SKIP
    >>> g = load_generator(result.path)                                 # doctest: +SKIP
    >>> x = g.sample(64, seed=0)                                        # (64, 2)   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from wgan.config import TrainConfig, from_dict
from wgan.data import load_data
from wgan.errors import CheckpointError
from wgan.nets import build_nets, resolve_arch
from wgan.training import checkpoint as ckpt

EXPORT_FORMAT = "wgan-generator"
EXPORT_VERSION = 1


@dataclass
class ExportResult:
    """What :func:`export_generator` wrote."""

    path: Path  # the .safetensors file
    sha256: str  # hex digest of its bytes
    sha256_path: Path  # the sidecar file, "DIGEST  NAME" as sha256sum writes it
    weights: str  # "ema" or "generator"
    step: int  # generator steps of the checkpoint exported


@dataclass
class LoadedGenerator:
    """A generator rebuilt from a run directory, a checkpoint or an exported file, in eval mode.

    Attributes:
        generator: the network, ``z (N, z_dim) -> x (N, *data_shape)``.
        config: the run's configuration.
        data_shape: one sample's shape, e.g. ``(2,)`` or ``(1, 28, 28)``.
        weights: ``"ema"`` or ``"generator"``.
        step: generator steps of the weights.
        source: where it came from.
    """

    generator: nn.Module
    config: TrainConfig
    data_shape: tuple[int, ...]
    weights: str
    step: int
    source: Path

    @property
    def device(self) -> torch.device:
        """Where the generator's weights are."""
        return next(self.generator.parameters()).device

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, batch_size: int = 1024) -> torch.Tensor:
        """``n`` samples from latents drawn with their own seeded generator (global RNG untouched).

        Returns:
            (n, *data_shape) float tensor on the CPU; images are in [-1, 1].
        """
        rng = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.config.z_dim, generator=rng)  # drawn on the CPU: the same on any device
        out = [self.generator(z[i:i + batch_size].to(self.device)).cpu() for i in range(0, n, batch_size)]
        return torch.cat(out) if out else torch.empty(0, *self.data_shape)


def _checkpoint_of(source: Path) -> Path:
    if source.is_dir():
        latest = source / "checkpoints" / "latest.pt"
        if not latest.is_file():
            raise CheckpointError(f"{str(source)!r} has no checkpoints/latest.pt; is it a wgan run directory?")
        return latest
    return source


def _generator_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], str]:
    if state.get("ema") is not None:
        return state["ema"], "ema"
    return state["generator"], "generator"


def _data_shape(state: dict[str, Any], config: TrainConfig) -> tuple[int, ...]:
    if state.get("data_shape") is not None:
        return tuple(int(s) for s in state["data_shape"])
    return tuple(load_data(config).shape)  # a checkpoint from before data_shape was saved: ask the data


def export_generator(source: str | Path, out: str | Path | None = None) -> ExportResult:
    """Write the generator of a run (or of one of its checkpoints) to a ``.safetensors`` file.

    Args:
        source: a run directory (its ``checkpoints/latest.pt``) or a checkpoint file.
        out: the file to write; default ``RUN_DIR/generator.safetensors``. Written atomically, with
            ``OUT.sha256`` beside it.

    Returns:
        An :class:`ExportResult` with the path and the SHA-256 of the bytes written.

    Raises:
        CheckpointError: the source is not a run or its checkpoint is unusable.
    """
    source = Path(source)
    path = _checkpoint_of(source)
    state = ckpt.load_checkpoint(path)
    config = from_dict(state["config"])
    weights, which = _generator_state(state)
    shape = _data_shape(state, config)
    arch = state.get("arch") or resolve_arch(config, shape)
    metadata = {
        "format": EXPORT_FORMAT,
        "format_version": str(EXPORT_VERSION),
        "config": json.dumps(dataclasses.asdict(config), sort_keys=True),
        "data_shape": json.dumps(list(shape)),
        "arch": arch,
        "z_dim": str(config.z_dim),
        "weights": which,
        "step": str(int(state["step"])),
        "versions": json.dumps(ckpt.software_versions(), sort_keys=True),
        "trained_with": json.dumps(state.get("versions", {}), sort_keys=True),
    }
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in weights.items()}
    blob = save_safetensors(tensors, metadata=metadata)
    if out is None:
        out = (source if source.is_dir() else source.parent) / "generator.safetensors"
    out = Path(out)
    if out.is_dir():
        raise CheckpointError(f"--out {str(out)!r} is a folder; give a file name such as generator.safetensors")
    digest = hashlib.sha256(blob).hexdigest()
    ckpt.atomic_write_bytes(out, lambda f: f.write(blob))
    sidecar = out.with_name(out.name + ".sha256")
    ckpt.atomic_write_text(sidecar, f"{digest}  {out.name}\n")
    return ExportResult(out, digest, sidecar, which, int(state["step"]))


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    name = repr(str(path))
    data = path.read_bytes()
    sidecar = path.with_name(path.name + ".sha256")
    if sidecar.is_file():
        expected = sidecar.read_text(encoding="utf-8").split()[:1]
        actual = hashlib.sha256(data).hexdigest()
        if expected != [actual]:
            raise CheckpointError(f"{name} does not match its checksum file {sidecar.name} (sha256 {actual}, "
                                  f"expected {expected[0] if expected else 'nothing'}): changed or damaged")
    try:
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + n])
        tensors = load_safetensors(data)
    except Exception as e:  # short file, bad header, bad offsets
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{name} is not a valid safetensors file: {first[:160]}") from None
    metadata = header.get("__metadata__") or {}
    if metadata.get("format") != EXPORT_FORMAT:
        raise CheckpointError(f"{name} is a safetensors file but not a wgan generator export "
                              f"(no format={EXPORT_FORMAT} in its metadata)")
    if metadata.get("format_version") != str(EXPORT_VERSION):
        raise CheckpointError(f"{name} has export format {metadata.get('format_version')!r}; "
                              f"this wgan reads format {EXPORT_VERSION}")
    return tensors, metadata


def build_generator(config: TrainConfig, data_shape: tuple[int, ...], arch: str | None = None) -> nn.Module:
    """An untrained generator of the configured architecture (``arch`` overrides ``config.arch``) for
    samples of ``data_shape``, built by the architecture registry (:func:`wgan.nets.build_nets`).

    The global random state is left as it was (the initial weights are overwritten anyway).
    """
    if arch is not None:
        config = dataclasses.replace(config, arch=arch)
    with torch.random.fork_rng(devices=[]):
        generator, _ = build_nets(config, tuple(data_shape))
    return generator


def load_generator(source: str | Path, device: str | torch.device = "cpu") -> LoadedGenerator:
    """Rebuild a generator from a run directory, a ``.pt`` checkpoint or a ``.safetensors`` export.

    A run directory or checkpoint gives its EMA weights when the run has them, as the export does.
    An exported file whose ``.sha256`` sidecar exists must match it.

    Args:
        source: run directory, checkpoint file, or exported file.
        device: where the generator goes.

    Returns:
        A :class:`LoadedGenerator` in eval mode.

    Raises:
        CheckpointError: the source is missing, corrupt, unsafe, not a wgan file, or does not match.
    """
    source = Path(source)
    if not source.exists():
        raise CheckpointError(f"not found: {str(source)!r} (expected a run directory, a .pt checkpoint "
                              f"or a .safetensors export)")
    if source.is_file() and source.suffix == ".safetensors":
        weights, meta = _read_safetensors(source)
        try:
            config = from_dict(json.loads(meta["config"]))
            shape = tuple(int(s) for s in json.loads(meta["data_shape"]))
            arch, which, step = meta["arch"], meta.get("weights", "generator"), int(meta.get("step", 0))
        except (KeyError, ValueError, TypeError) as e:
            raise CheckpointError(f"{str(source)!r}: incomplete wgan metadata ({type(e).__name__}: {e})") from None
    else:
        state = ckpt.load_checkpoint(_checkpoint_of(source))
        config = from_dict(state["config"])
        weights, which = _generator_state(state)
        shape = _data_shape(state, config)
        arch, step = state.get("arch"), int(state["step"])
    generator = build_generator(config, shape, arch)
    try:
        generator.load_state_dict(weights)
    except RuntimeError as e:
        detail = " ".join(line.strip() for line in str(e).strip().splitlines()[:2])[:200]
        raise CheckpointError(f"{str(source)!r}: the weights do not fit the generator its config "
                              f"describes: {detail}") from None
    generator = generator.to(device).eval().requires_grad_(False)
    return LoadedGenerator(generator, config, shape, which, step, source)
