"""`ardistill distill`: the whole Distilled Decoding (DD or DD2) pipeline for one teacher, in one resumable command."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ardistill.cli.common import DeviceOption, RenamedOption, console


def distill_command(
    teacher: str = typer.Option(..., "--teacher", help="Teacher to distil (its recipe: recipes/<method>/<teacher>.yaml).", show_default=False),
    method: str = typer.Option("dd", "--method", help="dd: Distilled Decoding (noise → token trajectories, then a student); "
                               "dd2: Distilled Decoding 2 (conditional score distillation, no trajectories)."),
    steps: str = typer.Option("1", "--steps", help="Student step counts to benchmark: DD 1, 2 or 1,2; DD2 1 … the teacher's AR "
                              "steps (K ≥ 2: the teacher makes the last K − 1)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default: runs/distill/<teacher> for DD, "
                                       "runs/distill-dd2/<teacher> for DD2)."),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="Recipe (default: recipes/<method>/<teacher>.yaml)."),
    num_trajectories: Optional[int] = typer.Option(None, "--num-trajectories", min=1, help="DD only: override the recipe's dataset size."),
    train_steps: Optional[int] = typer.Option(None, "--train-steps", min=1, help="Override the recipe's training length (DD: "
                                              "optimiser steps; DD2: generator updates)."),
    fid_samples: int = typer.Option(1000, "--fid-samples", min=0, help="Samples per method for toy-FID / FID (0 = speed only)."),
    batch_sizes: str = typer.Option("1,16", "--batch-sizes", help="Batch sizes of the speed comparison."),
    repeats: int = typer.Option(5, "--repeats", min=1, help="Timed repeats per method and batch size."),
    baselines: Optional[str] = typer.Option(None, "--baselines", help="Naive baselines benched beside the student, e.g. skip-3,onestep, or none (default: the recipe's)."),
    shipped: bool = typer.Option(True, "--shipped/--no-shipped", help="Bench the teacher's shipped, fully trained students "
                                 "(`ardistill models --family dd-var` ...) beside this run's, at the --steps values ≤ 2 (every student takes those)."),
    device: str = DeviceOption,
    old_t: Optional[str] = RenamedOption("-t", "--teacher"),
    old_r: Optional[str] = RenamedOption("-r", "--recipe"),
) -> None:
    """Distil a teacher into a few-step student: (trajectories →) training → benchmark → report.

    Everything goes to one folder; run the same command again after an interruption and it continues where it
    stopped. Examples: ardistill distill --teacher var-toy-l --steps 1;
    ardistill distill --teacher var-toy-l --method dd2 --steps 1,2
    """
    from ardistill.cli.common import parse_int_list, resolve_device
    from ardistill.pipelines.distill import DistillPlan, recipe_for_teacher, run_distill

    default_out = Path("runs/distill") / teacher if method == "dd" else Path(f"runs/distill-{method}") / teacher
    plan = DistillPlan(teacher=teacher, recipe=recipe_for_teacher(teacher, recipe, method), out=out or default_out, method=method,
                       steps=tuple(parse_int_list(steps, "--steps")), num_trajectories=num_trajectories,
                       train_steps=train_steps, fid_samples=fid_samples,
                       batch_sizes=tuple(parse_int_list(batch_sizes, "--batch-sizes")), repeats=repeats,
                       device=str(resolve_device(device)),
                       baselines=_baselines(baselines), shipped=shipped)
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
