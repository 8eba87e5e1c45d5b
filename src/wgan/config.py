"""Training configuration: one dataclass, presets, TOML loading and validation.

Resolution order, later wins: dataclass defaults < variant recipe < preset < TOML file < flags.
The variant and preset are read from the user's layers first, because they select the middle ones.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


from wgan.errors import ConfigError


@dataclass
class TrainConfig:
    """Everything needed to rebuild a training run. ``None`` means "the variant's or data set's default"."""

    # --- what to train -----------------------------------------------------------------------
    variant: str = "wgan-gp"  # gan | wgan | wgan-gp | sngan (recipes in variants.py)
    data: str = "ring8"  # ring8 | grid25 | mixture3 | swissroll | mnist:DIR | folder:DIR | npz:FILE | ...
    preset: str = "auto"  # auto: the preset that suits the data ("toy" for 2-D, "mnist" for MNIST); none
    data_scale: float | None = None  # toy geometry: ring radius, grid spacing, mixture/roll scale
    data_std: float | None = None  # toy: std of each Gaussian component (noise for swissroll)
    classes: str | None = None  # image data: keep only these labels, e.g. "0,1,7"
    image_size: int | None = None  # image data: resize/crop to this (28, 32 or 64); None = native
    channels: int | None = None  # image data: 1 or 3; None = native

    # --- networks ----------------------------------------------------------------------------
    arch: str = "auto"  # mlp | conv | auto (mlp for vectors, conv for images)
    z_dim: int = 2  # latent size; 2 matches the WGAN-GP and PacGAN toy code
    g_width: int = 256  # MLP hidden width / conv base channels of the generator
    g_depth: int = 3  # MLP hidden layers of the generator
    c_width: int = 256  # MLP hidden width / conv base channels of the critic
    c_depth: int = 3  # MLP hidden layers of the critic
    activation: str = "relu"  # relu | leaky_relu (slope 0.2) | tanh | elu
    critic_norm: str = "none"  # none | layer | batch (batch is refused with the gradient penalty)

    # --- schedule ----------------------------------------------------------------------------
    steps: int = 6000  # generator steps in total (each follows n_critic critic steps)
    batch_size: int = 256  # per process; global batch = batch_size x world size
    n_critic: int | None = None  # critic steps per generator step

    # --- optimisers --------------------------------------------------------------------------
    optimizer: str | None = None  # adam | rmsprop
    lr_g: float | None = None
    lr_c: float | None = None
    beta1: float | None = None  # Adam only
    beta2: float | None = None  # Adam only
    ema_decay: float = 0.0  # EMA of generator weights per generator step; 0 disables

    # --- Lipschitz method --------------------------------------------------------------------
    gp_weight: float | None = None  # lambda of the gradient penalty
    gp_one_sided: bool = False  # penalise only norms above 1: max(0, |g| - 1)^2
    penalty_every: int = 1  # lazy regularisation: penalty every k critic steps, scaled by k
    clip_value: float | None = None  # weight clipping bound c

    # --- run ---------------------------------------------------------------------------------
    seed: int = 0
    out: str | None = None  # run directory; None = runs/NNNNN-VARIANT-DATA
    tick_every_steps: int = 500  # statistics, samples, evaluation and checkpoint every so many steps
    eval_samples: int = 2500  # toy protocol (VEEGAN / PacGAN): 2,500 generated samples
    keep_checkpoints: int = 2  # numbered checkpoints kept besides latest.pt
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch CPU threads; 0 = all cores for conv nets, large MLPs and the compiled MLP
    #                   WGAN-GP steps, 1 for other small MLPs (trainer.default_threads); 1 on a busy machine
    fast_penalty: bool = True  # use the written-out input gradient for the project's own nets
    tensorboard: bool = False  # also log to RUN_DIR/tensorboard (needs the tensorboard extra)
    on_nan: str = "stop"  # stop | rollback (reload the last checkpoint and halve the learning rates)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


FIELD_TYPES: dict[str, type] = {}
FIELD_NULLABLE: dict[str, bool] = {}
for _f in fields(TrainConfig):
    _t = str(_f.type)
    FIELD_NULLABLE[_f.name] = "None" in _t
    FIELD_TYPES[_f.name] = next(t for n, t in (("bool", bool), ("int", int), ("float", float), ("str", str)) if n in _t)

# Fields that define the model and data: a resumed run refuses changes to these (issue: reliability).
MODEL_FIELDS = (
    "variant", "data", "data_scale", "data_std", "classes", "image_size", "channels", "arch", "z_dim",
    "g_width", "g_depth", "c_width", "c_depth", "activation", "critic_norm", "optimizer",
)

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


def register_preset(name: str, overrides: dict[str, dict[str, Any]]) -> None:
    """Add a named preset: ``{"common": {...}, "<variant>": {...}}``."""
    PRESETS[name] = overrides


def auto_preset(data: str) -> str:
    from wgan.data import is_toy

    if is_toy(data):
        return "toy"
    if data.split(":", 1)[0] == "mnist" and "mnist" in PRESETS:
        return "mnist"
    return "none"


def coerce(name: str, value: Any) -> Any:
    """Convert a flag string or TOML value to the field's type, or raise ConfigError naming it."""
    if name not in FIELD_TYPES:
        raise ConfigError(f"unknown setting {name!r}; accepted: {', '.join(sorted(FIELD_TYPES))}")
    typ = FIELD_TYPES[name]
    flag = "--" + name.replace("_", "-")
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and FIELD_NULLABLE[name]):
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
        if isinstance(value, str) and FIELD_NULLABLE[name] and value.lower() in ("none", "null"):
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


