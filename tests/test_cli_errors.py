"""Input validation: every bad config value, TOML file and output folder gets one line naming the
field, the value and what is accepted, exit status 2, no traceback (unless --debug), nothing written."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from wgan.cli import main
from wgan.config import TrainConfig, resolve, validate
from wgan.errors import ConfigError


def run_cli(argv, capsys):
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def assert_one_line_error(rc, out, err, *expected):
    assert rc == 2, (rc, out, err)
    assert err.startswith("wgan: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err + out
    for e in expected:
        assert e in err, f"{e!r} not in {err!r}"


# flag, value, what the message must contain (the field, the value, what is accepted)
BAD_FLAGS = [
    ("--gp-weight", "-1", ["--gp-weight must be >= 0", "-1"]),
    ("--n-critic", "0", ["--n-critic must be >= 1, got 0"]),
    ("--variant", "wgan-xx", ["--variant must be one of", "wgan-gp", "'wgan-xx'"]),
    ("--data", "ring9", ["--data must be one of", "ring8", "mnist:PATH", "'ring9'"]),
    ("--steps", "abc", ["--steps must be an integer, got 'abc'"]),
    ("--steps", "0", ["--steps must be >= 1, got 0"]),
    ("--batch-size", "2.5", ["--batch-size must be an integer, got '2.5'"]),
    ("--lr-g", "0", ["--lr-g must be > 0, got 0"]),
    ("--lr-c", "nan", ["--lr-c must be a finite number, got nan"]),
    ("--gp-weight", "inf", ["--gp-weight must be a finite number, got inf"]),
    ("--beta1", "1.5", ["--beta1 must be in [0, 1), got 1.5"]),
    ("--beta2", "-0.1", ["--beta2 must be in [0, 1), got -0.1"]),
    ("--ema-decay", "1", ["--ema-decay must be in [0, 1), got 1"]),
    ("--clip-value", "0", ["--clip-value must be > 0, got 0"]),
    ("--penalty-every", "0", ["--penalty-every must be >= 1, got 0"]),
    ("--tick-every-steps", "0", ["--tick-every-steps must be >= 1, got 0"]),
    ("--eval-samples", "5", ["--eval-samples must be >= 10, got 5"]),
    ("--keep-checkpoints", "-1", ["--keep-checkpoints must be >= 0, got -1"]),
    ("--threads", "-2", ["--threads must be >= 0", "got -2"]),
    ("--seed", "-1", ["--seed must be >= 0, got -1"]),
    ("--z-dim", "0", ["--z-dim must be >= 1, got 0"]),
    ("--g-width", "0", ["--g-width must be >= 1, got 0"]),
    ("--c-depth", "0", ["--c-depth must be >= 1, got 0"]),
    ("--activation", "gelu", ["--activation must be relu, leaky_relu, tanh or elu, got 'gelu'"]),
    ("--critic-norm", "group", ["--critic-norm must be none, layer or batch, got 'group'"]),
    ("--critic-norm", "batch", ["--critic-norm batch cannot be used with --variant wgan-gp", "layer"]),
    ("--arch", "resnet", ["--arch must be auto, mlp or conv, got 'resnet'"]),
    ("--optimizer", "sgd", ["--optimizer must be adam or rmsprop, got 'sgd'"]),
    ("--device", "tpu", ["--device must be auto, cpu, cuda or cuda:N, got 'tpu'"]),
    ("--on-nan", "ignore", ["--on-nan must be stop or rollback, got 'ignore'"]),
    ("--image-size", "30", ["--image-size must be 28, 32 or 64, got 30"]),
    ("--channels", "2", ["--channels must be 1 or 3, got 2"]),
    ("--classes", "a,b", ["--classes must be comma-separated label numbers", "'a,b'"]),
    ("--preset", "huge", ["--preset must be one of auto", "toy", "'huge'"]),
    ("--data-scale", "0", ["--data-scale must be > 0, got 0"]),
    ("--data-std", "-1", ["--data-std must be > 0, got -1"]),
    ("--variant", "", ["--variant must be one of"]),
]


@pytest.mark.parametrize("flag,value,expected", BAD_FLAGS, ids=[f"{f}={v}" for f, v, _ in BAD_FLAGS])
def test_bad_flag_value(tmp_path, capsys, flag, value, expected):
    out = tmp_path / "run"
    rc, stdout, err = run_cli(["train", f"{flag}={value}", "--out", str(out), "--quiet"], capsys)
    assert_one_line_error(rc, stdout, err, *expected)
    assert not out.exists()  # nothing written half-way


def test_weight_clipping_needs_its_bound(capsys):
    rc, out, err = run_cli(["train", "--variant", "wgan", "--clip-value", "none", "--dry-run"], capsys)
    assert_one_line_error(rc, out, err, "--clip-value must be set for --variant wgan")


def test_every_field_is_type_checked():
    """A library caller's TrainConfig with a wrong type in any field is refused, naming the field."""
    good = resolve({})
    for f in dataclasses.fields(TrainConfig):
        bad = dataclasses.replace(good, **{f.name: object()})
        with pytest.raises(ConfigError, match="--" + f.name.replace("_", "-")):
            validate(bad)


def test_usage_errors_are_one_line(capsys):
    assert_one_line_error(*run_cli(["train", "--bogus", "1"], capsys), "unrecognized arguments: --bogus")
    assert_one_line_error(*run_cli(["fly"], capsys), "invalid choice: 'fly'")
    assert_one_line_error(*run_cli(["train", "--steps"], capsys), "--steps", "expected one argument")


