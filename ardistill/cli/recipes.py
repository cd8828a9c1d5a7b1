"""`ardistill recipes`: list, print and copy out the recipes shipped with the package (thin over ardistill.recipes)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from ardistill.cli.common import console

app = typer.Typer(help="The shipped recipes: list them, print one, copy one out for editing (then pass --recipe FILE).",
                  invoke_without_command=True)


@app.callback()
def recipes_callback(ctx: typer.Context) -> None:
    """List the recipes (`ardistill recipes`), print one (`show NAME`) or copy one out (`copy NAME DEST`)."""
    if ctx.invoked_subcommand is None:
        list_command(kind=None)


@app.command("list")
def list_command(
    kind: Optional[str] = typer.Option(None, "--kind", help="Only recipes of this kind (dd-student, var-teacher, code-finetune, ...)."),
) -> None:
    """List every recipe: name (what --recipe accepts), kind, where it comes from, what it is."""
    from ardistill.errors import BadArgumentError
    from ardistill.recipes import RECIPES_ENV, builtin_root, list_recipes, user_root

    recipes = list_recipes()
    if kind is not None:
        kinds = sorted({r.kind for r in recipes})
        recipes = [r for r in recipes if r.kind == kind]
        if not recipes:
            raise BadArgumentError(f"no recipe of kind {kind!r}; kinds: {', '.join(kinds)}")
    where = f"built-in: {builtin_root()}" + (f"; {RECIPES_ENV}: {user_root()}" if user_root() else "")
    table = Table(title=f"ardistill recipes ({escape(where)})")
    table.add_column("name", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    if user_root():
        table.add_column("source", no_wrap=True)
    table.add_column("description", no_wrap=True, overflow="ellipsis")
    for r in recipes:
        table.add_row(r.name, r.kind, *([r.source] if user_root() else []), escape(r.description))
    console.print(table)


@app.command("show")
def show_command(name: str = typer.Argument(..., help="Recipe name (dd/var-toy-l) or YAML file.", show_default=False)) -> None:
    """Print a recipe's YAML exactly as stored (comments included)."""
    from ardistill.recipes import read_recipe_text

    typer.echo(read_recipe_text(name), nl=False)


@app.command("copy")
def copy_command(
    name: str = typer.Argument(..., help="Recipe name (dd/var-toy-l) or YAML file.", show_default=False),
    dest: Path = typer.Argument(..., help="File to write, or an existing folder (the recipe's file name is kept).", show_default=False),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite DEST if it exists."),
) -> None:
    """Copy a recipe out for editing; run it with --recipe DEST (e.g. ardistill distill --teacher var-toy-l --recipe DEST)."""
    from ardistill.recipes import copy_recipe

    console.print(f"wrote {escape(str(copy_recipe(name, dest, force=force)))}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="recipes")
