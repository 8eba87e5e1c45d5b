"""Training configuration: one dataclass whose fields carry their help text, presets, TOML loading,
resolution of overrides into a complete config, and validation that asks each owner's registry.

Resolution order, later wins: base values < variant recipe < preset < TOML file < flags (or a dict, or
a TrainConfig's fields that are not ``None``). The variant and preset are read from the user's layers
first, because they select the middle ones.

Layering: this module imports the registries (variants, Lipschitz methods, nets, data sources); none
of them imports it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from wgan import data as data_registry
from wgan import lipschitz, nets
from wgan.errors import ConfigError
from wgan.variants import VARIANTS, get_variant

_UNSET = object()


def setting(default: Any, help: str, *, base: Any = _UNSET, optional: bool = False, model: bool = False,
            bounds: str | None = None, choices: tuple[str, ...] | None = None) -> Any:
    """A :class:`TrainConfig` field with its help text, written once (``wgan train --help`` shows it).

    Args:
        default: the dataclass default; ``None`` for a field that a layer (variant, preset) may set.
        help: one line for ``--help``.
        base: the value when no layer sets a field left ``None`` (the bottom layer of :func:`resolve`).
        optional: ``None`` is a valid value in a resolved config (otherwise it is refused).
        model: the field defines the model or data (a resumed run refuses a change, :data:`MODEL_FIELDS`).
        bounds: the accepted range of a number: ``">=N"``, ``">0"`` or ``"[0,1)"``.
        choices: accepted strings, for a field whose values no registry owns.
    """
    meta = {"help": help, "optional": optional, "model": model, "bounds": bounds, "choices": choices}
    if base is not _UNSET:
        meta["base"] = base
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Everything needed to rebuild a training run.

    Made by hand, a TrainConfig holds *overrides*: a field left ``None`` is filled by :func:`resolve`
    from the layers below (base value < variant recipe < preset), so ``wgan.train(TrainConfig(steps=20))``
    trains the default recipe for 20 steps. Resolved (:func:`resolve`, ``config.json``), it is complete:
    ``None`` remains only where it is a value (``beta1`` of RMSprop, a native ``image_size``...).
    """

    # --- what to train -----------------------------------------------------------------------
    variant: str = setting("wgan-gp", "recipe: objective + Lipschitz method + n_critic + optimiser "
                           "(wgan.variants)", model=True)
    data: str = setting("ring8", "a toy set, or PREFIX:PATH of a file or folder of images", model=True)
    preset: str = setting("auto", "overrides for a kind of data; auto: the preset that suits the data (toy for "
                          "the toy sets, mnist for mnist:DIR, else none)")
    data_scale: float | None = setting(None, "toy geometry: ring radius, grid spacing, mixture/roll scale",
                                       optional=True, model=True)
    data_std: float | None = setting(None, "toy: std of each Gaussian component (noise for swissroll)",
                                     optional=True, model=True)
    classes: str | None = setting(None, 'image data: keep only these labels, e.g. "0,1,7"', optional=True,
                                  model=True)
    image_size: int | None = setting(None, "image data: centre-crop and resize to this size; none = native",
                                     optional=True, model=True)
    channels: int | None = setting(None, "image data: 1 or 3 channels; none = native", optional=True, model=True)

    # --- networks ----------------------------------------------------------------------------
    arch: str | None = setting(None, "architecture; auto: mlp for vectors, conv for images", base="auto",
                               model=True)
    z_dim: int | None = setting(None, "latent size; 2 matches the WGAN-GP and PacGAN toy code", base=2,
                                model=True, bounds=">=1")
    g_width: int | None = setting(None, "MLP hidden width / conv base channels of the generator", base=256,
                                  model=True, bounds=">=1")
    g_depth: int | None = setting(None, "MLP hidden layers of the generator", base=3, model=True, bounds=">=1")
    c_width: int | None = setting(None, "MLP hidden width / conv base channels of the critic", base=256,
                                  model=True, bounds=">=1")
    c_depth: int | None = setting(None, "MLP hidden layers of the critic", base=3, model=True, bounds=">=1")
    activation: str = setting("relu", "activation of the MLPs (leaky_relu: slope 0.2)", model=True)
    critic_norm: str | None = setting(None, "normalisation between the critic's layers (batch is refused with "
                                      "the gradient penalty)", base="none", model=True)

    # --- schedule ----------------------------------------------------------------------------
    steps: int | None = setting(None, "generator steps in total (each follows n_critic critic steps)", base=6000,
                                bounds=">=1")
    batch_size: int | None = setting(None, "per process; global batch = batch_size x world size", base=256,
                                     bounds=">=1")
    n_critic: int | None = setting(None, "critic steps per generator step", bounds=">=1")

    # --- optimisers --------------------------------------------------------------------------
    optimizer: str | None = setting(None, "optimiser of both nets", model=True, choices=("adam", "rmsprop"))
    lr_g: float | None = setting(None, "learning rate of the generator", bounds=">0")
    lr_c: float | None = setting(None, "learning rate of the critic", bounds=">0")
    beta1: float | None = setting(None, "Adam only: beta1", optional=True, bounds="[0,1)")
    beta2: float | None = setting(None, "Adam only: beta2", optional=True, bounds="[0,1)")
    ema_decay: float | None = setting(None, "EMA of the generator's weights per generator step; 0 disables",
                                      base=0.0, bounds="[0,1)")

    # --- Lipschitz method (checked by the methods themselves: wgan.lipschitz) ------------------
    gp_weight: float | None = setting(None, "lambda of the gradient penalty", optional=True)
    gp_one_sided: bool = setting(False, "penalise only gradient norms above 1: max(0, |g| - 1)^2")
    penalty_every: int = setting(1, "lazy regularisation: the penalty every k critic steps, scaled by k")
    clip_value: float | None = setting(None, "weight clipping bound c", optional=True)

    # --- run ---------------------------------------------------------------------------------
    seed: int = setting(0, "seed of the initial weights and of every random draw", bounds=">=0")
    out: str | None = setting(None, "run directory; none = runs/NNNNN-VARIANT-DATA", optional=True)
    tick_every_steps: int | None = setting(None, "statistics, samples, evaluation and checkpoint every so many "
                                           "generator steps", base=500, bounds=">=1")
    eval_samples: int | None = setting(None, "generated samples per evaluation (the VEEGAN / PacGAN toy "
                                       "protocol scores 2,500)", base=2500, bounds=">=10")
    keep_checkpoints: int = setting(2, "numbered checkpoints kept besides latest.pt", bounds=">=0")
    device: str = setting("auto", "auto, cpu, cuda or cuda:N")
    # 0: all cores for conv nets, large MLPs and the compiled MLP WGAN-GP steps, 1 for other small MLPs
    # (trainer.default_threads)
    threads: int = setting(0, "torch CPU threads; 0 = automatic (1 for small MLPs, all cores for large nets); "
                           "1 on a busy machine", bounds=">=0")
    fast_penalty: bool = setting(True, "the gradient penalty by the written-out input gradient for the "
                                 "project's own nets (the same values, faster)")
    tensorboard: bool = setting(False, "also log to RUN_DIR/tensorboard (needs the tensorboard extra)")
    on_nan: str = setting("stop", "on a NaN or Inf loss: stop, or rollback (reload the last checkpoint and halve "
                          "the learning rates)", choices=("stop", "rollback"))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


