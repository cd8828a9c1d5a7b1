"""`ardistill student ...`: ship a trained DD / DD2 student as a built-in model, loadable by name."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ardistill.cli.common import console, parse_int_list

student_app = typer.Typer(help="Ship trained DD / DD2 students as built-in models (loadable by name, with measured model cards).",
                          no_args_is_help=True)


@student_app.command("install")
def install_command(
    run_dir: Path = typer.Argument(..., help="A finished student folder (student.json + student.safetensors), as `ardistill train` writes it."),
    name: str = typer.Option(..., "--name", help="Name to ship it under, e.g. dd2-var-toy-l.", show_default=False),
    steps: str = typer.Option("1,2", "--steps", help="Step counts to measure for the card."),
    num: int = typer.Option(1000, "--num-samples", "-n", min=10, help="Images per step count for the measured metrics."),
    description: str = typer.Option("", "--description", help="One line for `ardistill models` (default: method and teacher)."),
    weights_root: Optional[Path] = typer.Option(None, "--weights-root", help="Where to install (default: the package's weights folder)."),
) -> None:
    """Install a trained student as a built-in model and measure it: the weights are stored for shipping (matrices in
    fp16), the installed copy is loaded back through `ardistill.load_student` and its 1- / 2-step samples are scored by
    the evaluation protocol; the card (student.json `builtin` block, README.md) records the numbers.

    Example: ardistill student install runs/distill-dd2/var-toy-l/student --name dd2-var-toy-l
    """
    import json

    from ardistill.pipelines.student_install import install_student

    counts = parse_int_list(steps, "--steps")
    dest = install_student(run_dir, name, root=weights_root, steps=counts, num=num, description=description,
                           progress=lambda msg: console.print(msg))
    metrics = json.loads((dest / "student.json").read_text())["builtin"]["metrics"]
    console.print(f"installed {dest}: " + "; ".join(f"{k} toy-FID {v['fid']:.2f}, class acc. {100 * v['class_accuracy']:.1f}%"
                                                    for k, v in metrics.items() if k.endswith("step")))


def register(app: typer.Typer) -> None:
    app.add_typer(student_app, name="student")
