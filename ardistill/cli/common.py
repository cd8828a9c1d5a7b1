"""Options and helpers shared by subcommands."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ardistill.errors import BadArgumentError

console = Console(highlight=False)

WeightsDirOption = typer.Option(
    None, "--weights-dir", envvar="ARDISTILL_HOME", help="Folder with official weight files, downloaded there in the release layout when missing (default: files in ~/.cache/ardistill are used, downloads go to the Hugging Face cache).", show_envvar=True
)
DeviceOption = typer.Option("auto", "--device", help="Torch device: auto (CUDA, else Apple MPS, else CPU), cpu, cuda, cuda:1, mps.")
DtypeOption = typer.Option("fp32", "--dtype", help="fp32 (exact, the official numbers), bf16 or fp16 (GPU): the transformer's matrices and the tokenizer decoder run in that dtype.")
FastOption = typer.Option(False, "--fast", help="Fast sampling loops (LlamaGen: prefix attention, no per-token host copies); in fp32 the same tokens as the reference.")
UpscaleOption = typer.Option(None, "--upscale", min=1, show_default=False,
                             help="Enlarge each image in the grid by this integer factor, nearest neighbour (default: to at least 128 px, so 32-px images 4×; 1 = native size).")
CompileOption = typer.Option("off", "--compile", help="torch.compile the per-step forward: off, auto (reduce-overhead = CUDA graphs on a GPU, default on CPU), or a torch.compile mode.")


def RenamedOption(old: str, new: str):
    """A hidden option for a spelling that was renamed because torchrun's own parser takes it (`--num` reads as
    `--numa-binding`, `-t` is `--tee`, `-r` is `--redirects`): given, it is refused with a one-line error naming the
    new spelling instead of Click's bare "no such option". Its value never reaches the command."""

    def refuse(value: Optional[str]) -> None:
        if value is not None:
            raise BadArgumentError(f"{old} is now {new} (torchrun's parser takes {old} for one of its own options)")

    return typer.Option(None, old, hidden=True, callback=refuse, show_default=False)


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
    from ardistill.sampling.fast import parse_dtype as parse

    return parse(name)


def resolve_device(name: str):
    """`--device` → a torch.device: auto = CUDA, else MPS, else CPU; an unavailable explicit device is an error."""
    from ardistill.devices import resolve_device as resolve

    return resolve(name)


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
