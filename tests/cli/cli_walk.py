"""Walk the Typer app as Click sees it: every command (recursively through groups) with its path."""

import typer.main

from ardistill.cli import app


def walk_commands():
    """[(("code", "sweep"), click command), ...] for every command and group of `ardistill`, the root excluded."""
    found = []

    def visit(cmd, path):
        if path:
            found.append((path, cmd))
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            visit(sub, (*path, name))

    visit(typer.main.get_command(app), ())
    return found


def options(cmd):
    """The command's own options (Click `Option` params; arguments excluded)."""
    return [p for p in cmd.params if p.param_type_name == "option"]