def resolve(overrides: dict[str, Any] | None = None, toml_path: str | Path | None = None) -> TrainConfig:
    """Build a validated config: defaults < variant recipe < preset < TOML file < ``overrides``."""
    from wgan.variants import get_variant

    user: dict[str, Any] = {}
    if toml_path is not None:
        user.update(load_toml(toml_path))
    for k, v in (overrides or {}).items():
        user[k] = coerce(k, v)
    base = TrainConfig()
    variant_name = user.get("variant", base.variant)
    data = user.get("data", base.data)
    preset = user.get("preset", base.preset)
    if preset == "auto":
        preset = auto_preset(data)
    if preset not in PRESETS:
        raise ConfigError(f"--preset must be one of auto, {', '.join(PRESETS)}; got {preset!r}")
    merged = dict(get_variant(variant_name).defaults())
    merged.update(PRESETS[preset].get("common", {}))
    merged.update(PRESETS[preset].get(variant_name, {}))
    merged.update(user)
    merged["preset"] = preset
    config = dataclasses.replace(base, **merged)
    validate(config)
    return config


def from_dict(d: dict[str, Any]) -> TrainConfig:
    """Rebuild a config saved by ``to_dict`` (config.json, checkpoints)."""
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(d) - known
    if unknown:
        raise ConfigError(f"saved config has unknown fields {sorted(unknown)}; written by a newer wgan?")
    config = TrainConfig(**d)
    validate(config)
    return config


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise ConfigError(msg)