FIELDS = {f.name: f for f in fields(TrainConfig)}
FIELD_TYPES: dict[str, type] = {}
FIELD_NULLABLE: dict[str, bool] = {}  # the type admits None: a flag or TOML key may say "none"
for _f in FIELDS.values():
    _t = str(_f.type)
    FIELD_NULLABLE[_f.name] = "None" in _t
    FIELD_TYPES[_f.name] = next(t for n, t in (("bool", bool), ("int", int), ("float", float), ("str", str)) if n in _t)

#: Fields that define the model and data: a resumed run refuses changes to these (issue: reliability).
MODEL_FIELDS = tuple(name for name, f in FIELDS.items() if f.metadata["model"])
#: The bottom layer of :func:`resolve`: the value of each field that a variant or preset may leave unset.
BASE = {name: f.metadata["base"] for name, f in FIELDS.items() if "base" in f.metadata}

# Presets: overrides applied on top of the variant recipe. "common" applies to every variant.
# The toy values were measured here (see README, "Choosing the toy settings"): on narrow mixtures the
# paper's image-scale penalty weight 10 collapses to one mode, the WGAN-GP toy code's 0.1 does not.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "none": {},
    # WGAN-GP on the toy mixtures: Adam 5e-4 and an EMA of the generator (decay 0.999) reach every mode
    # with >= 90% high-quality samples on ring8 in ~100 s and >= 75% on grid25 in ~165 s of one CPU
    # core; the paper's 1e-4 without EMA stays below either bar after 300 / 600 s (docs/performance.md,
    # "Time to quality"; benchmarks/time_to_quality.py).
    "toy": {
        "common": {"z_dim": 2, "g_width": 128, "g_depth": 2, "c_width": 128, "c_depth": 2, "batch_size": 256},
        "wgan-gp": {"gp_weight": 0.1, "lr_g": 5e-4, "lr_c": 5e-4, "ema_decay": 0.999},
    },
    # The WGAN-GP paper's toy set-up (gan_toy.py): 3x512 ReLU MLPs, lambda 0.1, Adam 1e-4 (0.5, 0.9), batch 256.
    "paper-toy": {
        "common": {"z_dim": 2, "g_width": 512, "g_depth": 3, "c_width": 512, "c_depth": 3, "batch_size": 256},
        "wgan-gp": {"gp_weight": 0.1},
    },
    # The VEEGAN / PacGAN toy protocol (Srivastava et al. 2017, sec. 5.1; Lin et al. 2018): ring8 (radius 2,
    # std 0.02) and grid25 (spacing 2, std 0.05) are the data defaults; 2,500 generated samples are scored.
    # Nets as "toy". Used by `wgan compare` on toy data (docs/compare.md).
    "veegan": {
        "common": {"z_dim": 2, "g_width": 128, "g_depth": 2, "c_width": 128, "c_depth": 2, "batch_size": 256,
                   "eval_samples": 2500},
        "wgan-gp": {"gp_weight": 0.1},
    },
    # The WGAN-GP paper's MNIST model (gan_mnist.py): conv critic 64-128-256 (5x5, stride 2, LeakyReLU,
    # no normalisation), generator 4x4x256 -> 28x28, z 128, batch 50, lambda 10, n_critic 5, 200k steps.
    # Our generator keeps BatchNorm (the paper's has none for WGAN-GP) and ends in tanh for [-1, 1] data.
    "wgan-gp-mnist": {
        "common": {"arch": "conv", "z_dim": 128, "g_width": 64, "c_width": 64, "critic_norm": "none",
                   "batch_size": 50, "steps": 200000, "tick_every_steps": 1000},
    },
    # The same layout at half the width (a quarter of the arithmetic), sized for 2 CPU cores: see the
    # README for an hour of it (docs/mnist_hour.md). 1000 evaluation samples keep a tick to seconds.
    "mnist": {
        "common": {"arch": "conv", "z_dim": 128, "g_width": 32, "c_width": 32, "critic_norm": "none",
                   "batch_size": 50, "steps": 4000, "tick_every_steps": 250, "eval_samples": 1000},
    },
}


