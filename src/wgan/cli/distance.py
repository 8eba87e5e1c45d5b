"""``wgan distance``: W1 (CDF formula), JS and KL between two 1-D distributions; exact n-D W1.

P and Q are each a file (.npy, CSV or text: numbers separated by commas, spaces or new lines, an
optional header line, ``#`` comments) or a list on the command line: ``0,1,2`` (samples, equal
weights) or ``0:0.5,2:0.5`` (``value:weight`` pairs, weights normalised to sum to 1).
JS and KL are the discrete divergences of the two distributions on the union of their supports
(points compared exactly), so samples from continuous distributions have disjoint supports:
JS = log 2 and KL = inf whatever the distance. That is the point of the source texts.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wgan.cli import UsageError, subparser
from wgan.distances import EXACT_MAX_SAMPLES, js_divergence, kl_divergence, wasserstein_1d, wasserstein_exact

EXAMPLES = """examples:
  wgan distance 0,1,2 2,3,4                       # W1 = 2 (source text 000)
  wgan distance 0:0.5,2:0.5 1:0.5,3:0.5           # the two-point shift: W1 = 1 (source text 001)
  wgan distance 0 1.5                             # point masses: W1 = |theta| = 1.5, JS = log 2
  wgan distance -- -1,0 2,3                       # '--' before lists that start with a minus sign
  wgan distance p.npy q.csv                       # two files of 1-D samples
  wgan distance --weighted p.csv q.csv            # two columns per file: value, weight
  wgan distance --exact p.npy q.npy               # n-D samples (rows): exact W1 by optimal transport
  wgan distance --demo --out js-vs-w1.png         # the figure: JS saturates, W1 grows linearly
"""

_SPLIT = re.compile(r"[\s,;]+")


@dataclass
class Distribution:
    """Support points (n, d) and their masses (n,), summing to 1; ``source`` names where they came from."""

    values: np.ndarray
    weights: np.ndarray | None  # None = uniform (samples)
    source: str

    @property
    def dim(self) -> int:
        return self.values.shape[1]

    def describe(self) -> str:
        n = len(self.values)
        kind = "weighted point" if self.weights is not None else "sample"
        kind += "" if n == 1 else "s"
        dim = f", {self.dim}-D" if self.dim > 1 else ""
        return f"{n} {kind}{dim} from {self.source}"


# ---------------------------------------------------------------------------------------- parsing
def _number(token: str, where: str) -> float:
    try:
        v = float(token)
    except ValueError:
        raise UsageError(f"{where}: {token!r} is not a number") from None
    if not math.isfinite(v):
        raise UsageError(f"{where}: {token!r} is not a finite number")
    return v


def _parse_tokens(tokens: list[str], where: str) -> tuple[list[float], list[float] | None]:
    """Tokens ``v`` (samples) or ``v:w`` (weighted); mixing the two is refused."""
    pairs = [":" in t for t in tokens]
    if any(pairs) and not all(pairs):
        raise UsageError(f"{where}: mixes plain values and value:weight pairs; use one form throughout")
    if not all(pairs):
        return [_number(t, where) for t in tokens], None
    values, weights = [], []
    for t in tokens:
        v, _, w = t.partition(":")
        values.append(_number(v, where))
        weight = _number(w, where)
        if weight < 0:
            raise UsageError(f"{where}: weight {w!r} is negative; weights must be >= 0")
        weights.append(weight)
    if sum(weights) <= 0:
        raise UsageError(f"{where}: the weights sum to 0; give at least one positive weight")
    return values, weights


def parse_list(text: str, name: str) -> Distribution:
    """``0,1,2`` or ``0:0.5,2:0.5`` from the command line."""
    tokens = [t for t in _SPLIT.split(text.strip()) if t]
    if not tokens:
        raise UsageError(f"{name}: empty list; give numbers like 0,1,2 or 0:0.5,2:0.5")
    values, weights = _parse_tokens(tokens, name)
    return Distribution(np.array(values)[:, None], None if weights is None else np.array(weights), "the command line")


def _is_number(token: str) -> bool:
    try:
        float(token.partition(":")[0])
        return True
    except ValueError:
        return False


def read_text(path: Path, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows of numbers (or value:weight tokens) from a text/CSV file: (n, d) values and weights or None."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{name}: {str(path)!r} is not a text file (and not .npy); give numbers separated "
                         "by commas, spaces or new lines") from None
    rows: list[tuple[int, list[str]]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        tokens = [t for t in _SPLIT.split(line.split("#", 1)[0].strip()) if t]
        if tokens:
            rows.append((lineno, tokens))
    # one header line is allowed: a first row with no number in it, followed by numeric rows
    if rows and not any(_is_number(t) for t in rows[0][1]) and len(rows) > 1:
        rows = rows[1:]
    if not rows:
        raise UsageError(f"{name}: {str(path)!r} holds no numbers")
    where = lambda lineno: f"{name}: {str(path)!r} line {lineno}"  # noqa: E731
    if any(":" in t for _, tokens in rows for t in tokens):  # value:weight pairs, any layout
        tokens = [t for _, ts in rows for t in ts]
        values, weights = _parse_tokens(tokens, f"{name}: {str(path)!r}")
        return np.array(values)[:, None], np.array(weights)
    width = len(rows[0][1])
    out = []
    for lineno, tokens in rows:
        if len(tokens) != width:
            raise UsageError(f"{where(lineno)} has {len(tokens)} columns but line {rows[0][0]} has {width}; "
                             "every row must have the same number of columns")
        out.append([_number(t, where(lineno)) for t in tokens])
    arr = np.array(out, dtype=np.float64)
    if len(rows) == 1:  # a single row of numbers: a list of 1-D samples
        return arr.reshape(-1, 1), None
    return arr, None


def read_npy(path: Path, name: str) -> np.ndarray:
    """A numeric ``.npy`` array as (n, d) float64 rows; one-line UsageError for anything else."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise UsageError(f"{name}: {str(path)!r} is not a readable .npy file ({' '.join(str(e).split())})") from None
    if not isinstance(arr, np.ndarray):
        raise UsageError(f"{name}: {str(path)!r} holds several arrays; give a .npy file with one array")
    if arr.dtype.kind not in "biuf":
        raise UsageError(f"{name}: {str(path)!r} holds {arr.dtype} values, not numbers")
    if arr.size == 0:
        raise UsageError(f"{name}: {str(path)!r} is empty")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise UsageError(f"{name}: {str(path)!r} contains NaN or Inf")
    if arr.ndim == 0:
        arr = arr.reshape(1, 1)
    elif arr.ndim == 1:
        arr = arr[:, None]
    elif arr.ndim > 2:
        raise UsageError(f"{name}: {str(path)!r} has shape {arr.shape}; expected (n,) or (n, d): one sample per row")
    return arr


