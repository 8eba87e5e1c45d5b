"""`wgan compare`: same data, seeds and budget for every variant; the table, CSV, figure and report;
a failing variant recorded with its reason while the others go on.

Independent answers: the modes captured and % high quality in the table are recomputed here with
numpy from the saved final samples and the ring's geometry; the mean ± std aggregation is checked
on hand-made runs; the time budget is driven by a fake clock that gives every training step a known cost.
"""

from __future__ import annotations

import csv
import io
import math
import time
import types

import numpy as np
import pytest

from wgan.cli import main
from wgan.compare import CompareResult, RunResult, compare, load_compare, w_estimate_correlation
from wgan.metrics import columns_for
from wgan.training import trainer as trainer_module
from wgan.training.trainer import CALIBRATION_STEPS, Trainer
from wgan.variants import VARIANTS, Variant

OVERRIDES = {"data_std": 0.5, "eval_samples": 500}  # wide modes: non-trivial metrics after 20 steps; fast W1


@pytest.fixture
def exploding(monkeypatch):
    """A recipe that must diverge: no Lipschitz constraint and an absurd Adam step (weights ~1e30)."""
    monkeypatch.setitem(VARIANTS, "exploding", Variant("exploding", "wasserstein", "none", 1, "adam", 1e30,
                                                        (0.5, 0.9), "a deliberately failing recipe"))
    return "exploding"


def ring_metrics(x: np.ndarray, radius: float = 2.0, std: float = 0.5) -> tuple[int, float]:
    """Modes captured and % high quality (VEEGAN protocol) for the 8-Gaussian ring, in plain numpy."""
    angles = np.arange(8) * 2 * np.pi / 8
    centers = radius * np.stack([np.cos(angles), np.sin(angles)], 1)
    d = np.linalg.norm(x[:, None, :] - centers[None, :, :], axis=2)
    nearest, dist = d.argmin(1), d.min(1)
    hq = dist < 3 * std
    return len(set(nearest[hq].tolist())), 100.0 * hq.mean()


@pytest.mark.slow  # trains for several seconds
def test_tiny_compare_writes_everything_and_records_the_failure(tmp_path, exploding):
    out = tmp_path / "cmp"
    lines: list[str] = []
    result = compare("ring8", ["wgan-gp", exploding, "sngan"], seeds=1, steps=20, ticks=2, out=out,
                     overrides=OVERRIDES, log=lines.append)

    # every variant ran, in order; the failure did not stop the ones after it
    assert [r.variant for r in result.runs] == ["wgan-gp", "exploding", "sngan"]
    ok = {r.variant: r for r in result.runs if r.ok}
    assert set(ok) == {"wgan-gp", "sngan"}
    assert all(r.steps == 20 for r in ok.values())
    bad = result.runs_of("exploding")[0]
    assert not bad.ok and "TrainingDiverged" in bad.error and ("NaN" in bad.error or "Inf" in bad.error)
    assert len(lines) == 3 and "FAILED" in lines[1]

    # same data and seed: every run saw the same evaluation set-up
    for name in ("wgan-gp", "sngan"):
        cfg = result.setup[name]
        assert (cfg["seed"], cfg["data"], cfg["data_std"], cfg["eval_samples"], cfg["preset"], cfg["threads"]) == \
               (0, "ring8", 0.5, 500, "veegan", 1)  # one thread each: equal compute

    # the files
    for name in ("table.md", "table.csv", "runs.csv", "results.json", "compare.png", "report.html"):
        assert (out / name).is_file(), name
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "table.md").read_text()
    assert "| wgan-gp | wasserstein + gp | 5 | 1/1 |" in md and "| exploding | wasserstein + none | 1 | 0/1 |" in md
    assert "Failed runs" in md and "`exploding` seed 0: TrainingDiverged" in md
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "TrainingDiverged" in html and "<table>" in html

    rows = {r["variant"]: r for r in csv.DictReader(io.StringIO((out / "table.csv").read_text()))}
    assert rows["exploding"]["runs_ok"] == "0" and "diverged" in rows["exploding"]["failures"]
    assert rows["exploding"]["metrics_modes_mean"] == ""  # no successful run: no number, not a zero

    # the table reports the final samples' metrics: recompute them independently from the saved samples
    runs = {r["variant"]: r for r in csv.DictReader(io.StringIO((out / "runs.csv").read_text()))}
    for name in ("wgan-gp", "sngan"):
        x = np.load(out / "runs" / f"{name}-s0" / "final_samples.npy")
        assert x.shape == (500, 2)
        modes, hq = ring_metrics(x)
        assert float(rows[name]["metrics_modes_mean"]) == modes
        assert float(runs[name]["metrics_high_quality_pct"]) == pytest.approx(hq, abs=1e-9)
        assert float(rows[name]["step_ms_mean"]) > 0
        assert float(rows[name]["steps_mean"]) == 20
        assert runs[name]["health"] and runs[name]["health"] == result.runs_of(name)[0].verdict["status"]
    # the diagnostics columns are filled for the variants that ran
    assert float(rows["wgan-gp"]["grad_norm_mean_mean"]) > 0
    assert float(rows["sngan"]["lipschitz_empirical_mean"]) > 0

    # the folder alone is enough to render the same table again (no training)
    again = load_compare(out)
    assert again.markdown() == result.markdown() and again.csv() == result.csv()


