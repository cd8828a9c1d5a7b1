"""Which torch device a run uses: `auto` (CUDA, else Apple MPS, else CPU) or an explicit one that must exist.

The CLI's `--device` defaults to `auto`; the Python API's loaders keep `device="cpu"` as their default (a library
call does not move to a GPU behind its caller's back) and accept `"auto"` too.
"""

from __future__ import annotations

import platform

import torch

from ardistill.errors import BadArgumentError

AUTO = "auto"


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str | torch.device = AUTO) -> torch.device:
    """`"auto"` → the first of CUDA (this process's current GPU, `cuda:N`), MPS, CPU that is available; an explicit
    device (`cpu`, `cuda`, `cuda:1`, `mps`, a torch.device) → itself, with `cuda` made `cuda:N` of the current GPU
    (under torchrun: this rank's). Unknown or unavailable devices are a one-line BadArgumentError."""
    if isinstance(name, torch.device):
        dev = name
    else:
        text = str(name).strip().lower()
        if text == AUTO:
            if torch.cuda.is_available():
                return torch.device("cuda", torch.cuda.current_device())
            if _mps_available():
                return torch.device("mps")
            return torch.device("cpu")
        try:
            dev = torch.device(text)
        except RuntimeError:
            raise BadArgumentError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BadArgumentError(f"device {str(name)!r} requested but CUDA is not available on this machine")
        if dev.index is None:
            return torch.device("cuda", torch.cuda.current_device())
        if dev.index >= torch.cuda.device_count():
            raise BadArgumentError(f"device {str(name)!r} requested but this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        if not _mps_available():
            raise BadArgumentError(f"device {str(name)!r} requested but Apple MPS is not available on this machine")
    elif dev.type != "cpu":
        raise BadArgumentError(f"device {str(name)!r} is not supported; use auto, cpu, cuda, cuda:N or mps")
    return dev


def describe_device(device: str | torch.device) -> str:
    """What a report says about where it ran: `cpu (x86_64)`, `cuda:0 (NVIDIA H100 80GB HBM3)`, `mps (arm64)`."""
    dev = torch.device(device)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"{dev} ({platform.processor() or platform.machine()})"


__all__ = ["AUTO", "resolve_device", "describe_device"]