# ----------------------------------------------------------------------------- TOML files
BAD_TOML = [
    ("speed = 3\n", ["unknown key 'speed'", "accepted:", "n_critic"]),
    ('steps = "100"\n', ['steps = "100" has the wrong type: steps must be an integer, got a string']),
    ("n_critic = 2.5\n", ["n_critic = 2.5 has the wrong type: n_critic must be an integer, got a float"]),
    ("gp_one_sided = 1\n", ["gp_one_sided = 1 has the wrong type: gp_one_sided must be true or false"]),
    ("variant = 3\n", ["variant = 3 has the wrong type: variant must be a string, got an integer"]),
    ("lr_g = [0.1]\n", ["lr_g = [...] has the wrong type: lr_g must be a number, got an array"]),
    ("[model]\nwidth = 3\n", ["unknown key 'model'"]),
    ("steps = \n", ["is not valid TOML"]),
    ("n_critic = 0\n", ["--n-critic must be >= 1, got 0"]),
    ("gp_weight = -0.5\n", ["--gp-weight must be >= 0, got -0.5"]),
    ('[train]\nvariant = "wgan-xx"\n', ["--variant must be one of", "'wgan-xx'"]),
]


@pytest.mark.parametrize("text,expected", BAD_TOML, ids=[t.split("\n")[0] for t, _ in BAD_TOML])
def test_bad_toml_file(tmp_path, capsys, text, expected):
    path = tmp_path / "cfg.toml"
    path.write_text(text)
    rc, out, err = run_cli(["train", "--config", str(path), "--dry-run"], capsys)
    assert_one_line_error(rc, out, err, *expected)
    if "TOML" not in expected[0] and "--" not in expected[0]:
        assert str(path) in err  # a file error names the file


def test_good_toml_file_is_accepted(tmp_path, capsys):
    path = tmp_path / "cfg.toml"
    path.write_text('[train]\nvariant = "wgan"\nsteps = 7\nlr_g = 1\nclip_value = 0.02\nbeta1 = "none"\n')
    rc, out, err = run_cli(["train", "--config", str(path), "--dry-run"], capsys)
    assert rc == 0, err
    assert '"steps": 7' in out and '"lr_g": 1.0' in out and '"clip_value": 0.02' in out


def test_missing_toml_file(tmp_path, capsys):
    rc, out, err = run_cli(["train", "--config", str(tmp_path / "nope.toml")], capsys)
    assert_one_line_error(rc, out, err, "--config file not found", "nope.toml")


# ----------------------------------------------------------------------------- output folders
def test_out_folder_that_exists_and_is_not_a_run_is_refused(tmp_path, capsys):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"precious")
    rc, stdout, err = run_cli(["train", "--out", str(out), "--steps", "1", "--quiet"], capsys)
    assert_one_line_error(rc, stdout, err, f"--out '{out}' exists and is not a run; refusing to overwrite")
    assert sorted(p.name for p in out.iterdir()) == ["holiday.jpg"]

    as_file = tmp_path / "file.txt"
    as_file.write_text("x")
    rc, stdout, err = run_cli(["train", "--out", str(as_file), "--steps", "1", "--quiet"], capsys)
    assert_one_line_error(rc, stdout, err, "exists and is not a run")
    assert as_file.read_text() == "x"


def test_out_folder_that_is_a_run_points_to_resume(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "metrics.jsonl").write_text("")
    rc, stdout, err = run_cli(["train", "--out", str(run), "--steps", "1", "--quiet"], capsys)
    assert_one_line_error(rc, stdout, err, "exists and is a run", f"--resume {run}")


def test_resume_errors(tmp_path, capsys):
    assert_one_line_error(*run_cli(["train", "--resume", str(tmp_path / "nowhere")], capsys),
                          "no checkpoints/latest.pt")
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "checkpoints").mkdir()
    (tmp_path / "ck" / "checkpoints" / "latest.pt").write_bytes(b"\x00" * 100)
    assert_one_line_error(*run_cli(["train", "--resume", str(tmp_path / "ck")], capsys),
                          "is truncated or not a wgan checkpoint")


def test_sample_and_export_usage_errors(tmp_path, capsys):
    assert_one_line_error(*run_cli(["sample", str(tmp_path), "--out", "x.jpg"], capsys),
                          "--out must end in .png or .npy, got 'x.jpg'")
    assert_one_line_error(*run_cli(["sample", str(tmp_path), "--out", "x.npy", "--n", "0"], capsys),
                          "--n must be >= 1, got 0")
    assert_one_line_error(*run_cli(["sample", str(tmp_path / "none"), "--out", "x.npy"], capsys), "not found")
    assert_one_line_error(*run_cli(["export", str(tmp_path), "--out", "g.pt"], capsys),
                          "--out must name a .safetensors file")
    assert_one_line_error(*run_cli(["export", str(tmp_path)], capsys), "has no checkpoints/latest.pt")


# ----------------------------------------------------------------------------- a real process
@pytest.mark.slow  # a subprocess
def test_real_process_exit_status_and_debug_traceback(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "wgan"]
    res = subprocess.run([*cmd, "train", "--n-critic", "0"], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2
    assert res.stderr == "wgan: error: --n-critic must be >= 1, got 0\n" and res.stdout == ""
    res = subprocess.run([*cmd, "--debug", "train", "--n-critic", "0"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert res.returncode != 0
    assert "Traceback (most recent call last)" in res.stderr and "ConfigError" in res.stderr
