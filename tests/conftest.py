"""Shared test settings: fp32 exactness (no TF32), few threads, deterministic algorithms where possible."""

import os
import sys
from pathlib import Path

import pytest
import torch

# Test helpers shared across folders (tests/official_layout.py) import by module name.
sys.path.insert(0, str(Path(__file__).resolve().parent))

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.set_float32_matmul_precision("highest")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Each test sees an empty weights folder unless it sets one, an empty Hugging Face cache, and no Hub: offline
    mode, and an endpoint nothing listens on (tests/hub serves a local one when a test downloads)."""
    home = tmp_path_factory.mktemp("ardistill_home")
    monkeypatch.setenv("ARDISTILL_HOME", str(home))
    hf_home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield home
