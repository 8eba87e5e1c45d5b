# `make demo`, `make test`, `make test-fast` and `make lint` set up .venv themselves: the pinned CPU torch first (a
# bare `torch` requirement would pull gigabytes of CUDA packages), then this project with its test extra (pytest,
# ruff).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-fast lint bench bench-quality clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test]'
	@# the compiled MLP step (about 30 s, once per source version; without a compiler the PyTorch path runs)
	$(BIN)/python -m wgan.engines
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/wgan train

test: $(STAMP)
	@# headless Chromium opens report.html in tests/test_report.py (Debian package; no network at test time)
	command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	  || echo "make: could not install chromium; tests/test_report.py skips its browser check"
	$(BIN)/python -m pytest -q tests

# Unit tests only (under 2 minutes): the tests marked slow (subprocesses, kill, Chromium, the C++ build, MNIST,
# long training runs) run in `make test` alone.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" tests

# Rules and their exceptions: [tool.ruff] in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

# Seconds of training to every mode and >= 90% (ring8) / 75% (grid25) high-quality samples, per setting:
# the toy preset and the WGAN-GP paper's settings, `wgan train`'s default threads, wall clock, then the
# figure. See docs/performance.md.
bench-quality: $(STAMP)
	$(BIN)/python -m benchmarks.time_to_quality --data ring8,grid25 --settings preset,toy --threads 0 \
		--clock wall --budget 600 --after 30
	$(BIN)/python -m benchmarks.time_to_quality --plot docs/time_to_quality.png --settings preset,toy --clock wall

clean:
	rm -rf $(VENV) runs build src/*.egg-info
