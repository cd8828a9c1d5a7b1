"""`ardistill download NAME...`: fetch the official weight files of registered models (thin over `ardistill.download`)."""

from __future__ import annotations

from typing import List, Optional

import typer

from ardistill.cli.common import console


def download_command(
    names: List[str] = typer.Argument(..., help="Registered model names (see `ardistill models`), e.g. var-d16 dd-var-d16.", show_default=False),
    weights_dir: Optional[str] = typer.Option(None, "--weights-dir", envvar="ARDISTILL_HOME", show_envvar=True,
                                              help="Download into this folder, in the release's layout (default: the Hugging Face cache)."),
    offline: bool = typer.Option(False, "--offline", help="Do not download: check that the files are present (as HF_HUB_OFFLINE=1)."),
) -> None:
    """Download official weights from the Hugging Face Hub at the pinned revisions (resumable; HF_ENDPOINT and HF_TOKEN
    are honoured). Into --weights-dir / $ARDISTILL_HOME in the release's layout when set, else the Hugging Face cache.
    A DD student brings its teacher's files too. Built-in models need nothing."""
    from ardistill.api import download
    from ardistill.registry import get_model_spec

    result = download(names, weights_dir=weights_dir, offline=True if offline else None)
    for name, paths in result.items():
        note = " (built-in, nothing to download)" if get_model_spec(name).builtin else ""
        console.print(f"{name}{note}")
        for p in paths:
            console.print(f"  {p}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("download")(download_command)
