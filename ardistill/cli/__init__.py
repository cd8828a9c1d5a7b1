"""`ardistill` command line: one Typer app per subcommand group, thin over the Python API.

Every user mistake is raised as an ArdistillError; `main` prints it on one line and exits with code 2.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from ardistill import __version__
from ardistill.errors import ArdistillError

err_console = Console(stderr=True, highlight=False, soft_wrap=True)

app = typer.Typer(
    name="ardistill",
    help="Make autoregressive image generators (VAR, LlamaGen) fast: exact models, distillation, CoDe, benchmarks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ardistill {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    offline: bool = typer.Option(False, "--offline", help="Never download weights (as HF_HUB_OFFLINE=1): a missing file is an error naming `ardistill download`."),
) -> None:
    """Make autoregressive image generators fast."""
    if offline:  # read at call time by ardistill.hub, inherited by torchrun workers and subprocesses
        import os

        os.environ["HF_HUB_OFFLINE"] = "1"


def _register_commands() -> None:
    from ardistill.cli import (bench, code, convert, data, distill, download, evaluator, inspect, models, recipes, report,
                               sample, student, teacher, train, trajectories)

    # `--help` lists them in this order: the pipeline first, then the tools.
    for module in (distill, sample, trajectories, train, code, bench, report, student, teacher, data, evaluator, models, recipes, download,
                   inspect, convert):
        module.register(app)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: one-line errors with exit code 2, never a traceback for a user mistake.

    Usage errors (unknown option, bad type) are Typer's own: a short message and exit code 2.
    Launched by torchrun (`torchrun --nproc-per-node P -m ardistill ...`), every command runs in one process group.
    """
    from ardistill import distributed

    clean = False
    try:
        distributed.init()  # under torchrun: one process group for the whole command; else nothing
        try:
            app(args=argv)
        except SystemExit as e:
            clean = e.code in (0, None)
            raise
        clean = True
    except ArdistillError as e:
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", markup=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    finally:
        distributed.shutdown(synchronize=clean)