def load_distribution(spec: str, name: str, weighted: bool = False) -> Distribution:
    """A file (``.npy`` or text/CSV) or a command-line list, as a :class:`Distribution`.

    With ``weighted``, a file's two columns are (value, weight).
    """
    path = Path(spec)
    if path.is_dir():
        raise UsageError(f"{name}: {spec!r} is a folder; give a .npy, CSV or text file, or a list like 0,1,2")
    if path.is_file():
        if path.suffix.lower() == ".npy":
            values, weights = read_npy(path, name), None
        else:
            values, weights = read_text(path, name)
        if weighted:
            if weights is not None:
                pass  # value:weight tokens already
            elif values.shape[1] != 2:
                raise UsageError(f"{name}: --weighted needs two columns (value, weight), {spec!r} has "
                                 f"{values.shape[1]}")
            else:
                values, weights = values[:, :1], values[:, 1]
                if np.any(weights < 0) or weights.sum() <= 0:
                    raise UsageError(f"{name}: {spec!r}: weights (second column) must be >= 0 and not all 0")
        return Distribution(values, weights, repr(spec))
    try:
        return parse_list(spec, name)
    except UsageError:
        looks_like_path = re.search(r"[/\\]|\.(npy|csv|txt|tsv|dat)$", spec, re.IGNORECASE)
        if not looks_like_path and any(c.isdigit() for c in spec):
            raise  # a list with a typo: the parser's message names the bad token
        raise UsageError(f"{name}: file not found: {spec!r} (nor is it a list of numbers such as 0,1,2 or "
                         "0:0.5,2:0.5)") from None


# ---------------------------------------------------------------------------------------- maths
def union_support(p: Distribution, q: Distribution) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The union of the two 1-D supports and each distribution's masses on it (exact matching)."""
    pv, qv = p.values[:, 0], q.values[:, 0]
    pw = np.full(len(pv), 1.0 / len(pv)) if p.weights is None else p.weights / p.weights.sum()
    qw = np.full(len(qv), 1.0 / len(qv)) if q.weights is None else q.weights / q.weights.sum()
    support, inverse = np.unique(np.concatenate([pv, qv]), return_inverse=True)
    pm = np.bincount(inverse[: len(pv)], weights=pw, minlength=len(support))
    qm = np.bincount(inverse[len(pv):], weights=qw, minlength=len(support))
    return support, pm, qm


def distances_1d(p: Distribution, q: Distribution) -> dict:
    """W1 by the CDF formula, JS and both KLs on the union support, and the support caveat."""
    w1 = wasserstein_1d(p.values[:, 0], q.values[:, 0], p.weights, q.weights)
    support, pm, qm = union_support(p, q)
    only_p = bool(np.any((pm > 0) & (qm == 0)))
    only_q = bool(np.any((qm > 0) & (pm == 0)))
    shared = bool(np.any((pm > 0) & (qm > 0)))
    out = {"w1": w1, "js": js_divergence(pm, qm), "kl_pq": kl_divergence(pm, qm), "kl_qp": kl_divergence(qm, pm),
           "support_points": int(len(support)), "disjoint": not shared, "caveat": None}
    log2 = math.log(2)
    if not shared:
        out["caveat"] = (f"P and Q have disjoint supports: JS = log 2 = {log2:.6f} and both KL are infinite "
                         f"however far apart they are; only W1 = {w1:.6g} says how far")
    elif only_p or only_q:
        which = []
        if only_p:
            which.append("P has mass where Q has none, so KL(P || Q) = inf")
        if only_q:
            which.append("Q has mass where P has none, so KL(Q || P) = inf")
        out["caveat"] = "the supports differ: " + "; ".join(which)
    return out


