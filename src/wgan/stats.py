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
GRAD_NORMS = ("grad_norm/mean", "grad_norm/std", "grad_norm/min", "grad_norm/median", "grad_norm/max")
GN_MEAN, GN_STD, GN_MIN, GN_MEDIAN, GN_MAX = GRAD_NORMS  # |grad f| at fresh interpolates, at the tick
GN_HIST = "grad_norm/hist"  # counts in the fixed bins of wgan.diagnostics.gradnorm.GRAD_NORM_EDGES
GN_VERDICT = "grad_norm/verdict"  # excellent, acceptable, poor (or n/a)

# time
STEP_MS = "time/step_ms"  # wall-clock milliseconds per generator step over the tick
EVAL_S = "time/eval_s"  # seconds the tick's evaluation took
TICK_S = "time/tick_s"  # seconds the tick itself took: evaluation, diagnostics, samples

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
    GN_MEAN: "mean gradient norm at fresh interpolates (target 1 for WGAN-GP)",
    GN_STD: "std of the gradient norms",
    GN_MIN: "smallest gradient norm",
    GN_MEDIAN: "median gradient norm",
    GN_MAX: "largest gradient norm",
    GN_HIST: "gradient norms at fresh interpolates, counted in fixed log-spaced bins",
    GN_VERDICT: "source texts' reading: |mean-1| < 0.1 excellent, < 0.3 acceptable, else poor",
    STEP_MS: "milliseconds per generator step (training only)",
    TICK_S: "seconds the tick took (evaluation, diagnostics, samples)",
    EVAL_S: "seconds spent on the tick's evaluation",
}
