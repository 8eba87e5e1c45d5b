"""Checkpoints: atomic writes that survive kill -9, the history kept, and loading that refuses
anything truncated, random or able to run code (nothing it holds is executed)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch

from wgan.cli import main
from wgan.io import atomic_write_bytes
from wgan.training import checkpoint as ckpt
from wgan.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, save_with_history


def _state(i: int) -> dict:
    return {"i": i, "w": torch.full((1000,), float(i)), "opt": {"m": torch.arange(5) * i}}


class Evil:
    """Unpickling this runs code: it creates ``marker`` (harmless, but proof that code ran)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


# ----------------------------------------------------------------------------- writing
def test_save_load_roundtrip_has_format_and_software_versions(tmp_path):
    save_checkpoint(tmp_path / "a.pt", _state(3))
    s = load_checkpoint(tmp_path / "a.pt")
    assert s["i"] == 3 and torch.equal(s["w"], torch.full((1000,), 3.0))
    assert s["format_version"] == ckpt.FORMAT_VERSION
    assert s["versions"]["torch"] == str(torch.__version__) and set(s["versions"]) >= {"wgan", "numpy", "python"}
    assert all(type(v) is str for v in s["versions"].values())  # plain str: loadable with weights_only


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "latest.pt"
    save_checkpoint(target, _state(1))
    before = target.read_bytes()

    def broken(f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full (simulated)")

    with pytest.raises(OSError, match="simulated"):
        atomic_write_bytes(target, broken)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.pt"]


def test_history_keeps_last_k_plus_latest(tmp_path):
    d = tmp_path / "checkpoints"
    for step in range(1, 6):
        save_with_history(d, _state(step), step, keep=2)
    assert sorted(p.name for p in d.iterdir()) == ["latest.pt", "step-0000004.pt", "step-0000005.pt"]
    assert load_checkpoint(d / "latest.pt")["i"] == 5
    # the numbered files keep their own content after latest.pt is replaced
    assert load_checkpoint(d / "step-0000004.pt")["i"] == 4
    assert load_checkpoint(d / "step-0000005.pt")["i"] == 5

    d0 = tmp_path / "only-latest"
    for step in range(1, 4):
        save_with_history(d0, _state(step), step, keep=0)
    assert [p.name for p in d0.iterdir()] == ["latest.pt"]


def test_history_replaces_a_stale_file_of_the_same_step_and_removes_orphan_temps(tmp_path):
    d = tmp_path / "checkpoints"
    save_with_history(d, _state(7), 10, keep=3)
    orphan = d / ".latest.pt.abc123.tmp"  # what kill -9 between mkstemp and rename leaves
    orphan.write_bytes(b"torn")
    save_with_history(d, _state(8), 10, keep=3)  # the same step again, other content (after a rollback)
    assert not orphan.exists()
    assert load_checkpoint(d / "step-0000010.pt")["i"] == 8


# ----------------------------------------------------------------------------- refusing bad files
def test_refuses_truncated_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "good.pt", _state(2))
    blob = (tmp_path / "good.pt").read_bytes()
    for cut in (len(blob) // 2, len(blob) - 1, 10):
        (tmp_path / "cut.pt").write_bytes(blob[:cut])
        with pytest.raises(CheckpointError, match="truncated or not a wgan checkpoint"):
            load_checkpoint(tmp_path / "cut.pt")


def test_refuses_random_bytes_and_empty_files(tmp_path):
    (tmp_path / "random.pt").write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="truncated or not a wgan checkpoint"):
        load_checkpoint(tmp_path / "random.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(tmp_path / "empty.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_refuses_a_pickle_that_would_run_code_and_runs_nothing(tmp_path):
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.pt"
    torch.save({"format_version": ckpt.FORMAT_VERSION, "generator": Evil(marker)}, evil)
    # the file is really dangerous: full unpickling runs the payload ...
    torch.load(evil, weights_only=False)
    assert marker.exists()
    marker.unlink()
    # ... and load_checkpoint refuses it without running anything
    with pytest.raises(CheckpointError, match=r"refusing checkpoint .*exec"):
        load_checkpoint(evil)
    assert not marker.exists()
    # a bare pickle (not a torch zip) with the same payload
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(Evil(marker)))
    with pytest.raises(CheckpointError):
        load_checkpoint(raw)
    assert not marker.exists()


