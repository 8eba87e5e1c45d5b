"""What a checkpoint holds of a trainer (format 1), and restoring it into one.

Weights, optimisers, EMA (with its update count), step, config, the evaluator's references and
every random state: the loop's generator (every rank's, gathered at the tick) and the global torch,
numpy and python states. With them N steps and N/2 + resume + N/2 give the same parameters.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from wgan.seeds import derive_seed
from wgan.training import checkpoint as ckpt


def trainer_state(t) -> dict[str, Any]:
    """The state of trainer ``t`` as a checkpoint stores it (``rng.loop_ranks`` is added at the tick)."""
    return {
        "config": asdict(t.config),
        "step": t.step,
        "critic_iters": t.critic_iters,
        "generator": t.generator.state_dict(),
        "critic": t.critic.state_dict(),
        "gen_opt": t.gen_opt.state_dict(),
        "critic_opt": t.critic_opt.state_dict(),
        "ema": t.ema.state_dict() if t.ema is not None else None,
        "ema_updates": t.ema.updates if t.ema is not None else None,  # the EMA's warm-up
        "rng": {"loop": t.rng.get_state(), "global": ckpt.capture_rng()},
        "w1_floor": None,  # the toy evaluator's, in its state below
        **t.evaluator.state_dict(),
        "world_size": t.comm.world_size,
        "data_shape": list(t.data.shape),  # with "config" and "arch": enough to rebuild the generator
        "arch": t.arch,
        "rollbacks": t.rollbacks,
    }


def load_trainer_state(t, state: dict[str, Any]) -> None:
    """Restore ``state`` (from :func:`trainer_state`) into trainer ``t``. The optimisers take ``t``'s
    config learning rates (and Adam betas): the same values on a plain resume, the new ones after an
    override or a rollback."""
    t.generator.load_state_dict(state["generator"])
    t.critic.load_state_dict(state["critic"])
    t.gen_opt.load_state_dict(state["gen_opt"])
    t.critic_opt.load_state_dict(state["critic_opt"])
    if t.ema is not None and state.get("ema") is not None:
        t.ema.load_state_dict(state["ema"], updates=state.get("ema_updates"))
    t.step = int(state["step"])
    t.critic_iters = int(state["critic_iters"])
    t.evaluator.load_state_dict(state)
    t.rollbacks = int(state.get("rollbacks", 0))
    c = t.config
    for opt, lr in ((t.gen_opt, c.lr_g), (t.critic_opt, c.lr_c)):
        for group in opt.param_groups:
            group["lr"] = lr
            if "betas" in group and c.beta1 is not None and c.beta2 is not None:
                group["betas"] = (c.beta1, c.beta2)
    ckpt.restore_rng(state["rng"]["global"])
    # A checkpoint holds every rank's loop stream ("loop_ranks", gathered at the tick); a state
    # without it is this process's own (a rollback snapshot) and holds its own stream in "loop".
    loops = state["rng"].get("loop_ranks")
    own = state["rng"]["loop"] if loops is None else (
        loops[t.comm.rank] if len(loops) == t.comm.world_size else None)
    if own is not None:  # the same world size: every rank continues its own stream
        t.rng.set_state(own.to(t.rng.get_state().device))
    else:  # another world size: per-rank streams cannot be continued exactly; reseed them
        t.rng.manual_seed(derive_seed(c.seed, "loop", rank=t.comm.rank, step=t.step))
    t.comm.broadcast_module(t.generator)
    t.comm.broadcast_module(t.critic)
