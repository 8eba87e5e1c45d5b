"""The trainer's public hooks (on_tick, should_stop, a time budget, one step), construction without
global side effects, the evaluators' registry and columns, and the seeds derived in one place."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from wgan.config import resolve
from wgan.metrics import EVALUATORS, Column, columns_for, evaluator_for, kind_of
from wgan.seeds import PURPOSES, derive_seed
from wgan.training.hooks import CALIBRATION_STEPS, TickSchedule
from wgan.training.summary import format_summary, progress_postfix
from wgan.training.trainer import Trainer

TINY = dict(data="ring8", z_dim=2, g_width=16, g_depth=2, c_width=16, c_depth=1, batch_size=32,
            eval_samples=64, seed=3, threads=1, device="cpu")


def tiny(**kw):
    return resolve({**TINY, **kw})


def test_construction_changes_no_global_state():
    torch.manual_seed(123)
    np.random.seed(5)
    random.seed(7)
    states = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    threads = torch.get_num_threads()
    a = Trainer(tiny(threads=threads + 1))
    assert torch.equal(states[0], torch.get_rng_state())
    assert np.array_equal(states[1], np.random.get_state()[1]) and states[2] == random.getstate()
    assert torch.get_num_threads() == threads
    # the initial weights depend on the seed alone, not on the process's random state
    torch.manual_seed(999)
    b = Trainer(tiny(threads=threads + 1))
    for (k, v), w in zip(a.generator.state_dict().items(), b.generator.state_dict().values()):
        assert torch.equal(v, w), k
    a.train(2)  # threads are the run's while it trains, the process's own after
    assert torch.get_num_threads() == threads


class Recorder:
    name = "recorder"

    def __init__(self, stop_at=None):
        self.records, self.stop_at = [], stop_at

    def on_tick(self, trainer, record):
        assert trainer.history[-1] is record
        self.records.append(record)

    def should_stop(self, trainer):
        return self.stop_at is not None and trainer.step >= self.stop_at


def test_hooks_see_every_tick_and_can_stop_with_a_final_tick():
    t = Trainer(tiny(steps=10, tick_every_steps=4))
    hook = Recorder(stop_at=6)
    t.add_hook(hook)
    summary = t.train()
    assert [r["step"] for r in hook.records] == [4, 6]  # the stop ends in a tick
    assert t.stopped_by == "recorder" == summary["stopped_by"] and t.step == 6
    for r in hook.records:
        assert r["time/step_ms"] > 0 and r["time/tick_s"] > 0
    hook.stop_at = None
    t.train(8)  # a later call runs on
    assert t.step == 8 and t.stopped_by is None and t.history[-1]["step"] == 8


def test_a_hook_with_only_one_method():
    class OnlyStop:
        def should_stop(self, trainer):
            return trainer.step == 3

    t = Trainer(tiny(steps=10, tick_every_steps=100))
    t.add_hook(OnlyStop())
    t.train()
    assert t.step == 3 and t.stopped_by == "OnlyStop" and [r["step"] for r in t.history] == [3]


def test_time_budget_with_ticks_at_even_marks_of_training_time():
    t = Trainer(tiny(steps=10**9, tick_every_steps=10**9))
    summary = t.train(time_budget_s=1.0, ticks=3)
    assert t.stopped_by == "time budget" == summary["stopped_by"]
    steps = [r["step"] for r in t.history]
    assert steps[0] == CALIBRATION_STEPS and steps[-1] == t.step and len(steps) <= 4
    train_s = sum(r["time/step_ms"] * (s - p) / 1000 for r, s, p in zip(t.history, steps, [0] + steps[:-1]))
    assert 1.0 <= train_s < 1.5  # training time alone (the ticks' evaluation excluded)


def test_ticks_spread_over_steps_and_the_schedule():
    t = Trainer(tiny(steps=12, tick_every_steps=100))
    t.train(ticks=3)
    assert [r["step"] for r in t.history] == [4, 8, 12]
    s = TickSchedule.plan(every=5, start=0, total=20, budget=None, ticks=None)
    assert [k for k in range(1, 21) if s.due(k, 0.0)] == [5, 10, 15, 20]
    s = TickSchedule.plan(every=5, start=0, total=10**9, budget=10.0, ticks=2)
    assert not s.due(1, 0.1) and s.due(CALIBRATION_STEPS, 0.2) and not s.due(21, 4.9)
    assert s.due(22, 7.0) and not s.due(23, 9.9) and s.due(24, 10.0)


def test_train_step_and_flush_stats_without_a_tick():
    t = Trainer(tiny(steps=10, tick_every_steps=5))
    t.train_step()
    t.train_step()
    stats = t.flush_stats()
    assert t.step == 2 and t.history == [] and math.isfinite(stats["critic/gap"])
    assert t.flush_stats() == {}  # the sums start again


# ------------------------------------------------------------------------------------------ evaluators
@pytest.mark.parametrize("kind", sorted(EVALUATORS))
def test_every_evaluator_describes_its_columns(kind):
    cls = EVALUATORS[kind]
    assert cls.kind == kind and cls.columns
    keys = [c.key for c in cls.columns]
    assert len(set(keys)) == len(keys)
    for c in cls.columns:
        assert isinstance(c, Column) and c.key.startswith("metrics/") and c.title and c.description
        assert c.better in ("lower", "higher", None)
        format(1.5, c.fmt)  # a valid format spec
        if c.floor_key:
            assert c.floor_key in cls.all_descriptions()
    assert columns_for(kind) == cls.columns


def test_toy_evaluator_and_the_summary_read_the_columns():
    config = tiny()
    t = Trainer(config)
    assert kind_of(t.data) == "toy" and kind_of("ring8") == "toy" and kind_of("mnist:/x") == "images"
    assert columns_for("image") == EVALUATORS["images"].columns  # the data sources' spelling
    ev = evaluator_for(t.data, config)
    out = ev.evaluate(t.generator)
    assert {c.key for c in ev.columns} <= set(out) and out["metrics/w1_floor"] == ev.w1_floor > 0
    assert ev.evaluate(t.generator) == out  # the same samples and data at every call
    record = {"step": 5, "critic/gap": 0.5, "lipschitz/penalty": 0.25, **out}
    text = format_summary({"variant": "wgan-gp", "data": "ring8", "run_dir": None, **record})
    assert f"  modes captured     {out['metrics/modes']} of 8  (" in text
    assert f"  exact W1 to data   {out['metrics/w1']:.4f}  (floor, data vs data: " in text
    assert progress_postfix(record, ev.columns).startswith("gap 0.5 pen 0.25 modes ")


def test_seeds_keep_the_streams_of_earlier_versions():
    assert derive_seed(3, "loop", rank=1) == 3 * 1_000_003 + 17 + 1
    assert derive_seed(3, "loop", rank=1, step=10) == 3 * 1_000_003 + 17 + 1 + 7919 * 10
    assert derive_seed(3, "diagnostics", step=4) == (3 * 1_000_003 + 4 * 7_919 + 0x5EED) % 2**63
    assert [derive_seed(3, p) for p in ("fixed_z", "eval_data", "w1_floor", "fd_floor", "eval_z")] == \
        [4, 24, 26, 32, 34]
    assert len({derive_seed(0, p) for p in PURPOSES}) == len(PURPOSES)
