"""`ardistill models`: the registry as a table."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from ardistill.cli.common import WeightsDirOption, console, human_count


def models_command(
    weights_dir: Optional[str] = WeightsDirOption,
    family: Optional[str] = typer.Option(None, "--family", help="Show only this family (var, llamagen, ...)."),
) -> None:
    """List every registered model: family, parameters, tokens per image, resolution, weights present locally."""
    from ardistill.registry import list_models, weights_home, weights_present

    rows = []
    for spec in list_models():
        if family and spec.family != family:
            continue
        present = weights_present(spec, weights_dir)
        where = "built-in" if spec.builtin else ("present" if present else "missing")
        rows.append((spec.name, spec.family, human_count(spec.params), str(spec.tokens_per_image), f"{spec.image_size}px",
                     f"[{'green' if present else 'yellow'}]{where}[/]", spec.description))
    table = Table(title=f"ardistill models (weights folder: {weights_home(weights_dir)})")
    headers = ("name", "family", "params", "tokens", "res", "weights")
    for i, col in enumerate(headers):  # fixed columns never wrap; the description takes what is left
        width = max([len(col)] + [len(r[i]) if i != 5 else 8 for r in rows])
        table.add_column(col, no_wrap=True, min_width=width, justify="right" if col in ("params", "tokens", "res") else "left")
    table.add_column("description", no_wrap=True, overflow="ellipsis", max_width=40)
    for r in rows:
        table.add_row(*r)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("models")(models_command)
