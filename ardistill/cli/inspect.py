"""`ardistill inspect PATH`: what a checkpoint file is."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ardistill.cli.common import console, human_count


def inspect_command(path: Path = typer.Argument(..., help="Checkpoint file (.pth, .pt or .safetensors).", show_default=False)) -> None:
    """Say what a checkpoint is: format, family and config guessed from its keys, parameter count, and the
    missing / unexpected keys against the guessed config."""
    from ardistill.io import checkpoint_format, diff_state_dict, load_state_dict_file
    from ardistill.registry import checkpoint_guessers

    fmt = checkpoint_format(path)
    sd = load_state_dict_file(path)
    n_params = sum(t.numel() for t in sd.values() if t.is_floating_point())
    dtypes = sorted({str(t.dtype).replace("torch.", "") for t in sd.values()})
    table = Table(show_header=False, title=str(path))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("format", "safetensors" if fmt == "safetensors" else "torch pickle (read with weights_only=True)")
    table.add_row("size", f"{path.stat().st_size / 2**20:.1f} MiB")
    table.add_row("tensors", f"{len(sd)} ({', '.join(dtypes)})")
    table.add_row("floating-point values", f"{human_count(n_params)} ({n_params:,})")
    guess = None
    for guesser in checkpoint_guessers():
        guess = guesser(sd)
        if guess is not None:
            break
    if guess is None:
        table.add_row("family", "[yellow]not recognised[/] (no registered family matches its keys)")
        console.print(table)
        return
    table.add_row("family", guess.family)
    table.add_row("component", guess.component)
    table.add_row("config", guess.config_name)
    table.add_row("registered as", guess.spec_name or "—")
    module = guess.build()
    diff = diff_state_dict(module.state_dict(), sd)
    ok = not (diff["missing"] or diff["unexpected"] or diff["shape"])
    table.add_row("strict load", "[green]ok: every key and shape matches[/]" if ok else "[red]mismatch[/]")
    for name in ("missing", "unexpected"):
        if diff[name]:
            table.add_row(f"{name} keys ({len(diff[name])})", "\n".join(diff[name][:10]) + ("\n…" if len(diff[name]) > 10 else ""))
    if diff["shape"]:
        rows = [f"{k}: expects {list(w)}, file has {list(g)}" for k, w, g in diff["shape"][:10]]
        table.add_row(f"shape mismatches ({len(diff['shape'])})", "\n".join(rows))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect_command)
