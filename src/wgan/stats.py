"""The names of the training statistics, written once.

Every statistic the step functions, the diagnostics and the trainer record goes into one tick record
(``metrics.jsonl``) under a hierarchical name; modules refer to them by these constants, never by
spelling the string again. Metric names (``metrics/*``) belong to the evaluators in
:mod:`wgan.metrics`, which describe their own columns.
"""

from __future__ import annotations

STEP = "step"

# step functions (means over the tick's steps)
LOSS_CRITIC = "loss/critic"  # the objective's critic loss, without the penalty
LOSS_CRITIC_TOTAL = "loss/critic_total"  # ... plus the Lipschitz penalty: what the critic minimises
LOSS_GENERATOR = "loss/generator"
GAP = "critic/gap"  # E[f(x_real)] - E[f(x_fake)] on training batches: the critic's W1 estimate
PENALTY = "lipschitz/penalty"  # the weighted penalty term
GRAD_NORM_MEAN = "lipschitz/grad_norm_mean"  # mean |grad f(x_hat)| at the penalty's interpolates

# diagnostics at the tick
GAP_EVAL = "critic/gap_eval"  # the gap on the evaluation samples (those of the exact W1)
GAP_VAL = "critic/gap_val"  # the gap on held-out real images (a validation estimate)
GAP_TRAIN = "critic/gap_train"  # the gap on a training batch against the same generated batch
LIPSCHITZ_EMPIRICAL = "lipschitz/empirical"  # largest secant slope |f(x) - f(y)| / |x - y| over pairs

# time
STEP_MS = "time/step_ms"  # wall-clock milliseconds per generator step over the tick
EVAL_S = "time/eval_s"  # seconds the tick's evaluation took

DESCRIPTIONS: dict[str, str] = {
    LOSS_CRITIC: "critic loss of the objective (without the penalty)",
    LOSS_CRITIC_TOTAL: "critic loss plus the Lipschitz penalty",
    LOSS_GENERATOR: "generator loss",
    GAP: "critic gap E[f(real)] - E[f(fake)] on training batches (the W1 estimate under a Wasserstein critic)",
    PENALTY: "weighted Lipschitz penalty term",
    GRAD_NORM_MEAN: "mean gradient norm of the critic at the interpolates",
    GAP_EVAL: "critic gap at the tick on the evaluation samples (the ones of the exact W1)",
    GAP_VAL: "critic gap on held-out real images (validation estimate)",
    GAP_TRAIN: "critic gap on a training batch against the same generated batch",
    LIPSCHITZ_EMPIRICAL: "largest secant slope |f(x)-f(y)|/|x-y| over sampled pairs (lower bound on Lip(f))",
    STEP_MS: "milliseconds per generator step",
    EVAL_S: "seconds spent on the tick's evaluation",
}