def test_unknown_variant_and_bad_budget_are_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="unknown variant"):
        compare("ring8", ["wgan-gp", "wgan-typo"], seeds=1, steps=2)
    with pytest.raises(ValueError, match="not both"):
        compare("ring8", ["wgan-gp"], seeds=1, steps=2, seconds=1.0)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ValueError, match="not an empty folder"):
        compare("ring8", ["wgan-gp"], seeds=1, steps=2, out=tmp_path / "full")


def test_mean_and_sample_std_over_seeds_skip_failed_runs():
    def run(seed, modes, ok=True):
        return RunResult("wgan-gp", seed, ok=ok, error=None if ok else "boom", steps=100, step_ms=2.0,
                         final={"metrics/modes": modes, "metrics/modes_total": 8})

    result = CompareResult("ring8", ["wgan-gp"], [0, 1, 2, 3], {"steps": 100, "ticks": 2},
                           [run(0, 6), run(1, 7), run(2, 8), run(3, 1, ok=False)])
    row = result.rows()[0]
    mean, std, n = row["metrics/modes"]
    assert (mean, n) == (7.0, 3) and std == pytest.approx(1.0)  # sample std of 6, 7, 8
    assert row["runs"] == "3/4" and row["failed"] == [(3, "boom")]
    assert "| 7.0 ± 1.0 |" in result.markdown()


def test_w_estimate_correlation_leaves_out_the_first_evaluation():
    # a critic that tracks W1 exactly, except at the first evaluation (untrained: gap 0 while W1 is largest)
    w1 = [2.0, 1.5, 1.0, 0.8, 0.6]
    history = [{"step": i, "critic/gap": 0.0 if i == 0 else 3 * w, "metrics/w1": w} for i, w in enumerate(w1)]
    assert w_estimate_correlation(history) == pytest.approx(1.0)
    assert math.isnan(w_estimate_correlation(history[:3]))  # too few points after the first
    assert math.isnan(w_estimate_correlation([{"critic/gap": 1.0} for _ in range(6)]))  # no exact W1


@pytest.fixture
def step_clock(monkeypatch):
    """The trainer's clock made of its training steps alone: each costs exactly 1/256 s, evaluation nothing."""
    now = [0.0]
    clock = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if not k.startswith("_")})
    clock.perf_counter = lambda: now[0]
    monkeypatch.setattr(trainer_module, "time", clock)
    step = Trainer.train_step

    def timed_step(self):
        step(self)
        now[0] += 1 / 256  # exact in binary: the marks are hit exactly

    monkeypatch.setattr(Trainer, "train_step", timed_step)
    return 1000 / 256  # ms per step


def test_time_budget_places_ticks_at_even_marks(step_clock, tmp_path):
    result = compare("ring8", ["sngan"], seeds=1, seconds=2.0, ticks=4, overrides=OVERRIDES, out=tmp_path / "c")
    (run,) = result.runs
    assert run.ok and run.stopped_by is None, run.error  # the budget ending a run is its normal end
    # 2 s at 1/256 s per step = 512 steps: a first tick after the calibration steps, then at 0.5, 1.0,
    # 1.5 and 2.0 s of training (128, 256, 384, 512 steps)
    assert [r["step"] for r in run.history] == [CALIBRATION_STEPS, 128, 256, 384, 512]
    assert run.steps == 512 and run.train_seconds == 2.0 and run.step_ms == step_clock
    assert f"5 evaluations (after the first {CALIBRATION_STEPS} steps, then 4 evenly spaced" in result.markdown()


def test_cli_compare_tiny_and_its_errors(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["compare", "--data", "ring8", "--variants", "sngan", "--seeds", "1", "--steps", "4",
                 "--ticks", "1", "--eval-samples", "100", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| sngan | hinge + sn | 1 | 1/1 | 4 |" in printed
    assert (out / "table.md").is_file() and (out / "compare.png").is_file()
    (out / "table.md").unlink()
    assert main(["compare", "--rebuild", str(out)]) == 0
    assert "| sngan | hinge + sn | 1 | 1/1 | 4 |" in (out / "table.md").read_text()
    capsys.readouterr()
    for argv, expected in [
        (["--variants", "gan,wgan-typo"], "--variants must be"),
        (["--steps", "0"], "--steps must be >= 1"),
        (["--seeds", "two"], "--seeds must be"),
        (["--steps", "5", "--seconds", "3"], "not allowed with"),
        (["--out", str(out)], "not an empty folder"),
        (["--data", "ring9"], "--data must be one of"),
        (["--gp-weight", "-1"], "--gp-weight must be >= 0"),
        (["--rebuild", str(tmp_path)], "no results.json"),
    ]:
        assert main(["compare", *argv]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], (argv, err)


@pytest.mark.slow  # trains for several seconds
def test_compare_on_images_plots_the_classifier_fd(tmp_path, monkeypatch):
    """On images there is no exact W1: the table carries the classifier metrics and the figure's lower
    panels the classifier FD of each evaluation, with its floor."""
    import wgan.plots.compare as plots

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 240)
    x = np.zeros((240, 28, 28), np.uint8)
    for i, k in enumerate(labels):  # a bar at one of three heights: three easy classes
        x[i, 4 + 7 * k:10 + 7 * k, 6:22] = 255
    np.savez(tmp_path / "bars.npz", x=x, y=labels)
    seen = {}
    original = plots.compare_png
    monkeypatch.setattr(plots, "compare_png", lambda panels, **kw: seen.update(panels=panels, **kw) or original(
        panels, **kw))
    result = compare(f"npz:{tmp_path / 'bars.npz'}", ["wgan-gp", "gan"], seeds=1, steps=4, ticks=2,
                     out=tmp_path / "cmp", log=lambda _: None,
                     overrides={"g_width": 8, "c_width": 8, "z_dim": 8, "batch_size": 16, "eval_samples": 64})
    assert all(r.ok for r in result.runs), [r.error for r in result.runs]
    for name in ("table.md", "table.csv", "compare.png", "report.html"):
        assert (tmp_path / "cmp" / name).stat().st_size > 0
    table = (tmp_path / "cmp" / "table.md").read_text()
    assert all(f" {c.title} |" in table for c in columns_for("images"))  # the evaluator's columns, in its words
    assert seen["distance_label"] == "classifier FD"
    fd = {r.variant: [rec["metrics/classifier_fd"] for rec in r.history] for r in result.runs}
    for panel in seen["panels"]:
        (curve,) = panel["curves"]
        assert curve["distance"] == fd[panel["variant"]] and len(curve["distance"]) == 2
        assert panel["samples"].shape[1:] == (1, 28, 28)
    assert seen["floor"] == result.runs[-1].history[-1]["metrics/classifier_fd_floor"]
