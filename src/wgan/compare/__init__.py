r"""Every variant on the same data, seeds and budget: a measured table, one figure, a report.

The source texts end with a qualitative table of the three Lipschitz methods (weight clipping: very
low cost, moderate stability; gradient penalty: high cost, high stability; spectral norm: low cost,
very high stability). :func:`compare` measures it instead. Each variant is trained once per seed
with the same data set, the same seeds (so the same initial latent batch and evaluation data) and
the same budget, either

* ``steps``: generator steps (each variant does its own number of critic steps per generator step), or
* ``seconds``: wall time of the training steps alone (evaluation and diagnostics excluded), so a
  variant that costs more per step gets fewer steps: equal compute.

Per variant, over seeds (mean :math:`\pm` sample standard deviation), the table reports: time per
generator step; the final metrics of the data kind's evaluator (its columns,
:func:`wgan.metrics.columns_for`: modes captured, % high quality and exact W1 on toy data, the
VEEGAN / PacGAN protocol; the classifier-feature metrics on images); the critic's empirical
Lipschitz constant and mean gradient norm at interpolates (last tick, :mod:`wgan.diagnostics`);
Pearson's r between the critic's W estimate and the exact W1 over the ticks; and the health verdict
(:func:`wgan.diagnostics.health_verdict`). A run that raises (divergence, a bad recipe) is recorded
as failed with its reason and the comparison goes on.

=================  ===========================================================================
module             concern
=================  ===========================================================================
``run``            :func:`compare` and :func:`run_one`: train every (variant, seed) under the budget
``result``         :class:`RunResult`, :class:`CompareResult`: what was measured; rows over seeds
``aggregate``      mean and sample std over seeds, training time, the W-estimate correlation
``render``         the table's one column list, rendered as markdown, CSV and HTML
``files``          the output folder: write every file (figure and page included), read one back
=================  ===========================================================================

Files written to ``out`` (re-rendered from the saved runs, without training, by
:func:`load_compare` and :func:`write_outputs`, or ``wgan compare --rebuild OUT``): ``table.md``,
``table.csv`` (one row per variant), ``runs.csv`` (one row per run), ``results.json``,
``compare.png`` (samples of every variant side by side above their W estimate curves),
``report.html``, and ``runs/VARIANT-sSEED/`` (each run's own directory).

Example:
    >>> result = compare("ring8", ["wgan-gp", "sngan"], seeds=1, steps=20, ticks=2)  # doctest: +SKIP
    >>> print(result.markdown())  # doctest: +SKIP
"""

from __future__ import annotations

from wgan.compare.aggregate import w_estimate_correlation
from wgan.compare.files import figure_png, load_compare, report_html, write_outputs
from wgan.compare.result import DEFAULT_TICKS, CompareResult, RunResult
from wgan.compare.run import DEFAULT_SECONDS, DEFAULT_VARIANTS, compare, run_one

__all__ = ["DEFAULT_SECONDS", "DEFAULT_TICKS", "DEFAULT_VARIANTS", "CompareResult", "RunResult", "compare",
           "figure_png", "load_compare", "report_html", "run_one", "w_estimate_correlation", "write_outputs"]
