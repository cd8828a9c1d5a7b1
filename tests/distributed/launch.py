"""Launch `ardistill` under torchrun (`python -m torch.distributed.run --standalone`) with gloo on the CPU."""

import os
import subprocess
import sys
from pathlib import Path

ENTRY = Path(__file__).resolve().parent / "entry.py"


def torchrun_command(nproc: int, argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", str(ENTRY), *argv]


def torchrun_env() -> dict:
    # One thread per worker (2 shared cores); CUDA hidden so the backend is gloo even on a GPU machine.
    return dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")


def run_torchrun(nproc: int, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(torchrun_command(nproc, argv), env=torchrun_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"torchrun failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc
