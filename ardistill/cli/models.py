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

    table = Table(title=f"ardistill models (weights folder: {weights_home(weights_dir)})")
    for col, kw in (("name", {}), ("family", {}), ("params", {"justify": "right"}), ("tokens", {"justify": "right"}),
                    ("resolution", {"justify": "right"}), ("weights", {}), ("description", {})):
        table.add_column(col, **kw)
    for spec in list_models():
        if family and spec.family != family:
            continue
        present = weights_present(spec, weights_dir)
        where = "built-in" if spec.builtin else ("present" if present else "missing")
        style = "green" if present else "yellow"
        table.add_row(spec.name, spec.family, human_count(spec.params), str(spec.tokens_per_image),
                      f"{spec.image_size}px", f"[{style}]{where}[/]", spec.description)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("models")(models_command)
