"""`ardistill models`: the registry as a table."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from ardistill.cli.common import WeightsDirOption, console, human_count


def models_command(
    weights_dir: Optional[str] = WeightsDirOption,
    family: Optional[str] = typer.Option(None, "--family", help="Show only this family (var, llamagen, ...)."),
    files: bool = typer.Option(False, "--files", help="List each weight file: its local path, or the Hub file it will be downloaded from."),
) -> None:
    """List every registered model: family, parameters, tokens per image, resolution, and where its weights are
    (built-in, present, or downloaded from the Hub on first use)."""
    from ardistill.hub import hub_cache_dir
    from ardistill.registry import download_dir, list_models, weights_home, weights_status

    rows, file_rows = [], []
    for spec in list_models():
        if family and spec.family != family:
            continue
        status = weights_status(spec, weights_dir)
        have = sum(path is not None for _, path in status)
        if spec.builtin:
            where, color = "built-in", "green"
        elif have == len(status):
            where, color = "present", "green"
        else:
            where, color = "will download" if have == 0 else f"{have}/{len(status)}, rest will download", "yellow"
        rows.append((spec.name, spec.family, human_count(spec.params), str(spec.tokens_per_image), f"{spec.image_size}px",
                     f"[{color}]{where}[/]", spec.description))
        file_rows += [(spec.name, wf.filename, str(path) if path is not None else f"will download {wf.hub}")
                      for wf, path in status]
    target = download_dir(weights_dir)
    title = (f"ardistill models (weights: {weights_home(weights_dir)} and the Hugging Face cache {hub_cache_dir()})"
             if target is None else f"ardistill models (weights folder: {target})")
    table = Table(title=title)
    headers = ("name", "family", "params", "tokens", "res", "weights")
    for i, col in enumerate(headers):  # fixed columns never wrap; the description takes what is left
        width = max([len(col)] + [len(r[i]) if i != 5 else 13 for r in rows])
        table.add_column(col, no_wrap=True, min_width=width, justify="right" if col in ("params", "tokens", "res") else "left")
    table.add_column("description", no_wrap=True, overflow="ellipsis", max_width=40)
    for r in rows:
        table.add_row(*r)
    console.print(table)
    if files:
        for name, filename, where in file_rows:
            console.print(f"{name}\t{filename}\t{where}", soft_wrap=True, markup=False)


def register(app: typer.Typer) -> None:
    app.command("models")(models_command)
