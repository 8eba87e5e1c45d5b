"""Export: the generator (EMA when present) and its config as safetensors with a sha256; `wgan sample`
loads a run directory or the exported file and gives the same samples."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from wgan.cli import main
from wgan.config import resolve
from wgan.export import build_generator, export_generator, load_generator
from wgan.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from wgan.training.trainer import Trainer

TINY = dict(data="ring8", z_dim=2, g_width=16, g_depth=2, c_width=16, c_depth=1, batch_size=32,
            eval_samples=64, seed=3, threads=1, device="cpu", steps=4, tick_every_steps=4)


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("export") / "run"
    Trainer(resolve({**TINY, "variant": "wgan-gp", "ema_decay": 0.5}), run_dir=run).train()
    return run


def test_export_writes_ema_weights_config_and_sha256(ema_run, tmp_path, capsys):
    out = tmp_path / "g.safetensors"
    assert main(["export", str(ema_run), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert re.search(rf"^sha256 {digest}  {re.escape(str(out))}", printed, re.M), printed
    assert (tmp_path / "g.safetensors.sha256").read_text() == f"{digest}  g.safetensors\n"

    state = load_checkpoint(ema_run / "checkpoints" / "latest.pt")
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    assert meta["format"] == "wgan-generator" and meta["weights"] == "ema" and meta["step"] == "4"
    assert json.loads(meta["data_shape"]) == [2] and meta["arch"] == "mlp"
    cfg = json.loads(meta["config"])
    assert cfg["g_width"] == 16 and cfg["g_depth"] == 2 and cfg["z_dim"] == 2 and cfg["activation"] == "relu"
    assert set(tensors) == set(state["ema"])
    for k in tensors:
        assert torch.equal(tensors[k], state["ema"][k])
    assert any(not torch.equal(state["ema"][k], state["generator"][k]) for k in tensors)  # really the EMA copy


def test_samples_from_export_and_run_dir_agree(ema_run, tmp_path, capsys):
    out = tmp_path / "g.safetensors"
    export_generator(ema_run, out)
    from_file, from_run = load_generator(out), load_generator(ema_run)
    assert from_file.weights == from_run.weights == "ema"
    a, b = from_file.sample(50, seed=7), from_run.sample(50, seed=7)
    assert a.shape == (50, 2) and torch.equal(a, b)
    # the same as running the training's own EMA generator on the same latents
    trainer = Trainer.load_run(ema_run)
    z = torch.randn(50, 2, generator=torch.Generator().manual_seed(7))
    assert torch.equal(trainer.generate(z=z), a)

    assert main(["sample", str(out), "--n", "50", "--seed", "7", "--out", str(tmp_path / "s.npy")]) == 0
    assert main(["sample", str(ema_run), "--n", "300", "--out", str(tmp_path / "s.png")]) == 0
    capsys.readouterr()
    assert np.array_equal(np.load(tmp_path / "s.npy"), a.numpy())
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_export_without_ema_uses_the_generator_and_defaults_beside_the_run(tmp_path, capsys):
    run = tmp_path / "run"
    Trainer(resolve({**TINY, "variant": "gan", "steps": 2, "tick_every_steps": 2}), run_dir=run).train()
    assert main(["export", str(run)]) == 0
    capsys.readouterr()
    path = run / "generator.safetensors"
    state = load_checkpoint(run / "checkpoints" / "latest.pt")
    g = load_generator(path)
    assert g.weights == "generator"
    for k, v in g.generator.state_dict().items():
        assert torch.equal(v, state["generator"][k])


def test_tampered_corrupt_or_foreign_files_are_refused(ema_run, tmp_path, capsys):
    out = tmp_path / "g.safetensors"
    export_generator(ema_run, out)
    blob = bytearray(out.read_bytes())
    blob[-3] ^= 0xFF  # one weight changed
    out.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="does not match its checksum file"):
        load_generator(out)
    assert main(["sample", str(out), "--out", str(tmp_path / "x.npy")]) == 2
    assert "checksum" in capsys.readouterr().err and not (tmp_path / "x.npy").exists()

    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{bad}")
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_generator(junk)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.ones(2)}, str(foreign), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not a wgan generator export"):
        load_generator(foreign)


def test_image_generator_export_and_grid(tmp_path, capsys):
    pytest.importorskip("wgan.plots.grid")
    pytest.importorskip("wgan.nets.conv")
    # a conv generator for 1x28x28 images, saved as a checkpoint would hold it (no image data needed)
    config = resolve({**TINY, "data": "npz:/nowhere/images.npz", "arch": "conv", "g_width": 8, "c_width": 8})
    gen = build_generator(config, (1, 28, 28), "conv")
    run = tmp_path / "img-run"
    save_checkpoint(run / "checkpoints" / "latest.pt",
                    {"config": dataclasses.asdict(config), "step": 0, "generator": gen.state_dict(), "ema": None,
                     "data_shape": [1, 28, 28], "arch": "conv"})
    out = tmp_path / "img.safetensors"
    assert main(["export", str(run), "--out", str(out)]) == 0
    assert main(["sample", str(out), "--n", "16", "--out", str(tmp_path / "grid.png")]) == 0
    assert main(["sample", str(out), "--n", "16", "--out", str(tmp_path / "x.npy")]) == 0
    capsys.readouterr()
    x = np.load(tmp_path / "x.npy")
    assert x.shape == (16, 1, 28, 28) and np.abs(x).max() <= 1.0
    from PIL import Image

    with Image.open(tmp_path / "grid.png") as im:
        assert im.width >= 4 * 28 and im.height >= 4 * 28
