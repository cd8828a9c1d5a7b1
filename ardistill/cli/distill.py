"""`ardistill distill`: the whole Distilled Decoding pipeline for one teacher, in one resumable command."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ardistill.cli.common import DeviceOption, RenamedOption, console


def distill_command(
    teacher: str = typer.Option(..., "--teacher", help="Teacher to distil (its recipe: recipes/dd/<teacher>.yaml).", show_default=False),
    steps: str = typer.Option("1", "--steps", help="Student step counts to benchmark: 1, 2 or 1,2."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default: runs/distill/<teacher>)."),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="DD recipe (default: recipes/dd/<teacher>.yaml)."),
    num_trajectories: Optional[int] = typer.Option(None, "--num-trajectories", min=1, help="Override the recipe's dataset size."),
    train_steps: Optional[int] = typer.Option(None, "--train-steps", min=1, help="Override the recipe's optimiser steps."),
    fid_samples: int = typer.Option(1000, "--fid-samples", min=0, help="Samples per method for toy-FID / FID (0 = speed only)."),
    batch_sizes: str = typer.Option("1,16", "--batch-sizes", help="Batch sizes of the speed comparison."),
    repeats: int = typer.Option(5, "--repeats", min=1, help="Timed repeats per method and batch size."),
    baselines: Optional[str] = typer.Option(None, "--baselines", help="Naive baselines benched beside the student, e.g. skip-3,onestep, or none (default: the recipe's)."),
    device: str = DeviceOption,
    old_t: Optional[str] = RenamedOption("-t", "--teacher"),
    old_r: Optional[str] = RenamedOption("-r", "--recipe"),
) -> None:
    """Distil a teacher into a 1–2-step student: trajectories → training → benchmark → report.

    Everything goes to one folder; run the same command again after an interruption and it continues where it
    stopped. Example: ardistill distill --teacher var-toy-l --steps 1
    """
    from ardistill.cli.common import parse_int_list, resolve_device
    from ardistill.pipelines.distill import DistillPlan, recipe_for_teacher, run_distill

    plan = DistillPlan(teacher=teacher, recipe=recipe_for_teacher(teacher, recipe), out=out or Path("runs/distill") / teacher,
                       steps=tuple(parse_int_list(steps, "--steps")), num_trajectories=num_trajectories,
                       train_steps=train_steps, fid_samples=fid_samples,
                       batch_sizes=tuple(parse_int_list(batch_sizes, "--batch-sizes")), repeats=repeats,
                       device=str(resolve_device(device)),
                       baselines=_baselines(baselines))
    report = run_distill(plan, log=console.print)
    console.print(f"wrote {report}")


def _baselines(text: Optional[str]) -> Optional[tuple[str, ...]]:
    """`--baselines`: None (not given: the recipe's), "none" → (), else the comma-separated names."""
    if text is None:
        return None
    names = tuple(b.strip() for b in text.split(",") if b.strip())
    return () if names in ((), ("none",)) else names


def register(app: typer.Typer) -> None:
    app.command("distill")(distill_command)
