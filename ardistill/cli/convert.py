"""`ardistill convert IN OUT.safetensors`."""

from __future__ import annotations

from pathlib import Path

import typer

from ardistill.cli.common import console


def convert_command(
    src: Path = typer.Argument(..., help="Official checkpoint (.pth / .pt), read with weights_only=True.", show_default=False),
    dst: Path = typer.Argument(..., help="Output .safetensors file.", show_default=False),
) -> None:
    """Convert a torch checkpoint to safetensors (the state dict only: nesting and wrapper prefixes removed).
    The result loads everywhere the original does, without any unpickling."""
    from ardistill.errors import BadArgumentError
    from ardistill.io import atomic_save_safetensors, load_state_dict_file, sha256_file

    if dst.suffix != ".safetensors":
        raise BadArgumentError(f"output must end in .safetensors, got {dst}")
    sd = load_state_dict_file(src)
    # safetensors refuses shared storage; clone tensors that alias another one.
    seen: set[int] = set()
    clean = {}
    for k, v in sd.items():
        ptr = v.untyped_storage().data_ptr() if v.numel() else None
        clean[k] = v.clone() if ptr is not None and ptr in seen else v
        if ptr is not None:
            seen.add(ptr)
    atomic_save_safetensors(clean, dst, metadata={"converted_from": src.name, "source_sha256": sha256_file(src)})
    console.print(f"wrote {dst} ({len(clean)} tensors, {dst.stat().st_size / 2**20:.1f} MiB)")


def register(app: typer.Typer) -> None:
    app.command("convert")(convert_command)
