"""`ardistill trajectories`: Distilled Decoding trajectory datasets (make, resume, verify)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ardistill.cli.common import DeviceOption, RenamedOption, WeightsDirOption, console, parse_number_list

app = typer.Typer(help="DD trajectory datasets: teacher samples whose tokens are the flow map of per-sample noise.")


@app.callback(invoke_without_command=True)
def generate_command(
    ctx: typer.Context,
    teacher: Optional[str] = typer.Option(None, "--teacher", help="Registered model name or a checkpoint path.", show_default=False),
    num: Optional[int] = typer.Option(None, "--num-samples", "-n", min=1, help="Number of samples (global ids 0 … N-1).", show_default=False),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Dataset folder (created, or resumed when it holds the same dataset).",
                                       show_default=False),
    seed: int = typer.Option(0, "--seed", min=0, help="Dataset seed: noise and labels are a pure function of (seed, index)."),
    shard_size: int = typer.Option(1024, "--shard-size", min=1, help="Samples per shard file (fixes the shard boundaries)."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Samples per teacher batch (does not change the data)."),
    cfg: Optional[float] = typer.Option(None, "--cfg", help="Classifier-free guidance scale (default: the model's)."),
    top_k: Optional[str] = typer.Option(None, "--top-k", help="Keep the k most likely tokens (0 = off); VAR: one value or one per scale."),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="Nucleus filtering (0 or 1 = off) (default: the model's)."),
    temperature: Optional[str] = typer.Option(None, "--temperature", help="Softmax temperature; VAR: one value or one per scale."),
    cfg_interval: Optional[int] = typer.Option(None, "--cfg-interval", help="LlamaGen: stop guidance after this decode step (-1 = never)."),
    flow_steps: int = typer.Option(200, "--flow-steps", min=1, help="ODE steps of the per-token flow map."),
    flow_solver: str = typer.Option("euler", "--flow-solver", help="Flow-map solver: euler (exact-Euler), heun, or dpm2m (2nd-order multistep in log-SNR)."),
    weights_dir: Optional[str] = WeightsDirOption,
    random_init: bool = typer.Option(False, "--random-init", help="Randomly initialised teacher (no files; smoke tests)."),
    device: str = DeviceOption,
    old_t: Optional[str] = RenamedOption("-t", "--teacher"),
    old_num: Optional[str] = RenamedOption("--num", "--num-samples"),
) -> None:
    """Make (or finish) a trajectory dataset; killed at any moment and run again, it continues where it stopped.

    Example: ardistill trajectories --teacher var-d16 --num-samples 1200000 --out data/dd-var-d16 --cfg 2.0 --top-k 900 --top-p 0.95
    Many GPUs / nodes: torchrun --nproc-per-node 8 -m ardistill trajectories ... (see docs/scaling.md).
    """
    if ctx.invoked_subcommand is not None:
        return
    from ardistill.errors import BadArgumentError

    missing = [flag for flag, value in (("--teacher", teacher), ("--num-samples", num), ("--out", out)) if value is None]
    if missing:
        raise BadArgumentError(f"missing {', '.join(missing)} (see `ardistill trajectories --help`)")
    from ardistill.api import load_teacher
    from ardistill.cli.common import resolve_device
    from ardistill.methods.dd.flow import FlowMapConfig
    from ardistill.methods.dd.trajectories import generate_trajectories

    model = load_teacher(teacher, weights_dir=weights_dir, device=resolve_device(device), random_init=random_init)
    run = generate_trajectories(
        model, out, num=num, seed=seed, shard_size=shard_size, batch_size=batch_size, cfg=cfg,
        top_k=parse_number_list(top_k, "--top-k", int), top_p=top_p, temperature=parse_number_list(temperature, "--temperature"),
        cfg_interval=cfg_interval, flow=FlowMapConfig(steps=flow_steps, solver=flow_solver), progress=True,
    )
    rate = f", {run.samples_per_second:.2f} samples/s, flow map {100 * run.flow_seconds / run.seconds:.0f} % of the time" if run.samples else ""
    state = "complete, manifest written" if run.finalized else "incomplete"
    from ardistill import distributed

    who = f"rank {distributed.rank()}/{distributed.world()}: " if distributed.world() > 1 else ""
    console.print(f"{who}{run.root}: {len(run.shards_written)} shards written ({run.samples} samples{rate}); dataset {state}")


@app.command("verify")
def verify_command(root: Path = typer.Argument(..., help="Dataset folder.", show_default=False)) -> None:
    """Check every shard against its recorded SHA-256; one line per problem, exit code 1 if any."""
    from ardistill.methods.dd.trajectories import verify_trajectories

    problems = verify_trajectories(root)
    for line in problems:
        typer.echo(f"{root}: {line}")
    if problems:
        raise typer.Exit(1)
    console.print(f"{root}: intact")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="trajectories")
