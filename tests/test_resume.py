"""Exact resume: N steps straight equal N/2 + stop + resume, bit for bit, for every variant; resume
refuses a changed model or data configuration; SIGINT and SIGTERM stop a real run with a checkpoint."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from wgan.cli import main
from wgan.config import ConfigError, resolve
from wgan.training.checkpoint import load_checkpoint
from wgan.training.trainer import Trainer
from wgan.variants import VARIANTS

TINY = dict(data="ring8", z_dim=2, g_width=16, g_depth=2, c_width=16, c_depth=1, batch_size=32,
            eval_samples=64, seed=3, threads=1, device="cpu")
TINY_FLAGS = ["--g-width", "16", "--g-depth", "2", "--c-width", "16", "--c-depth", "1", "--batch-size", "32",
              "--eval-samples", "64", "--seed", "3", "--threads", "1", "--device", "cpu", "--quiet"]


def tiny(**kw):
    return resolve({**TINY, **kw})


class SignalAt(Trainer):
    """Sends itself ``signal_at[1]`` right after generator step ``signal_at[0]`` (the real handler runs)."""

    signal_at: tuple[int, int] | None = None

    def train_step(self) -> None:
        super().train_step()
        if self.signal_at and self.step == self.signal_at[0]:
            os.kill(os.getpid(), self.signal_at[1])


def assert_identical(a, b, path="state"):
    """Exact equality of nested checkpoint states (tensors bit for bit)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, path
        assert torch.equal(a, b), f"{path} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys {sorted(set(a) ^ set(b))}"
        for k in a:
            assert_identical(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def comparable(state: dict) -> dict:
    """Everything in a checkpoint except the config (its ``steps`` may differ) and the save-time versions."""
    return {k: v for k, v in state.items() if k not in ("config", "versions", "format_version")}


CASES = [(v, {}) for v in VARIANTS] + [("wgan-gp", {"penalty_every": 2, "ema_decay": 0.0})]


@pytest.mark.parametrize("variant,extra", CASES, ids=[v + ("-lazy" if e else "") for v, e in CASES])
def test_straight_equals_stop_and_resume(tmp_path, variant, extra):
    cfg = tiny(variant=variant, steps=6, tick_every_steps=3, **{"ema_decay": 0.9, **extra})
    straight = Trainer(cfg, run_dir=tmp_path / "straight")
    straight.train()
    assert straight.step == 6

    # Stop with SIGINT after step 4, between ticks: the handler finishes the step and checkpoints.
    first = SignalAt(cfg, run_dir=tmp_path / "split")
    first.signal_at = (4, signal.SIGINT)
    summary = first.train()
    assert summary["stopped_by"] == "SIGINT" and first.step == 4
    assert load_checkpoint(tmp_path / "split" / "checkpoints" / "latest.pt")["step"] == 4

    resumed = Trainer.resume(tmp_path / "split")
    assert resumed.step == 4 and resumed.resume_changes == ()
    resumed.train()
    assert resumed.step == 6

    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "latest.pt")
    b = load_checkpoint(tmp_path / "split" / "checkpoints" / "latest.pt")
    assert a["gen_opt"]["state"] and a["critic_opt"]["state"]  # the optimiser state is really there
    assert_identical(comparable(a), comparable(b))
    assert_identical(comparable(straight.state_dict()), comparable(resumed.state_dict()))


@pytest.mark.slow  # trains for several seconds
def test_cli_resume_continues_exactly(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    common = ["train", "--variant", "wgan-gp", "--tick-every-steps", "3", *TINY_FLAGS]
    assert main([*common, "--steps", "6", "--out", str(a)]) == 0
    assert main([*common, "--steps", "3", "--out", str(b)]) == 0
    assert main(["train", "--resume", str(b), "--steps", "6", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"resuming {b} at step 3 of 6" in out and "with changes: steps 3 -> 6" in out
    sa = load_checkpoint(a / "checkpoints" / "latest.pt")
    sb = load_checkpoint(b / "checkpoints" / "latest.pt")
    assert_identical(comparable(sa), comparable(sb))
    assert sa["config"] == {**sb["config"], "out": str(a)}  # the resumed run now says steps = 6 too


# ----------------------------------------------------------------------------- refusing changes
@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("resume") / "run"
    Trainer(tiny(variant="wgan-gp", steps=2, tick_every_steps=2), run_dir=run).train()
    return run


def test_resume_refuses_model_and_data_changes_listing_each(small_run):
    with pytest.raises(ConfigError) as e:
        Trainer.resume(small_run, {"g_width": 32, "data": "grid25", "steps": 4})
    msg = str(e.value)
    assert "g-width 16 -> 32" in msg and "data 'ring8' -> 'grid25'" in msg and "--force" in msg
    assert "steps" not in msg  # a schedule change is not a model change


def test_resume_force_accepts_a_safe_change_and_refuses_an_impossible_one(small_run):
    t = Trainer.resume(small_run, {"data": "grid25", "lr_g": 3e-4}, force=True)
    assert t.config.data == "grid25" and t.data.name == "grid25"
    assert "data 'ring8' -> 'grid25'" in t.resume_changes
    assert t.evaluator.w1_floor is None  # measured again on the new data
    assert [g["lr"] for g in t.gen_opt.param_groups] == [3e-4]  # the override reaches the optimiser
    with pytest.raises(ConfigError, match=r"--force: the saved weights do not fit .*g-width 16 -> 32"):
        Trainer.resume(small_run, {"g_width": 32}, force=True)
    with pytest.raises(ConfigError, match="cannot change the optimiser"):
        Trainer.resume(small_run, {"optimizer": "rmsprop"}, force=True)


def test_resume_of_something_that_is_not_a_run(tmp_path):
    with pytest.raises(ConfigError, match="no checkpoints/latest.pt"):
        Trainer.resume(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="no checkpoint yet"):
        Trainer.resume(tmp_path)


# ----------------------------------------------------------------------------- real signals
@pytest.mark.slow  # a subprocess
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_a_checkpoint_and_exits_cleanly(tmp_path, sig):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "wgan", "train", "--variant", "gan", "--steps", "1000000",
           "--tick-every-steps", "25", *TINY_FLAGS, "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoints" / "latest.pt").exists():  # training is under way, handlers installed
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    name = signal.Signals(sig).name
    assert proc.returncode == 128 + sig, (stdout, stderr)
    assert "Traceback" not in stderr
    m = re.search(rf"wgan: {name} received; checkpoint saved at step (\d+), resume with: wgan train --resume",
                  stdout)
    assert m, stdout
    step = int(m.group(1))
    state = load_checkpoint(out / "checkpoints" / "latest.pt")
    assert state["step"] == step > 0
    # the stopped run continues from there
    t = Trainer.resume(out, {"steps": step + 2})
    assert t.step == step
    t.train()
    assert load_checkpoint(out / "checkpoints" / "latest.pt")["step"] == step + 2
