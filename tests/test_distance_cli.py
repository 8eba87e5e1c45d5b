"""`wgan distance` from the command line: the source texts' worked examples, files, bad input, the demo.

Independent answers: the hand-computed examples of the source texts (W1 = 2, 1, |theta|, 4; JS of
disjoint supports = log 2), scipy.stats.wasserstein_distance, scipy's Jensen-Shannon distance
squared, and W1 of a pure translation = the length of the shift.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from wgan.cli import main

LOG2 = math.log(2)


def run_json(capsys, *argv) -> dict:
    assert main(["distance", "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def run_error(capsys, *argv) -> str:
    """Run a command that must fail as a user error: exit 2, one line on stderr, nothing on stdout."""
    assert main(["distance", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wgan: error: "), captured.err
    return lines[0]


# ------------------------------------------------------------------ the worked examples
def test_three_points_shifted_by_two(capsys):
    # source text 000: p = {0, 1, 2}, q = {2, 3, 4}, each mass 1/3: W1 = 2
    r = run_json(capsys, "0,1,2", "2,3,4")
    assert r["w1"] == pytest.approx(2.0, abs=1e-12)
    assert r["w1"] == pytest.approx(wasserstein_distance([0, 1, 2], [2, 3, 4]), abs=1e-12)
    # they share the point 2, so JS is below log 2 and both KL are infinite
    p, q = [1 / 3, 1 / 3, 1 / 3, 0, 0], [0, 0, 1 / 3, 1 / 3, 1 / 3]  # on the union {0, 1, 2, 3, 4}
    assert r["js"] == pytest.approx(jensenshannon(p, q) ** 2, abs=1e-12)
    assert r["kl_pq"] == "inf" and r["kl_qp"] == "inf"
    assert r["caveat"] and "supports differ" in r["caveat"]


def test_two_point_shift_by_one(capsys):
    # source text 001: masses 0.5 at 0 and 2 against 0.5 at 1 and 3: W1 = 1; disjoint supports
    r = run_json(capsys, "0:0.5,2:0.5", "1:0.5,3:0.5")
    assert r["w1"] == pytest.approx(1.0, abs=1e-12)
    assert r["js"] == pytest.approx(LOG2, abs=1e-12)
    assert r["disjoint"] is True and "log 2" in r["caveat"]


@pytest.mark.parametrize("theta", [0.25, 1.5, -2.5, 7.0])
def test_point_masses_w1_is_abs_theta_and_js_is_log2(capsys, theta):
    # W1(delta_0, delta_theta) = |theta| while JS = log 2 whatever theta != 0 (Arjovsky et al., example 1)
    r = run_json(capsys, "--", "0", str(theta))
    assert r["w1"] == pytest.approx(abs(theta), abs=1e-12)
    assert r["js"] == pytest.approx(LOG2, abs=1e-12)
    assert r["kl_pq"] == "inf"


def test_point_masses_at_the_same_place(capsys):
    r = run_json(capsys, "3", "3")
    assert r["w1"] == 0.0 and r["js"] == 0.0 and r["kl_pq"] == 0.0 and r["caveat"] is None


def test_unnormalised_weights_are_normalised(capsys):
    a = run_json(capsys, "0:1,2:3", "1:2,5:2")
    b = run_json(capsys, "0:0.25,2:0.75", "1:0.5,5:0.5")
    assert a["w1"] == pytest.approx(b["w1"], abs=1e-12)
    assert a["w1"] == pytest.approx(wasserstein_distance([0, 2], [1, 5], [1, 3], [2, 2]), abs=1e-12)


def test_partial_overlap_matches_scipy(capsys):
    r = run_json(capsys, "0,1,1,2", "1,2,2,2")
    p, q = np.array([0.25, 0.5, 0.25]), np.array([0.0, 0.25, 0.75])  # on {0, 1, 2}
    assert r["js"] == pytest.approx(jensenshannon(p, q) ** 2, abs=1e-12)
    assert r["kl_qp"] == pytest.approx(float(np.sum(q[1:] * np.log(q[1:] / p[1:]))), abs=1e-12)
    assert r["kl_pq"] == "inf"
    assert r["w1"] == pytest.approx(wasserstein_distance([0, 1, 1, 2], [1, 2, 2, 2]), abs=1e-12)


# ------------------------------------------------------------------ files
@pytest.fixture(scope="module")
def normal_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("normal")
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.0, 1.0, 20000), rng.normal(4.0, 1.0, 20000)
    np.save(d / "a.npy", a)
    np.savetxt(d / "b.txt", b)
    (d / "b.csv").write_text("sample\n" + "\n".join(f"{v:.17g}" for v in b) + "\n")  # with a header line
    return d, a, b


def test_normal_0_1_vs_normal_4_1_is_about_4(capsys, normal_files):
    d, a, b = normal_files
    for q in ("b.txt", "b.csv"):
        r = run_json(capsys, str(d / "a.npy"), str(d / q))
        assert r["w1"] == pytest.approx(wasserstein_distance(a, b), rel=1e-9)  # the same samples, another code
        assert r["w1"] == pytest.approx(4.0, abs=0.05)  # the population value |mu1 - mu2|
        assert r["js"] == pytest.approx(LOG2, abs=1e-12) and r["disjoint"]  # continuous samples never coincide


def test_text_output_names_the_caveat(capsys, normal_files):
    d, _, _ = normal_files
    assert main(["distance", str(d / "a.npy"), str(d / "b.txt")]) == 0
    out = capsys.readouterr().out
    assert "W1 (CDF formula)" in out and "KL(P || Q)         inf" in out
    assert "disjoint supports" in out and "log 2" in out


def test_weighted_two_column_files(capsys, tmp_path):
    (tmp_path / "p.csv").write_text("value,weight\n0,0.5\n2,0.5\n")
    (tmp_path / "q.csv").write_text("1,1\n3,1\n")
    r = run_json(capsys, "--weighted", str(tmp_path / "p.csv"), str(tmp_path / "q.csv"))
    assert r["w1"] == pytest.approx(1.0, abs=1e-12)


def test_value_weight_tokens_in_a_text_file(capsys, tmp_path):
    (tmp_path / "p.txt").write_text("# two-point distribution\n0:0.5 2:0.5\n")
    r = run_json(capsys, str(tmp_path / "p.txt"), "1:0.5,3:0.5")
    assert r["w1"] == pytest.approx(1.0, abs=1e-12)


def test_exact_nd_translation_gives_the_shift_length(capsys, tmp_path):
    rng = np.random.default_rng(1)
    p = rng.normal(size=(300, 2))
    np.save(tmp_path / "p.npy", p)
    np.savetxt(tmp_path / "q.csv", p + np.array([3.0, 4.0]), delimiter=",")
    assert main(["distance", "--exact", str(tmp_path / "p.npy"), str(tmp_path / "q.csv"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["w1_exact"] == pytest.approx(5.0, abs=1e-9) and r["dim"] == 2


def test_exact_on_1d_lists_agrees_with_the_cdf_formula(capsys):
    assert main(["distance", "--exact", "0,1,2", "2,3,4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["w1_exact"] == pytest.approx(2.0, abs=1e-9)


# ------------------------------------------------------------------ bad input: one line, exit 2
def test_bad_inputs_get_one_line_errors(capsys, tmp_path):
    (tmp_path / "words.txt").write_text("1\n2\nbanana\n")
    (tmp_path / "empty.txt").write_text("# nothing here\n\n")
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    (tmp_path / "corrupt.npy").write_bytes(b"not really numpy")
    (tmp_path / "binary.dat").write_bytes(bytes(range(256)))
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2)))
    np.save(tmp_path / "pairs.npy", np.zeros((5, 2)))
    np.save(tmp_path / "strings.npy", np.array(["a", "b"]))
    np.save(tmp_path / "nan.npy", np.array([1.0, np.nan]))
    cases = {
        "missing.npy": "file not found",
        "words.txt": "'banana' is not a number",
        "empty.txt": "holds no numbers",
        "ragged.csv": "same number of columns",
        "corrupt.npy": "not a readable .npy file",
        "binary.dat": "not a text file",
        "cube.npy": "shape (2, 2, 2)",
        "pairs.npy": "use --exact",
        "strings.npy": "not numbers",
        "nan.npy": "NaN or Inf",
    }
    for name, expected in cases.items():
        line = run_error(capsys, str(tmp_path / name), "0,1")
        assert expected in line, (name, line)
        assert "P:" in line  # the message says which argument was wrong
    assert "folder" in run_error(capsys, str(tmp_path), "0,1")


def test_bad_lists_get_one_line_errors(capsys):
    assert "'x' is not a number" in run_error(capsys, "0,1", "0,x")
    assert "Q:" in run_error(capsys, "0,1", "0,x")
    assert "mixes plain values" in run_error(capsys, "0,1:0.5", "1")
    assert "negative" in run_error(capsys, "0:-1,1:2", "1")
    assert "sum to 0" in run_error(capsys, "0:0,1:0", "1")
    assert "file not found" in run_error(capsys, "abc", "1")
    assert "two distributions" in run_error(capsys, "0,1")


def test_exact_refuses_mismatched_dimensions(capsys, tmp_path):
    np.save(tmp_path / "p.npy", np.zeros((4, 2)))
    np.save(tmp_path / "q.npy", np.zeros((4, 3)))
    assert "dimension" in run_error(capsys, "--exact", str(tmp_path / "p.npy"), str(tmp_path / "q.npy"))


@pytest.mark.slow  # a subprocess
def test_real_command_line_process():
    # the console entry point end to end, as a user types it
    out = subprocess.run([sys.executable, "-m", "wgan", "distance", "0,1,2", "2,3,4"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "W1 (CDF formula)   2.000000" in out.stdout


# ------------------------------------------------------------------ the demo figure
def test_sweeps_show_js_saturating_and_w1_linear():
    from wgan.plots.distance import gaussian_sweep, point_mass_sweep

    g = gaussian_sweep(np.linspace(0, 8, 17))
    np.testing.assert_allclose(g["w1"], g["shift"], atol=1e-6)  # W1(N(0,1), N(d,1)) = d
    assert np.all(np.diff(g["js"]) > 0)  # JS grows ...
    assert g["js"][-1] == pytest.approx(LOG2, abs=1e-4)  # ... and saturates at log 2
    assert g["js"][-1] - g["js"][-3] < 1e-3  # flat over the last unit while W1 grew by 1
    p = point_mass_sweep([-2.0, -0.5, 0.0, 0.5, 2.0])
    np.testing.assert_allclose(p["w1"], [2.0, 0.5, 0.0, 0.5, 2.0], atol=1e-12)
    np.testing.assert_allclose(p["js"], [LOG2, LOG2, 0.0, LOG2, LOG2], atol=1e-12)


def test_demo_writes_the_figure(capsys, tmp_path):
    out = tmp_path / "js-vs-w1.png"
    assert main(["distance", "--demo", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    printed = capsys.readouterr().out
    assert "8.0   8.000  0.6931" in printed  # the last row of the sweep: W1 = 8, JS = log 2
    assert "folder" in run_error(capsys, "--demo", "--out", str(tmp_path / "nowhere" / "f.png"))
