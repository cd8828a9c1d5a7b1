"""`ardistill report`: merge benchmark runs into one Markdown page with their plots."""

from __future__ import annotations

from pathlib import Path

import typer

from ardistill.cli.common import console


def report_command(
    runs: list[Path] = typer.Argument(..., help="Run folders written by `ardistill bench --out DIR`.", show_default=False),
    out: Path = typer.Option(Path("report.md"), "--out", "-o", help="Markdown page to write."),
) -> None:
    """Merge benchmark runs (tables, plots, sample grids) into one Markdown page.

    Example: ardistill report bench-cpu/ bench-h100/ --out report.md
    """
    from ardistill.bench.report import load_run, merged_markdown
    from ardistill.cli.common import out_path
    from ardistill.io import atomic_write_text

    out = out_path(out)
    docs = [load_run(r) for r in runs]
    atomic_write_text(out, merged_markdown(docs, out.resolve().parent))
    console.print(f"wrote {out} ({len(docs)} run{'s' if len(docs) != 1 else ''})")


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
