"""Multi-process training (torch.distributed, gloo, 2 processes on the CPU) against the independent
answer: one process on the concatenated global batch.

Each rank gets one half of an explicitly built global batch (data, noise and interpolation
coefficients), so averaging the ranks' gradients must give exactly the single-process gradient.
Ranks are spawned with torch.multiprocessing and meet on a free port of 127.0.0.1; the stop/resume
test launches ``python -m torch.distributed.run`` (torchrun) on the real command line.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from wgan.config import resolve
from wgan.lipschitz.gradient_penalty import GradientPenalty
from wgan.nets.mlp import MLPCritic, MLPGenerator
from wgan.objectives import get_objective
from wgan.training.distributed import Comm, TorchComm, get_comm
from wgan.training.steps import critic_step, generator_step
from wgan.training.trainer import Trainer

WORLD = 2
N = 8  # per-rank batch; the global batch is WORLD x N
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _child_env(monkeypatch):
    # spawned ranks inherit the environment: one thread each, loopback only
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    if Path("/sys/class/net/lo").exists():
        monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, port: int, fn, args) -> None:
    torch.set_num_threads(1)
    comm = TorchComm(rank, WORLD, init_method=f"tcp://127.0.0.1:{port}", timeout_s=60)
    try:
        fn(comm, *args)
    except BaseException:
        comm.close(wait=False)
        raise
    comm.close()


def spawn(fn, *args) -> None:
    """Run ``fn(comm, *args)`` in WORLD processes; an exception in any of them fails the test."""
    mp.spawn(_entry, args=(_free_port(), fn, args), nprocs=WORLD, join=True)


def _half(t: torch.Tensor, rank: int) -> torch.Tensor:
    return t[rank * N:(rank + 1) * N]


def _alpha_rng(seed: int, rank: int) -> torch.Generator:
    """Rank r's generator yields coefficients r*N .. (r+1)*N-1 of the global stream ``seed``."""
    g = torch.Generator().manual_seed(seed)
    if rank:
        torch.rand((rank * N, 1), generator=g, dtype=torch.float64)  # skip the other ranks' share
    return g