def auto_preset(data: str) -> str:
    """The preset ``--preset auto`` picks for ``--data``: toy for the toy sets, mnist for mnist:DIR, else none."""
    if data_registry.is_toy(data):
        return "toy"
    if data.split(":", 1)[0] == "mnist" and "mnist" in PRESETS:
        return "mnist"
    return "none"


def _spells_none(name: str, value: Any) -> bool:
    """Whether a flag or TOML string means ``None`` for field ``name``: "none" or "null", for a field that
    may be ``None``, unless it is one of the field's own values (``--critic-norm none``)."""
    if not (isinstance(value, str) and value.lower() in ("none", "null") and FIELD_NULLABLE[name]):
        return False
    return value not in (choices_of(name) or ())


def coerce(name: str, value: Any) -> Any:
    """Convert a flag string or TOML value to the field's type, or raise ConfigError naming it."""
    if name not in FIELD_TYPES:
        raise ConfigError(f"unknown setting {name!r}; accepted: {', '.join(sorted(FIELD_TYPES))}")
    typ = FIELD_TYPES[name]
    flag = "--" + name.replace("_", "-")
    if value is None or _spells_none(name, value):
        if FIELD_NULLABLE[name]:
            return None
        raise ConfigError(f"{flag} may not be empty")
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{flag} must be true or false, got {value!r}")
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"{flag} must be a string, got {value!r}")
        return value
    if isinstance(value, bool):
        raise ConfigError(f"{flag} must be a number, got {value!r}")
    try:
        if typ is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        return float(value)
    except (TypeError, ValueError):
        kind = "an integer" if typ is int else "a number"
        raise ConfigError(f"{flag} must be {kind}, got {value!r}") from None


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file of config fields (flat, or under a [train] table); unknown keys are errors."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--config file not found: {str(p)!r}")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"--config {str(p)!r} is not valid TOML: {e}") from None
    if set(raw) == {"train"} and isinstance(raw["train"], dict):
        raw = raw["train"]
    where = f"--config {str(p)!r}"
    out = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in FIELD_TYPES:
            raise ConfigError(f"{where}: unknown key {key!r}; accepted: {', '.join(sorted(FIELD_TYPES))}")
        # TOML values are typed: the value's type must be the field's (an integer is a valid float;
        # "none" is how a file resets a field that may be empty). No string-to-number guessing here.
        typ = FIELD_TYPES[name]
        if _spells_none(name, value):
            out[name] = None
            continue
        ok = {bool: isinstance(value, bool),
              int: isinstance(value, int) and not isinstance(value, bool),
              float: isinstance(value, (int, float)) and not isinstance(value, bool),
              str: isinstance(value, str)}[typ]
        if not ok:
            got = _TOML_TYPES.get(type(value), type(value).__name__)
            raise ConfigError(f"{where}: {key} = {_toml_repr(value)} has the wrong type: {key} must be "
                              f"{_KINDS[typ]}, got {got}")
        out[name] = coerce(name, value)
    return out


_KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_TOML_TYPES = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array",
               dict: "a table"}


def _toml_repr(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value) if not isinstance(value, (list, dict)) else ("[...]" if isinstance(value, list) else "{...}")


def layers_setting(name: str) -> list[str]:
    """Which layers may set field ``name``: ``"variant"`` (a recipe's values), ``"preset"``."""
    out = []
    if any(name in v.defaults() for v in VARIANTS.values()):
        out.append("variant")
    if any(name in overrides for p in PRESETS.values() for overrides in p.values()):
        out.append("preset")
    return out


def choices_of(name: str) -> list[str] | None:
    """The values field ``name`` accepts, asked of the registry that owns them; ``None``: not a fixed set."""
    registries = {
        "variant": lambda: list(VARIANTS),
        "data": lambda: list(data_registry.TOY) + [f"{p}:PATH" for p in data_registry.PREFIXED],
        "preset": lambda: ["auto", *PRESETS],
        "arch": lambda: ["auto", *nets.ARCHITECTURES],
        "activation": lambda: list(nets.ACTIVATIONS),
        "critic_norm": lambda: list(nets.CRITIC_NORMS),
        "image_size": lambda: [str(s) for s in data_registry.images.SIZES],
        "channels": lambda: [str(c) for c in data_registry.images.CHANNELS],
    }
    if name in registries:
        return registries[name]()
    choices = FIELDS[name].metadata["choices"]
    return list(choices) if choices else None


def default_text(name: str) -> str:
    """The default of field ``name`` in words, for ``--help``: its value, or who sets it."""
    f = FIELDS[name]
    if f.default is not None:
        return repr(f.default)
    layers = layers_setting(name)
    if "base" in f.metadata:
        base = repr(f.metadata["base"])
        return f"{base} unless the {' or the '.join(layers)} sets it" if layers else base
    return ", or ".join(f"the {layer}'s" for layer in layers) if layers else "none"


def given(overrides: TrainConfig | Mapping[str, Any] | None) -> dict[str, Any]:
    """The fields ``overrides`` sets: a mapping's keys (``None`` values included: set to none), or a
    TrainConfig's fields that are not ``None`` (left ``None``: the layers below decide)."""
    if overrides is None:
        return {}
    if isinstance(overrides, TrainConfig):
        return {k: v for k, v in dataclasses.asdict(overrides).items() if v is not None}
    return dict(overrides)


