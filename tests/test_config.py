"""The configuration: overrides -> a complete, resolved config; help text written once; validation that
asks each owner's registry."""

from __future__ import annotations

import dataclasses

import pytest
from torch import nn

import wgan
from wgan import nets
from wgan.cli import main
from wgan.config import (
    BASE,
    FIELDS,
    MODEL_FIELDS,
    PRESETS,
    TrainConfig,
    coerce,
    default_text,
    from_dict,
    resolve,
    validate,
)
from wgan.errors import ConfigError
from wgan.variants import VARIANTS


def test_train_with_a_bare_train_config_works(tiny):
    """The docstring's promise: wgan.train(TrainConfig(...)) fills what is left None from the recipe."""
    summary = wgan.train(wgan.TrainConfig(steps=4, tick_every_steps=4, g_width=16, c_width=16, eval_samples=200,
                                          threads=1))
    assert summary["step"] == 4


def test_a_train_config_resolves_as_the_same_flags():
    assert resolve(TrainConfig(steps=20)) == resolve({"steps": 20})
    assert resolve(TrainConfig(variant="wgan", data="grid25")) == resolve({"variant": "wgan", "data": "grid25"})
    assert resolve(TrainConfig()) == resolve({}) == resolve()


def test_fields_left_none_take_the_variant_and_preset_values():
    c = resolve(TrainConfig(steps=20))
    assert c.steps == 20 and c.preset == "toy"
    assert c.gp_weight == PRESETS["toy"]["wgan-gp"]["gp_weight"]  # the preset over the recipe's 10
    assert c.g_width == PRESETS["toy"]["common"]["g_width"]
    assert c.n_critic == VARIANTS["wgan-gp"].n_critic
    c = resolve(TrainConfig(preset="none"))
    assert c.g_width == BASE["g_width"] and c.gp_weight == 10.0


def test_an_explicit_none_in_a_dict_is_a_value_and_a_none_field_is_unset():
    with pytest.raises(ConfigError, match="--clip-value must be set for --variant wgan"):
        resolve({"variant": "wgan", "clip_value": None})
    assert resolve(TrainConfig(variant="wgan", clip_value=None)).clip_value == 0.01


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("data", ["ring8", "grid25", "npy:x.npy"])
def test_resolution_is_idempotent_and_complete(variant, data):
    c = resolve({"variant": variant, "data": data})
    assert resolve(c) == c
    assert from_dict(c.to_dict()) == c
    for name, f in FIELDS.items():
        assert getattr(c, name) is not None or f.metadata["optional"], name


def test_every_field_a_layer_sets_is_left_none_by_default():
    """Otherwise a TrainConfig's default would hide the variant's or preset's value."""
    layered = {k for v in VARIANTS.values() for k in v.defaults()}
    layered |= {k for p in PRESETS.values() for overrides in p.values() for k in overrides}
    for name in layered:
        assert FIELDS[name].default is None, f"{name}: set by a variant or preset, so its default must be None"


def test_model_fields_are_the_model_and_data_fields():
    assert MODEL_FIELDS == ("variant", "data", "data_scale", "data_std", "classes", "image_size", "channels",
                            "arch", "z_dim", "g_width", "g_depth", "c_width", "c_depth", "activation",
                            "critic_norm", "optimizer")


def test_every_field_has_help_shown_by_wgan_train_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for name, f in FIELDS.items():
        flag = "--" + name.replace("_", "-")
        assert f.metadata["help"], name
        assert f"{flag} " in out
        assert " ".join(f.metadata["help"].split()) in out, name
        assert f"(default: {default_text(name)})" in out, name
    assert "(default: 256 unless the preset sets it)" in out  # g_width: the truth under the toy preset


def test_none_spelled_in_a_flag_is_none_unless_it_is_the_fields_own_value():
    assert coerce("beta1", "none") is None
    assert coerce("critic_norm", "none") == "none"
    assert resolve({"critic_norm": "none"}).critic_norm == "none"


def test_validation_asks_the_registries(monkeypatch):
    with pytest.raises(ConfigError, match="--activation must be relu, leaky_relu, tanh or elu, got 'gelu'"):
        resolve({"activation": "gelu"})
    monkeypatch.setitem(nets.ACTIVATIONS, "gelu", nn.GELU)
    assert resolve({"activation": "gelu"}).activation == "gelu"
    monkeypatch.setitem(nets.ARCHITECTURES, "resnet", nets.build_mlp)
    assert resolve({"arch": "resnet"}).arch == "resnet"
    with pytest.raises(ConfigError, match="--arch must be auto, mlp, conv or resnet, got 'vit'"):
        resolve({"arch": "vit"})


def test_validate_refuses_an_unresolved_config():
    with pytest.raises(ConfigError, match="may not be empty"):
        validate(TrainConfig())
    validate(resolve())


def test_the_resolved_config_of_every_preset_and_variant_is_valid():
    for preset in PRESETS:
        for variant in VARIANTS:
            c = resolve({"preset": preset, "variant": variant, "data": "ring8"})
            assert dataclasses.asdict(c)["preset"] == preset