def test_alpha_streams_are_halves_of_the_global_stream():
    # The precondition of the critic-step tests: interpolate() draws one coefficient per sample in
    # order, so the single process on 2N rows sees rank 0's N coefficients, then rank 1's.
    whole = torch.rand((WORLD * N, 1), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    parts = [torch.rand((N, 1), generator=_alpha_rng(5, r), dtype=torch.float64) for r in range(WORLD)]
    torch.testing.assert_close(torch.cat(parts), whole, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------
# one critic step with the gradient penalty; the penalty alone (lazy regularisation)

def _tiny_nets():
    torch.manual_seed(0)
    critic = MLPCritic(2, width=16, depth=2).double()
    generator = MLPGenerator(2, (2,), width=16, depth=2).double()
    return critic, generator


def _global_batch():
    g = torch.Generator().manual_seed(1)
    x_real = torch.randn(WORLD * N, 2, generator=g, dtype=torch.float64) * 2
    z = torch.randn(WORLD * N, 2, generator=g, dtype=torch.float64)
    return x_real, z


def _critic_grads(comm: Comm, rank: int, world: int, fast: bool) -> dict[str, torch.Tensor]:
    critic, generator = _tiny_nets()
    x_real, z = _global_batch()
    if world > 1:
        x_real, z = _half(x_real, rank), _half(z, rank)
    opt = torch.optim.SGD(critic.parameters(), lr=0.0)  # lr 0: the step leaves the gradients to compare
    critic_step(critic, generator, opt, get_objective("wasserstein"), GradientPenalty(10.0, fast=fast), comm,
                x_real, z, _alpha_rng(7, rank) if world > 1 else _alpha_rng(7, 0), apply_penalty=True)
    return {n: p.grad.clone() for n, p in critic.named_parameters()}


def _penalty_grads(comm: Comm, rank: int, world: int, fast: bool) -> dict[str, torch.Tensor]:
    critic, generator = _tiny_nets()
    x_real, z = _global_batch()
    alpha = torch.rand(WORLD * N, 1, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    if world > 1:
        x_real, z, alpha = _half(x_real, rank), _half(z, rank), _half(alpha, rank)
    with torch.no_grad():
        x_fake = generator(z)
    x_hat = torch.lerp(x_fake, x_real, alpha)
    lazy = GradientPenalty(10.0, interval=4, fast=fast)  # applied every 4th critic step with gain 4
    critic.zero_grad(set_to_none=True)
    term, _ = lazy.penalty(critic, x_real, x_fake, x_hat)
    term.backward()
    comm.all_reduce_grads(critic.parameters())
    # the last bias does not move the input gradient: no gradient (None) on every rank, kept None
    return {n: None if p.grad is None else p.grad.clone() for n, p in critic.named_parameters()}


def _grads_worker(comm: TorchComm, out: str) -> None:
    result = {f"{kind}-{fast}": fn(comm, comm.rank, WORLD, fast)
              for kind, fn in (("step", _critic_grads), ("penalty", _penalty_grads)) for fast in (True, False)}
    torch.save(result, Path(out) / f"rank{comm.rank}.pt")


@pytest.mark.slow  # spawns processes
def test_critic_step_and_lazy_penalty_match_one_process_on_the_global_batch(tmp_path):
    spawn(_grads_worker, str(tmp_path))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    for kind, fn in (("step", _critic_grads), ("penalty", _penalty_grads)):
        for fast in (True, False):  # written-out input gradient, and autograd's double backward
            key = f"{kind}-{fast}"
            want = fn(Comm(), 0, 1, fast)
            local = fn(Comm(), 0, WORLD, fast)  # rank 0's half without the all-reduce
            gap = max((local[n] - g).abs().max() for n, g in want.items() if g is not None)
            assert gap > 1e-4, f"{key}: one half alone must not give the global gradient (else the test is blind)"
            for name, g in want.items():
                if g is None:
                    assert kind == "penalty" and all(ranks[r][key][name] is None for r in range(WORLD)), name
                    continue
                for r in range(WORLD):
                    torch.testing.assert_close(ranks[r][key][name], g, rtol=0, atol=1e-6, msg=f"{key} {name} rank {r}")
                    assert (ranks[r][key][name] - g).abs().max() < 1e-12  # float64: equal up to rounding


# ---------------------------------------------------------------------------------------------
# a few full generator steps of wgan-gp and sngan through the trainer's own objects

STEPS = 3


def _config(variant: str, batch_size: int):
    return resolve({"variant": variant, "g_width": 16, "c_width": 16, "g_depth": 2, "c_depth": 2,
                    "batch_size": batch_size, "device": "cpu", "threads": 1, "eval_samples": 100,
                    "n_critic": 2, "steps": STEPS, **({"gp_weight": 10.0} if variant == "wgan-gp" else {})})


def _global_stream(step: int, k: int, z_dim: int):
    """Data and noise of critic step ``k`` (k = n_critic: the generator step) of generator step ``step``."""
    g = torch.Generator().manual_seed(1000 * step + k)
    return (torch.randn(WORLD * N, 2, generator=g, dtype=torch.float64) + 1,
            torch.randn(WORLD * N, z_dim, generator=g, dtype=torch.float64))


def _full_steps(trainer: Trainer, rank: int, world: int) -> dict:
    """The trainer's generator step (n_critic critic steps, then the generator) with explicit batches."""
    t, c = trainer, trainer.config
    t.generator.double()  # float64 for the comparison; the optimisers hold the same Parameter objects
    t.critic.double()
    for step in range(STEPS):
        for k in range(c.n_critic):
            x_real, z = _global_stream(step, k, c.z_dim)
            if world > 1:
                x_real, z = _half(x_real, rank), _half(z, rank)
            rng = _alpha_rng(100 * step + k, rank if world > 1 else 0)
            apply_penalty = t.critic_iters % t.lipschitz.interval == 0
            t.acc.add(critic_step(t.critic, t.generator, t.critic_opt, t.objective, t.lipschitz, t.comm,
                                  x_real, z, rng, apply_penalty))
            t.critic_iters += 1
        _, z = _global_stream(step, c.n_critic, c.z_dim)
        t.acc.add(generator_step(t.generator, t.critic, t.gen_opt, t.objective, t.comm,
                                 _half(z, rank) if world > 1 else z))
        t.step += 1
    t.comm.check_identical(t.generator, "generator")
    t.comm.check_identical(t.critic, "critic")
    return {"generator": {k: v.clone() for k, v in t.generator.state_dict().items()},
            "critic": {k: v.clone() for k, v in t.critic.state_dict().items()},  # SN: u, v and the weights
            "stats": t.acc.means(t.comm)}


def _steps_worker(comm: TorchComm, variant: str, out: str) -> None:
    trainer = Trainer(_config(variant, N), run_dir=None, comm=comm)
    torch.save(_full_steps(trainer, comm.rank, WORLD), Path(out) / f"rank{comm.rank}.pt")


@pytest.mark.slow  # spawns processes
@pytest.mark.parametrize("variant", ["wgan-gp", "sngan"])
def test_full_generator_steps_match_one_process_on_the_global_batch(tmp_path, variant):
    spawn(_steps_worker, variant, str(tmp_path))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    want = _full_steps(Trainer(_config(variant, WORLD * N), run_dir=None, comm=Comm()), 0, 1)
    start = Trainer(_config(variant, N), run_dir=None, comm=Comm())
    if variant == "sngan":
        assert any(k.endswith("_u") for k in want["critic"]), "the spectral-norm vectors must be compared"
    for net in ("generator", "critic"):
        start_state = getattr(start, net).state_dict()
        moved = max((want[net][k].double() - v.double()).abs().max() for k, v in start_state.items())
        assert moved > 1e-5, f"{net} did not train"
        for k, v in want[net].items():
            assert torch.equal(ranks[0][net][k], ranks[1][net][k]), f"{net}.{k} differs across ranks"
            torch.testing.assert_close(ranks[0][net][k], v, rtol=0, atol=1e-10, msg=f"{variant} {net}.{k}")
    # the logged statistics are reduced across ranks: the means over the global batch
    assert ranks[0]["stats"] == ranks[1]["stats"]
    assert set(ranks[0]["stats"]) == set(want["stats"])
    for k, v in want["stats"].items():
        assert ranks[0]["stats"][k] == pytest.approx(v, rel=1e-5, abs=1e-6), k


# ---------------------------------------------------------------------------------------------
# broadcast at start, the consistency check, run-directory agreement

def _consistency_worker(comm: TorchComm, out: str) -> None:
    from wgan.lipschitz.spectral_norm import SpectralNorm

    torch.manual_seed(comm.rank)  # different weights on every rank
    critic = SpectralNorm().wrap(MLPCritic(2, width=16, depth=2))
    critic(torch.randn(4, 2))  # advance the power iteration: u, v differ across ranks too
    report = {}
    try:
        comm.check_identical(critic, "critic")
    except RuntimeError as e:
        report["before"] = str(e)
    comm.broadcast_module(critic)
    comm.check_identical(critic, "critic")  # must not raise now
    report["state"] = {k: v.clone() for k, v in critic.state_dict().items()}
    with torch.no_grad():  # one rank drifts by 0.25 in one weight
        if comm.rank == 1:
            critic.net[0].parametrizations.weight.original[0, 0] += 0.25
    try:
        comm.check_identical(critic, "critic")
    except RuntimeError as e:
        report["after"] = str(e)
    comm.check_identical(critic, "critic", atol=0.3)  # within the tolerance: accepted
    report["run_dir"] = comm.on_main(lambda: f"runs/{os.getpid()}")  # rank 0's choice, everywhere
    def refuse():
        raise ValueError("bad --out on rank 0")

    try:
        comm.on_main(refuse)
    except ValueError as e:
        report["error"] = str(e)
    report["any"] = (comm.any_rank(comm.rank == 1), comm.any_rank(False))
    report["mean"] = comm.all_reduce_mean(torch.tensor([float(comm.rank), 2.0]))
    report["gathered"] = comm.all_gather_object(comm.rank * 10)
    torch.save(report, Path(out) / f"rank{comm.rank}.pt")


@pytest.mark.slow  # spawns processes
def test_broadcast_consistency_check_and_agreement(tmp_path):
    spawn(_consistency_worker, str(tmp_path))
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD))
    for r in (r0, r1):
        assert "critic differs across the 2 ranks" in r["before"]
        assert "critic differs across the 2 ranks" in r["after"]
        assert "max |difference| 0.25" in r["after"] and "net.0.parametrizations.weight.original" in r["after"]
        assert r["error"] == "bad --out on rank 0"
        assert r["any"] == (True, False)
        torch.testing.assert_close(r["mean"], torch.tensor([0.5, 2.0]))
        assert r["gathered"] == [0, 10]
    assert r0["run_dir"] == r1["run_dir"]
    assert r0["state"].keys() == r1["state"].keys() and any(k.endswith("_u") for k in r0["state"])
    for k, v in r0["state"].items():  # parameters and buffers (spectral-norm u, v) from rank 0
        assert torch.equal(v, r1["state"][k]), k


def test_single_process_comm_without_torchrun(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    comm = get_comm()
    assert type(comm) is Comm and comm.world_size == 1 and comm.is_main
    assert comm.on_main(lambda: 3) == 3 and comm.any_rank(True) and comm.all_gather_object(1) == [1]


# ---------------------------------------------------------------------------------------------
# torchrun on the command line: stop, resume with the same world size (exact), then with another

TRAIN = ["--steps", "4", "--tick-every-steps", "4", "--g-width", "16", "--c-width", "16", "--batch-size", "16",
         "--eval-samples", "100", "--device", "cpu", "--threads", "1", "--quiet"]


def _torchrun(args: list[str]) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(WORLD),
                "--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    p = subprocess.run(launcher + ["-m", "wgan", "train", *args], env=env, capture_output=True, text=True,
                       timeout=240)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def _final(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "latest.pt", weights_only=True)


def _log(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_torchrun_stop_and_resume_continues_the_run(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    first = _torchrun([*TRAIN, "--out", str(a)])
    assert first.stdout.count("wgan: training") == 1, first.stdout  # rank 0 alone prints
    assert "on 2 processes (global batch 32)" in first.stdout
    state = _final(a)
    assert state["step"] == 4 and state["world_size"] == 2 and len(state["rng"]["loop_ranks"]) == 2
    assert not torch.equal(*state["rng"]["loop_ranks"])  # a per-rank data and noise stream

    resume = _torchrun(["--resume", str(a), "--steps", "8", "--quiet"])
    assert resume.stdout.count("resuming") == 1 and "at step 4 of 8 on 2 processes" in resume.stdout
    _torchrun([*TRAIN, "--steps", "8", "--out", str(b)])  # the same run, never stopped
    resumed, straight = _final(a), _final(b)
    assert resumed["step"] == straight["step"] == 8
    for part in ("generator", "critic", "gen_opt", "critic_opt"):  # the same world size: exact
        assert _flat(resumed[part]) == _flat(straight[part]), part
    assert [r["step"] for r in _log(a)] == [4, 8]
    assert [r["loss/critic"] for r in _log(a)] == [r["loss/critic"] for r in _log(b)]

    # another world size (this one process) continues from the same weights, its streams reseeded
    from wgan.cli import main

    assert main(["train", "--resume", str(a), "--steps", "10", "--quiet"]) == 0
    assert "at step 8 of 10" in capsys.readouterr().out
    cont = _final(a)
    assert cont["step"] == 10 and cont["world_size"] == 1 and len(cont["rng"]["loop_ranks"]) == 1
    assert _flat(cont["generator"]) != _flat(resumed["generator"])
    log = _log(a)
    assert [r["step"] for r in log] == [4, 8, 10]
    assert all(math.isfinite(r["loss/critic"]) and math.isfinite(r["loss/generator"]) for r in log)


def _flat(tree) -> list:
    """Nested dicts/lists of tensors as plain lists, for exact comparison."""
    if isinstance(tree, torch.Tensor):
        return tree.tolist()
    if isinstance(tree, dict):
        return [(k, _flat(v)) for k, v in sorted(tree.items(), key=lambda kv: str(kv[0]))]
    if isinstance(tree, (list, tuple)):
        return [_flat(v) for v in tree]
    return tree