def test_refuses_other_formats(tmp_path):
    torch.save({"format_version": 99, "x": torch.ones(2)}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="format 99"):
        load_checkpoint(tmp_path / "future.pt")
    torch.save([torch.ones(2)], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="no format_version"):
        load_checkpoint(tmp_path / "list.pt")
    with zipfile.ZipFile(tmp_path / "zip.pt", "w") as z:  # a zip, but no checkpoint inside
        z.writestr("hello.txt", "hi")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "zip.pt")


def test_cli_resume_and_sample_refuse_an_unsafe_checkpoint_in_one_line(tmp_path, capsys):
    marker = tmp_path / "marker"
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    torch.save({"format_version": ckpt.FORMAT_VERSION, "config": Evil(marker)}, run / "checkpoints" / "latest.pt")
    for argv in (["train", "--resume", str(run), "--quiet"], ["sample", str(run), "--out", str(tmp_path / "x.npy")],
                 ["export", str(run), "--out", str(tmp_path / "g.safetensors")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("wgan: error: refusing checkpoint"), err
    assert not marker.exists()
    assert not (tmp_path / "x.npy").exists() and not (tmp_path / "g.safetensors").exists()


# ----------------------------------------------------------------------------- kill -9
HARNESS = textwrap.dedent(r"""
    import json, os, random, signal, sys, time
    import torch
    torch.set_num_threads(1)  # no thread pool: fork below is safe
    from wgan.training import checkpoint as ckpt

    folder, kills, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rnd = random.Random(seed)

    def state(i):  # ~2 MB, so a kill often lands inside a write
        return {"i": i, "w": torch.full((500_000,), float(i)), "opt": {"m": torch.full((100,), -float(i))}}

    ckpt.save_with_history(folder, state(0), 0, keep=2)
    t0 = time.perf_counter()
    for j in range(1, 4):
        ckpt.save_with_history(folder, state(j), j, keep=2)
    write_s = (time.perf_counter() - t0) / 3
    last, out = 3, []
    for k in range(kills):
        pid = os.fork()
        if pid == 0:  # the child writes checkpoints in a loop until it is killed
            i = last
            while True:
                i += 1
                ckpt.save_with_history(folder, state(i), i, keep=2)
        time.sleep(rnd.uniform(0.0, 3.0 * write_s))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        names = os.listdir(folder)
        rec = {"temps": sum(n.endswith(".tmp") for n in names)}
        try:
            s = ckpt.load_checkpoint(os.path.join(folder, "latest.pt"))
            rec["i"] = s["i"]
            rec["consistent"] = bool((s["w"] == s["i"]).all() and (s["opt"]["m"] == -s["i"]).all())
            rec["numbered_ok"] = all(ckpt.load_checkpoint(os.path.join(folder, n))["i"] == int(n[5:12])
                                     for n in names if n.startswith("step-") and n.endswith(".pt"))
            last = s["i"]
        except Exception as e:
            rec["error"] = f"{type(e).__name__}: {e}"
        out.append(rec)
    ckpt.save_with_history(folder, state(last + 1), last + 1, keep=2)  # a later write cleans the orphans
    print(json.dumps({"write_s": write_s, "kills": out,
                      "temps_after": sum(n.endswith(".tmp") for n in os.listdir(folder))}))
""")


@pytest.mark.slow  # subprocesses killed at random moments
def test_sigkill_at_random_moments_never_leaves_a_torn_latest(tmp_path):
    folder = tmp_path / "checkpoints"
    kills = 40
    res = subprocess.run([sys.executable, "-c", HARNESS, str(folder), str(kills), "1234"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout.strip().splitlines()[-1])
    records = report["kills"]
    assert len(records) == kills
    errors = [r["error"] for r in records if "error" in r]
    assert not errors, errors
    assert all(r["consistent"] and r["numbered_ok"] for r in records)
    steps = [r["i"] for r in records]
    assert steps == sorted(steps), "latest.pt went back in time"
    assert steps[-1] > 3, "the children never completed a write"
    # not vacuous: some kills landed inside a write (they left a temporary file behind)
    assert sum(r["temps"] > 0 for r in records) >= 1
    assert report["temps_after"] == 0
