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
    """Each test sees an empty weights folder unless it sets one."""
    home = tmp_path_factory.mktemp("ardistill_home")
    monkeypatch.setenv("ARDISTILL_HOME", str(home))
    yield home