# ---------------------------------------------------------------------------------------- command
def add_parser(sub) -> None:
    p = subparser(sub, "distance", "W1 (CDF formula), JS and KL between two 1-D distributions; exact n-D W1",
                  description=__doc__ + "\n" + EXAMPLES)
    p.add_argument("p", nargs="?", metavar="P", help="file (.npy, CSV, text) or list: 0,1,2 or 0:0.5,2:0.5")
    p.add_argument("q", nargs="?", metavar="Q", help="the same for the second distribution")
    p.add_argument("--exact", action="store_true",
                   help="P, Q are n-D samples (one per row): exact W1 by optimal transport (Euclidean cost)")
    p.add_argument("--weighted", action="store_true", help="files have two columns: value, weight")
    p.add_argument("--max-samples", type=int, default=None, metavar="N",
                   help="with --exact: accept up to N samples per side (default 6000; memory grows as N^2)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.add_argument("--demo", action="store_true",
                   help="write the figure of the source texts (JS saturating at log 2, W1 linear) and exit")
    p.add_argument("--out", default="js-vs-w1.png", metavar="FIG.png", help="with --demo: the figure's path")
    p.set_defaults(run=run)


def _fmt(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:.6f}"


def run(args: argparse.Namespace) -> int:
    if args.demo:
        return _demo(args)
    if args.p is None or args.q is None:
        raise UsageError("distance needs two distributions P and Q (or --demo); e.g. wgan distance 0,1,2 2,3,4")
    p = load_distribution(args.p, "P", args.weighted)
    q = load_distribution(args.q, "Q", args.weighted)
    if args.exact:
        return _exact(args, p, q)
    for name, d in (("P", p), ("Q", q)):
        if d.dim != 1:
            raise UsageError(f"{name}: {d.source} has {d.dim} columns; the 1-D distance takes one column of "
                             "samples (or value:weight pairs, or --weighted for value, weight columns); "
                             "for n-D samples use --exact")
    r = distances_1d(p, q)
    if args.json:
        # JSON has no infinity: an infinite KL is written as the string "inf"
        print(json.dumps({k: "inf" if isinstance(v, float) and math.isinf(v) else v for k, v in r.items()}))
        return 0
    print(f"P: {p.describe()}")
    print(f"Q: {q.describe()}")
    print(f"W1 (CDF formula)   {_fmt(r['w1'])}")
    print(f"JS (natural log)   {_fmt(r['js'])}   (at most log 2 = {math.log(2):.6f})")
    print(f"KL(P || Q)         {_fmt(r['kl_pq'])}")
    print(f"KL(Q || P)         {_fmt(r['kl_qp'])}")
    if r["caveat"]:
        print(f"note: {r['caveat']}")
    return 0


def _exact(args, p: Distribution, q: Distribution) -> int:
    if p.dim != q.dim:
        raise UsageError(f"P has dimension {p.dim} and Q has {q.dim}; they must match")
    limit = args.max_samples or EXACT_MAX_SAMPLES
    if limit < 1:
        raise UsageError(f"--max-samples must be >= 1, got {limit}")
    for name, d in (("P", p), ("Q", q)):
        if len(d.values) > limit:
            raise UsageError(f"{name} has {len(d.values)} samples; --exact accepts at most {limit} per side "
                             f"(memory grows as n x m): subsample, or raise --max-samples")
    w1 = wasserstein_exact(p.values, q.values, p.weights, q.weights, max_samples=limit)
    if args.json:
        print(json.dumps({"w1_exact": w1, "dim": p.dim, "n_p": len(p.values), "n_q": len(q.values)}))
        return 0
    print(f"P: {p.describe()}")
    print(f"Q: {q.describe()}")
    print(f"W1 (exact, Euclidean cost)   {w1:.6f}")
    return 0


def _demo(args) -> int:
    from wgan.plots.distance import plot_js_vs_w1  # matplotlib: only for the demo figure

    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise UsageError(f"--out must end in .png, .pdf or .svg, got {args.out!r}")
    if not out.parent.is_dir():
        raise UsageError(f"--out {args.out!r}: folder {str(out.parent)!r} does not exist")
    sweeps = plot_js_vs_w1(out)
    g = sweeps["gaussians"]
    print("N(0,1) vs N(d,1):   d      W1      JS")
    for d in (0.0, 0.5, 1.0, 2.0, 4.0, 8.0):
        i = int(np.argmin(np.abs(g["shift"] - d)))
        print(f"                 {g['shift'][i]:4.1f}  {g['w1'][i]:6.3f}  {g['js'][i]:.4f}")
    print(f"point masses: W1(delta_0, delta_theta) = |theta|, JS = log 2 = {math.log(2):.4f} for theta != 0")
    print(f"wrote {out}")
    return 0
