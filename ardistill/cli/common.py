"""Options and helpers shared by subcommands."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ardistill.errors import BadArgumentError

console = Console(highlight=False)

WeightsDirOption = typer.Option(
    None, "--weights-dir", envvar="ARDISTILL_HOME", help="Folder with official weight files [default: ~/.cache/ardistill].", show_envvar=True
)
DeviceOption = typer.Option("cpu", "--device", help="Torch device: cpu, cuda, cuda:1, ...")


def parse_int_list(text: Optional[str], name: str) -> Optional[list[int]]:
    """'207' or '207,360,387' → [207, 360, 387]."""
    if text is None:
        return None
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise BadArgumentError(f"{name} must be an integer or a comma-separated list of integers, got {text!r}") from None


def parse_number_list(text: Optional[str], name: str, cast=float):
    """'1.0' → 1.0; '1.1,1.1,1.0' → [1.1, 1.1, 1.0] (per-step values)."""
    if text is None:
        return None
    try:
        values = [cast(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise BadArgumentError(f"{name} must be a number or a comma-separated list of numbers, got {text!r}") from None
    if not values:
        raise BadArgumentError(f"{name} is empty")
    return values[0] if len(values) == 1 else values


def parse_dtype(name: str):
    import torch

    table = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}
    if name not in table:
        raise BadArgumentError(f"unknown dtype {name!r}; choose fp32, bf16 or fp16")
    return table[name]


def resolve_device(name: str):
    import torch

    try:
        dev = torch.device(name)
    except RuntimeError:
        raise BadArgumentError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BadArgumentError(f"device {name!r} requested but CUDA is not available on this machine")
    return dev


def human_count(n: int) -> str:
    if n <= 0:
        return "?"
    for unit, div in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:.1f}{unit}" if n / div < 100 else f"{n / div:.0f}{unit}"
    return str(n)


def out_path(path: Path) -> Path:
    from ardistill.io import ensure_writable

    return ensure_writable(path)
