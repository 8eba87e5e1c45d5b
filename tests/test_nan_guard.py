"""Divergence guard: a loss or gradient made NaN on purpose stops the run with a message naming the
step and the term, writes diverged.json and keeps the last good checkpoint; --on-nan rollback
reloads it with halved learning rates, a limited number of times; no host sync per step."""

from __future__ import annotations

import json
import math

import pytest
import torch

import wgan.data
from wgan.cli import main
from wgan.config import resolve
from wgan.training.checkpoint import load_checkpoint
from wgan.training.trainer import MAX_ROLLBACKS, Trainer, TrainingDiverged

TINY = dict(data="ring8", z_dim=2, g_width=16, g_depth=2, c_width=16, c_depth=1, batch_size=32,
            eval_samples=64, seed=3, threads=1, device="cpu")


def poison_data(trainer: Trainer, bad_steps, once: bool = False) -> None:
    """Real batches become NaN during the generator steps in ``bad_steps`` (1-based); with ``once``,
    only the first time each of those steps runs (a rollback runs it again).

    The original sampler still runs, so the random streams are consumed as usual.
    """
    orig = trainer.data.sampler
    done: set[int] = set()
    draws: dict[int, int] = {}  # real batches drawn in each bad step so far

    def sampler(n, rng):
        x = orig(n, rng)
        step = trainer.step + 1
        if step in bad_steps and not (once and step in done):
            draws[step] = draws.get(step, 0) + 1
            if once and draws[step] == trainer.config.n_critic:
                done.add(step)  # the step's last critic batch: the next pass through it is clean
            return x * float("nan")
        return x

    trainer.data.sampler = sampler


def finite_state(state) -> bool:
    return all(torch.isfinite(v).all() for k in ("generator", "critic") for v in state[k].values()
               if v.is_floating_point())


def test_nan_loss_stops_with_step_and_term_and_keeps_last_good_checkpoint(tmp_path):
    run = tmp_path / "run"
    t = Trainer(resolve({**TINY, "variant": "wgan-gp", "steps": 20, "tick_every_steps": 5}), run_dir=run)
    poison_data(t, range(7, 100))
    with pytest.raises(TrainingDiverged) as e:
        t.train()
    msg = str(e.value)
    assert msg.startswith("training diverged at step 7: loss/critic became NaN")
    assert "lipschitz/penalty" in msg and "\n" not in msg
    assert f"the last good checkpoint (step 5) is {run / 'checkpoints' / 'latest.pt'}" in msg
    assert f"details in {run / 'diverged.json'}" in msg

    record = json.loads((run / "diverged.json").read_text())
    assert record["step"] == 7 and record["action"] == "stop" and record["message"] == msg
    assert record["terms"]["loss/critic"] == "nan" and record["first_bad_step"]["loss/critic"] == 7
    assert record["last_good_checkpoint"]["step"] == 5 and record["between_steps"] == [6, 10]
    assert record["config"]["variant"] == "wgan-gp" and "torch" in record["versions"]

    state = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert state["step"] == 5 and finite_state(state)
    assert not (run / "checkpoints" / "step-0000010.pt").exists()
    steps_logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps_logged == [5]


def test_nan_gradient_with_finite_losses_is_caught_before_the_checkpoint(tmp_path):
    run = tmp_path / "run"
    t = Trainer(resolve({**TINY, "variant": "gan", "steps": 20, "tick_every_steps": 5}), run_dir=run)
    p = next(t.generator.parameters())
    # the generator's gradient (not its loss) becomes NaN in step 10, the last step before a tick
    p.register_hook(lambda g: g * float("nan") if t.step + 1 == 10 else g)
    with pytest.raises(TrainingDiverged) as e:
        t.train()
    msg = str(e.value)
    assert msg.startswith("training diverged at step 10: a gradient became NaN or Inf")
    assert "generator.net.0.weight" in msg and "(step 5)" in msg
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["step"] == 5
    assert json.loads((run / "diverged.json").read_text())["nonfinite_parameters"][0] == "generator.net.0.weight"


def test_rollback_reloads_the_last_good_state_with_halved_learning_rates(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = resolve({**TINY, "variant": "wgan-gp", "steps": 15, "tick_every_steps": 5, "on_nan": "rollback"})
    t = Trainer(cfg, run_dir=run)
    poison_data(t, {7}, once=True)  # bad batches; the second pass through step 7 is clean
    t.train()
    assert t.step == 15 and t.rollbacks == 1
    assert t.config.lr_g == cfg.lr_g / 2 and t.config.lr_c == cfg.lr_c / 2
    assert [g["lr"] for g in t.gen_opt.param_groups] == [cfg.lr_g / 2]
    assert [g["lr"] for g in t.critic_opt.param_groups] == [cfg.lr_c / 2]
    err = capsys.readouterr().err
    assert "wgan: warning: training diverged at step 7: loss/critic became NaN" in err
    assert f"rolled back to step 5 and halved the learning rates (lr-g {cfg.lr_g:g} -> {cfg.lr_g / 2:g}" in err
    record = json.loads((run / "diverged.json").read_text())
    assert record["action"] == "rollback" and record["rolled_back_to_step"] == 5
    state = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert state["step"] == 15 and state["rollbacks"] == 1 and finite_state(state)
    assert state["config"]["lr_g"] == cfg.lr_g / 2  # a resume keeps the lowered rate
    assert Trainer.resume(run).gen_opt.param_groups[0]["lr"] == cfg.lr_g / 2


def test_rollback_gives_up_after_the_limit(tmp_path):
    run = tmp_path / "run"
    cfg = resolve({**TINY, "variant": "gan", "steps": 15, "tick_every_steps": 5, "on_nan": "rollback"})
    t = Trainer(cfg, run_dir=run)
    poison_data(t, range(7, 100))  # always bad from step 7: no learning rate helps
    with pytest.raises(TrainingDiverged) as e:
        t.train()
    assert f"gave up after {MAX_ROLLBACKS} rollbacks" in str(e.value)
    assert t.rollbacks == MAX_ROLLBACKS
    assert math.isclose(t.config.lr_g, cfg.lr_g / 2 ** MAX_ROLLBACKS)
    record = json.loads((run / "diverged.json").read_text())
    assert [ev["action"] for ev in record["events"]] == ["rollback"] * MAX_ROLLBACKS + ["stop"]
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["step"] == 5


def test_rollback_before_the_first_checkpoint_and_without_a_run_dir():
    t = Trainer(resolve({**TINY, "variant": "gan", "steps": 6, "tick_every_steps": 5, "on_nan": "rollback"}))
    poison_data(t, {2}, once=True)
    t.train()
    assert t.step == 6 and t.rollbacks == 1


def test_cli_prints_the_divergence_as_one_line_and_exits_1(tmp_path, monkeypatch, capsys):
    def nan_ring(config):
        src = wgan.data.TOY["ring8"](config)
        orig, calls = src.sampler, [0]

        def sampler(n, rng):
            calls[0] += 1
            x = orig(n, rng)
            return x * float("nan") if calls[0] > 8 else x

        src.sampler = sampler
        return src

    monkeypatch.setitem(wgan.data.TOY, "nanring", nan_ring)
    run = tmp_path / "run"
    rc = main(["train", "--data", "nanring", "--variant", "gan", "--steps", "20", "--tick-every-steps", "50",
               "--g-width", "16", "--c-width", "16", "--batch-size", "32", "--eval-samples", "64", "--quiet",
               "--out", str(run)])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.count("\n") == 1 and err.startswith("wgan: error: training diverged at step "), err
    assert "became NaN" in err and "no checkpoint had been written yet" in err and "Traceback" not in err
    assert (run / "diverged.json").is_file()


def test_no_host_sync_in_the_training_step(monkeypatch):
    """The guard tracks the first bad step on the device: a generator step reads nothing back."""
    t = Trainer(resolve({**TINY, "variant": "wgan-gp", "steps": 10, "tick_every_steps": 10}))
    t.train_step()  # the first step of a tick builds the tracker
    calls = []
    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__"):
        orig = getattr(torch.Tensor, name)

        def spy(self, *a, _orig=orig, _name=name, **k):
            calls.append(_name)
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, spy)
    for _ in range(3):
        t.train_step()
    monkeypatch.undo()
    assert calls == []
    assert t.guard.first_bad is not None and t.guard.keys[0] == "loss/critic"