def validate(c: TrainConfig) -> None:
    """Raise ConfigError naming the first bad field, its value and what is accepted.

    Every field is checked: its type (a library caller may build a TrainConfig by hand), finite
    numbers, then its range or set of accepted values.
    """
    from wgan.data import check_data_spec
    from wgan.variants import VARIANTS

    for f in fields(TrainConfig):
        v = getattr(c, f.name)
        flag = "--" + f.name.replace("_", "-")
        if v is None:
            _check(FIELD_NULLABLE[f.name], f"{flag} may not be empty (None)")
            continue
        typ = FIELD_TYPES[f.name]
        ok = {bool: isinstance(v, bool),
              int: isinstance(v, int) and not isinstance(v, bool),
              float: isinstance(v, (int, float)) and not isinstance(v, bool),
              str: isinstance(v, str)}[typ]
        _check(ok, f"{flag} must be {_KINDS[typ]}, got {v!r}")
        if typ is float:
            _check(math.isfinite(v), f"{flag} must be a finite number, got {v!r}")
    _check(c.variant in VARIANTS, f"--variant must be one of {', '.join(VARIANTS)}; got {c.variant!r}")
    check_data_spec(c.data)
    _check(c.preset == "auto" or c.preset in PRESETS,
           f"--preset must be one of auto, {', '.join(PRESETS)}; got {c.preset!r}")
    method = VARIANTS[c.variant].lipschitz
    _check(method != "clip" or c.clip_value is not None,
           f"--clip-value must be set for --variant {c.variant} (weight clipping), got None")
    _check(method != "gp" or c.gp_weight is not None,
           f"--gp-weight must be set for --variant {c.variant} (gradient penalty), got None")
    _check(method != "gp" or c.critic_norm != "batch",
           f"--critic-norm batch cannot be used with --variant {c.variant}: the gradient penalty is per sample "
           f"and BatchNorm mixes the samples of a batch; use --critic-norm layer or none")
    for name in ("z_dim", "g_width", "c_width", "steps", "batch_size", "tick_every_steps", "penalty_every"):
        v = getattr(c, name)
        _check(v >= 1, f"--{name.replace('_', '-')} must be >= 1, got {v}")
    for name in ("g_depth", "c_depth"):
        v = getattr(c, name)
        _check(v >= 1, f"--{name.replace('_', '-')} must be >= 1, got {v}")
    _check(c.n_critic is not None and c.n_critic >= 1, f"--n-critic must be >= 1, got {c.n_critic}")
    _check(c.eval_samples >= 10, f"--eval-samples must be >= 10, got {c.eval_samples}")
    _check(c.keep_checkpoints >= 0, f"--keep-checkpoints must be >= 0, got {c.keep_checkpoints}")
    _check(c.threads >= 0, f"--threads must be >= 0 (0 = automatic), got {c.threads}")
    _check(c.seed >= 0, f"--seed must be >= 0, got {c.seed}")
    for name in ("lr_g", "lr_c"):
        v = getattr(c, name)
        _check(v is not None and v > 0, f"--{name.replace('_', '-')} must be > 0, got {v}")
    _check(c.optimizer in ("adam", "rmsprop"), f"--optimizer must be adam or rmsprop, got {c.optimizer!r}")
    for name in ("beta1", "beta2"):
        v = getattr(c, name)
        _check(v is None or 0 <= v < 1, f"--{name} must be in [0, 1), got {v}")
    _check(0 <= c.ema_decay < 1, f"--ema-decay must be in [0, 1), got {c.ema_decay}")
    _check(c.gp_weight is None or c.gp_weight >= 0, f"--gp-weight must be >= 0, got {c.gp_weight}")
    _check(c.clip_value is None or c.clip_value > 0, f"--clip-value must be > 0, got {c.clip_value}")
    for name in ("data_scale", "data_std"):
        v = getattr(c, name)
        _check(v is None or v > 0, f"--{name.replace('_', '-')} must be > 0, got {v}")
    _check(c.arch in ("auto", "mlp", "conv"), f"--arch must be auto, mlp or conv, got {c.arch!r}")
    _check(c.activation in ("relu", "leaky_relu", "tanh", "elu"),
           f"--activation must be relu, leaky_relu, tanh or elu, got {c.activation!r}")
    _check(c.critic_norm in ("none", "layer", "batch"),
           f"--critic-norm must be none, layer or batch, got {c.critic_norm!r}")
    _check(c.image_size in (None, 28, 32, 64), f"--image-size must be 28, 32 or 64, got {c.image_size}")
    _check(c.channels in (None, 1, 3), f"--channels must be 1 or 3, got {c.channels}")
    _check(c.on_nan in ("stop", "rollback"), f"--on-nan must be stop or rollback, got {c.on_nan!r}")
    dev = c.device
    _check(dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit()),
           f"--device must be auto, cpu, cuda or cuda:N, got {dev!r}")
    if c.classes is not None:
        parts = c.classes.split(",")
        _check(all(p.strip().isdigit() for p in parts) and len(parts) > 0,
               f"--classes must be comma-separated label numbers like 0,1,7, got {c.classes!r}")
