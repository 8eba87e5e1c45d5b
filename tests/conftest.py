import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)  # small models: one thread is as fast and immune to a busy neighbour

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def one_thread():
    # a Trainer sets the thread count from its config; give every test the same start
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def seed():
    torch.manual_seed(0)
    return 0


@pytest.fixture
def tiny():
    """Config overrides for tiny, fast runs."""
    return {"g_width": 16, "c_width": 16, "g_depth": 1, "c_depth": 1, "batch_size": 32, "eval_samples": 200,
            "threads": 1}


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    # runs/ and caches land in the test's own folder
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WGAN_CACHE", os.environ.get("WGAN_TEST_CACHE", str(REPO / ".cache" / "test")))
