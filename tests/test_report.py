"""report.html: a short WGAN-GP run on ring8 end to end, every figure embedded and loaded by a real
browser (headless Chromium), the numbers on the page recomputed independently from metrics.jsonl."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from wgan.cli import main

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
TOY_FIGURES = {"samples", "critic-contours", "w1", "curves", "penalty", "grad-norm-hist"}


def _chromium() -> str:
    """The Chromium binary; the test skips where there is none (a test installs no system package)."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium not found (chromium, chromium-browser, google-chrome): report.html is not "
                "loaded in a browser; `make test` installs it (apt-get install chromium)")


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A short WGAN-GP run on ring8 through the command line, as a user runs it."""
    out = tmp_path_factory.mktemp("report") / "run"
    buf = io.StringIO()
    from contextlib import redirect_stdout

    with redirect_stdout(buf):
        rc = main(["train", "--out", str(out), "--steps", "300", "--tick-every-steps", "50", "--quiet",
                   "--eval-samples", "1000", "--threads", "1"])
    assert rc == 0
    return out, buf.getvalue()


def _images(page: str) -> dict[str, bytes]:
    found = re.findall(r"<img id='fig-([\w-]+)'[^>]*src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    return {name: base64.b64decode(data) for name, data in found}


@pytest.mark.slow  # a 300-step run through the CLI (and Chromium)
def test_train_ends_with_the_verdict_and_writes_the_report(toy_run):
    run_dir, stdout = toy_run
    assert (run_dir / "report.html").is_file()
    lines = stdout.strip().splitlines()
    verdict_at = next(i for i, line in enumerate(lines) if line.strip().startswith("health: "))
    assert all(line.startswith("    ") or line.startswith("  ") for line in lines[verdict_at + 1:])
    assert f"report             {run_dir / 'report.html'}" in stdout
    for name in ("W estimate decreasing", "no wild oscillation", "critic converging", "no explosion"):
        assert name in stdout


@pytest.mark.slow  # a 300-step run through the CLI (and Chromium)
def test_every_figure_is_an_embedded_png_and_nothing_is_fetched(toy_run):
    from PIL import Image

    run_dir, _ = toy_run
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    images = _images(page)
    assert TOY_FIGURES <= set(images), set(images)
    assert page.count("<img") == len(images)  # no image outside the checked ones
    for name, png in images.items():
        im = Image.open(io.BytesIO(png))
        im.verify()
        assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100, name
    # self-contained: every src is a data: URI, every link an anchor on the page
    assert all(s.startswith("data:") for s in re.findall(r"src='([^']*)'", page))
    for href in re.findall(r"href='([^']*)'", page):
        assert href.startswith("#") and f"id='{href[1:]}'" in page, href
    assert "http://" not in page and "https://" not in page


@pytest.mark.slow  # a 300-step run through the CLI (and Chromium)
def test_report_shows_the_correlation_computed_from_the_metrics(toy_run):
    run_dir, _ = toy_run
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    gap = np.array([r["critic/gap"] for r in records])
    w1 = np.array([r["metrics/w1"] for r in records])
    r = np.corrcoef(gap, w1)[0, 1]
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert f"Pearson <b>r = {r:.3f}</b>" in page
    assert f"median ratio gap / W1 = <b>{np.median(gap / w1):.2f}</b>" in page
    # the per-tick diagnostics are in every record
    for rec in records:
        assert sum(rec["grad_norm/hist"]) == 1024
        assert rec["grad_norm/verdict"] in ("excellent", "acceptable", "poor")
        assert rec["lipschitz/empirical"] > 0


@pytest.mark.slow  # a 300-step run through the CLI (and Chromium)
def test_chromium_loads_every_figure(toy_run, tmp_path):
    """Open the page in headless Chromium; a script appended to a copy reads back every image's
    decoded size, which must equal the size of the embedded PNG."""
    from PIL import Image

    chromium = _chromium()
    run_dir, _ = toy_run
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    expected = {name: Image.open(io.BytesIO(png)).size for name, png in _images(page).items()}
    probe = """<script>
    window.addEventListener('load', () => {
      const out = [...document.images].map(im => [im.id, im.complete, im.naturalWidth, im.naturalHeight]);
      const pre = document.createElement('pre'); pre.id = 'figcheck';
      pre.textContent = 'FIG' + 'CHECK' + JSON.stringify(out) + 'END' + 'CHECK';  // not in the source
      document.body.appendChild(pre);
    });
    </script></body>"""
    check = tmp_path / "check.html"
    check.write_text(page.replace("</body>", probe), encoding="utf-8")
    result = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
         "--dump-dom", check.as_uri()], capture_output=True, text=True, timeout=180)
    m = re.search(r"FIGCHECK(.*?)ENDCHECK", result.stdout, re.S)
    assert m, f"no result from Chromium (rc {result.returncode}): {result.stderr[-2000:]}"
    loaded = {name[len("fig-"):]: (complete, w, h) for name, complete, w, h in json.loads(m.group(1))}
    assert set(loaded) == set(expected)
    for name, (complete, w, h) in loaded.items():
        assert complete and (w, h) == expected[name], (name, complete, w, h, expected[name])


@pytest.mark.slow  # a 300-step run through the CLI (and Chromium)
def test_wgan_report_regenerates_the_page(toy_run, capsys):
    run_dir, _ = toy_run
    (run_dir / "report.html").unlink()
    assert main(["report", str(run_dir), "--no-critic"]) == 0
    out = capsys.readouterr().out
    assert "health: " in out and str(run_dir / "report.html") in out
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "critic-contours" not in _images(page) and "w1" in _images(page)
    assert main(["report", str(run_dir)]) == 0
    assert "critic-contours" in _images((run_dir / "report.html").read_text(encoding="utf-8"))


def test_wgan_report_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "is it a wgan run" in capsys.readouterr().err


def test_image_run_report_shows_the_validation_gap(tmp_path):
    """An image run's page from its files alone: sample grid, validation estimate, no toy figures."""
    from PIL import Image

    from wgan.config import TrainConfig
    from wgan.report import build_report

    run = tmp_path / "img"
    (run / "samples").mkdir(parents=True)
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(
        run / "samples" / "step-0000100.png")
    cfg = TrainConfig(data="mnist:/nowhere", variant="wgan-gp").to_dict()
    (run / "config.json").write_text(json.dumps(cfg))
    hist = np.zeros(102, dtype=int)
    hist[50] = 128
    recs = [{"step": 100 * i, "critic/gap": 5.0 / i, "loss/critic": -5.0 / i, "critic/gap_train": 5.0 / i,
             "critic/gap_val": 4.5 / i, "grad_norm/mean": 1.0, "grad_norm/hist": hist.tolist(),
             "lipschitz/penalty": 0.1} for i in range(1, 9)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    page = build_report(run)
    images = _images(page)
    assert {"samples", "validation-gap", "curves", "penalty", "grad-norm-hist"} <= set(images)
    assert "w1" not in images and "critic-contours" not in images
    assert "HEALTHY" in page


@pytest.mark.slow  # a subprocess
def test_importing_the_library_loads_no_matplotlib():
    code = ("import sys, wgan, wgan.diagnostics, wgan.report, wgan.cli.report, wgan.diagnostics.tb; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