def resolve(overrides: TrainConfig | Mapping[str, Any] | None = None,
            toml_path: str | Path | None = None) -> TrainConfig:
    """Build a complete, validated config: base < variant recipe < preset < TOML file < ``overrides``.

    Args:
        overrides: fields set by the user: a dict (flag values; a ``None`` value sets the field to none),
            or a :class:`TrainConfig` whose fields left ``None`` count as not given.
        toml_path: a TOML file of fields (:func:`load_toml`), below ``overrides``.

    Raises:
        ConfigError: an unknown field, a value of the wrong type, or one that validation refuses.

    Example:
        >>> resolve(TrainConfig(steps=20)).gp_weight  # the toy preset's lambda for wgan-gp on ring8
        0.1
    """
    user: dict[str, Any] = {}
    if toml_path is not None:
        user.update(load_toml(toml_path))
    for k, v in given(overrides).items():
        user[k] = coerce(k, v)
    variant_name = user.get("variant", FIELDS["variant"].default)
    data = user.get("data", FIELDS["data"].default)
    preset = user.get("preset", FIELDS["preset"].default)
    if preset == "auto":
        preset = auto_preset(data)
    if preset not in PRESETS:
        raise ConfigError(f"--preset must be one of auto, {', '.join(PRESETS)}; got {preset!r}")
    merged = dict(BASE)
    merged.update(get_variant(variant_name).defaults())
    merged.update(PRESETS[preset].get("common", {}))
    merged.update(PRESETS[preset].get(variant_name, {}))
    merged.update(user)
    merged["preset"] = preset
    config = TrainConfig(**merged)
    validate(config)
    return config


def from_dict(d: dict[str, Any]) -> TrainConfig:
    """Rebuild a config saved by ``to_dict`` (config.json, checkpoints)."""
    unknown = set(d) - set(FIELDS)
    if unknown:
        raise ConfigError(f"saved config has unknown fields {sorted(unknown)}; written by a newer wgan?")
    config = TrainConfig(**d)
    validate(config)
    return config


def _or(names) -> str:
    names = list(names)
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names)


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise ConfigError(msg)


def _check_bounds(flag: str, v: float, bounds: str) -> None:
    if bounds == ">0":
        _check(v > 0, f"{flag} must be > 0, got {v}")
    elif bounds == "[0,1)":
        _check(0 <= v < 1, f"{flag} must be in [0, 1), got {v}")
    else:
        assert bounds.startswith(">="), bounds
        low = int(bounds[2:])
        _check(v >= low, f"{flag} must be >= {low}, got {v}")


def validate(c: TrainConfig) -> None:
    """Raise ConfigError naming the first bad field of a resolved config, its value and what is accepted.

    Every field is checked: its type (a library caller may build a TrainConfig by hand), that it is set
    unless ``None`` is a value for it, finite numbers, its range; then each owner checks its fields:
    the variants, the data sources, the Lipschitz methods, the nets.
    """
    for f in fields(TrainConfig):
        v = getattr(c, f.name)
        flag = "--" + f.name.replace("_", "-")
        if v is None:
            _check(f.metadata["optional"], f"{flag} may not be empty (None)")
            continue
        typ = FIELD_TYPES[f.name]
        ok = {bool: isinstance(v, bool),
              int: isinstance(v, int) and not isinstance(v, bool),
              float: isinstance(v, (int, float)) and not isinstance(v, bool),
              str: isinstance(v, str)}[typ]
        _check(ok, f"{flag} must be {_KINDS[typ]}, got {v!r}")
        if typ is float:
            _check(math.isfinite(v), f"{flag} must be a finite number, got {v!r}")
        if f.metadata["bounds"]:
            _check_bounds(flag, v, f.metadata["bounds"])
        if f.metadata["choices"]:
            _check(v in f.metadata["choices"], f"{flag} must be {_or(f.metadata['choices'])}, got {v!r}")
    _check(c.variant in VARIANTS, f"--variant must be one of {', '.join(VARIANTS)}; got {c.variant!r}")
    _check(c.preset == "auto" or c.preset in PRESETS,
           f"--preset must be one of auto, {', '.join(PRESETS)}; got {c.preset!r}")
    dev = c.device
    _check(dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit()),
           f"--device must be auto, cpu, cuda or cuda:N, got {dev!r}")
    data_registry.check_config(c)
    lipschitz.check_config(c, c.variant, VARIANTS[c.variant].lipschitz)
    nets.check_config(c)
