"""`ardistill code ...`: Collaborative Decoding — fine-tune a drafter/refiner pair, sweep the number of drafted scales.

Sampling with a pair is `ardistill sample --drafter var-d30 --refiner var-d16 --draft-steps 8 ...`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ardistill.cli.common import DeviceOption, RenamedOption, WeightsDirOption, console, parse_number_list

code_app = typer.Typer(help="Collaborative Decoding (CoDe): a large VAR drafts the coarse scales, a small one refines.",
                       no_args_is_help=True)


def load_pair(drafter: Optional[str], refiner: Optional[str], *, finetuned: Optional[Path] = None, weights_dir=None,
              device="cpu", random_init: bool = False):
    """(drafter, refiner) VAR teachers by name (or from a fine-tuning folder's code.json), fine-tuned weights applied."""
    from ardistill.api import load_teacher
    from ardistill.errors import ArdistillError
    from ardistill.methods.code.finetune import apply_finetuned, read_finetune_card

    if finetuned is not None:
        card = read_finetune_card(finetuned)
        drafter, refiner = drafter or card["drafter"], refiner or card["refiner"]
        random_init = random_init or bool(card.get("random_init"))
    if drafter is None or refiner is None:
        raise ArdistillError("CoDe needs both --drafter NAME and --refiner NAME (or --finetuned DIR)")
    d = load_teacher(drafter, weights_dir=weights_dir, device=device, random_init=random_init, seed=1)
    r = load_teacher(refiner, weights_dir=weights_dir, device=device, random_init=random_init, seed=2)
    if random_init:
        r.vae = d.vae  # random tokenizers differ per seed; a CoDe pair shares one by definition
    if finetuned is not None:
        apply_finetuned(finetuned, d, r)
    return d, r


class PairSampler:
    """A CoDe pair with N fixed, shaped like a teacher for `ardistill sample` (sample / decode / name / device)."""

    def __init__(self, code, draft_steps: int):
        self.code, self.draft_steps = code, code.check_draft_steps(draft_steps)
        self.name = f"CoDe {code.drafter.name} + {code.refiner.name}, N={self.draft_steps}"
        self.num_classes, self.device = code.drafter.num_classes, code.device

    def sample(self, labels, *, seed=None, **kw):
        return self.code.sample(labels, draft_steps=self.draft_steps, seed=seed, **kw)

    def decode(self, tokens):
        return self.code.decode(tokens)


def load_pair_sampler(drafter, refiner, draft_steps, *, finetuned=None, weights_dir=None, device="cpu", random_init=False) -> PairSampler:
    from ardistill.errors import ArdistillError
    from ardistill.methods.code import CoDe

    if draft_steps is None:
        raise ArdistillError("pass --draft-steps N (the number of scales the drafter makes) with --drafter/--refiner")
    d, r = load_pair(drafter, refiner, finetuned=finetuned, weights_dir=weights_dir, device=device, random_init=random_init)
    return PairSampler(CoDe(d, r), draft_steps)


@code_app.command("finetune")
def finetune_command(
    recipe: str = typer.Option(..., "--recipe", help="CoDe recipe (recipes/code/var-toy.yaml or code/var-toy).", show_default=False),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default: runs/<recipe name>)."),
    draft_steps: Optional[int] = typer.Option(None, "--draft-steps", help="Override the recipe's N (the drafter's scales)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Override both stages' optimiser steps."),
    stage: str = typer.Option("both", "--stage", help="drafter, refiner or both."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoints."),
    weights_dir: Optional[str] = WeightsDirOption,
    device: str = DeviceOption,
    old_r: Optional[str] = RenamedOption("-r", "--recipe"),
) -> None:
    """Fine-tune a CoDe pair: the drafter with cross-entropy on its own scales, then the refiner distilled from the
    original large model with the λ_ep-weighted KL loss. Resumable (--resume), checkpointed, deterministic.

    Example: ardistill code finetune --recipe code/var-toy --out runs/code-toy
    """
    from ardistill.api import load_teacher
    from ardistill.cli.common import resolve_device
    from ardistill.errors import ArdistillError
    from ardistill.methods.code.finetune import CoDeRecipe, run_finetune
    from ardistill.recipe_schema import load_typed_recipe

    r = load_typed_recipe(recipe, CoDeRecipe).overridden(
        {"draft_steps": draft_steps, "drafter_train.steps": steps, "refiner_train.steps": steps})
    stages = {"both": ("drafter", "refiner"), "drafter": ("drafter",), "refiner": ("refiner",)}.get(stage)
    if stages is None:
        raise ArdistillError(f"--stage must be drafter, refiner or both, got {stage!r}")
    dev = resolve_device(device)
    out = out or Path("runs") / r.run_name
    d, ref = load_pair(r.drafter, r.refiner, weights_dir=weights_dir, device=dev, random_init=r.random_init)
    teacher = load_teacher(r.teacher, weights_dir=weights_dir, device=dev, random_init=r.random_init, seed=1) if r.teacher and r.teacher != r.drafter else None
    summary = run_finetune(r, d, ref, out, teacher=teacher, resume=resume, stages=stages)
    console.print(f"finished: {out} (N={summary['draft_steps']}; sample with: ardistill sample --finetuned {out} --draft-steps {summary['draft_steps']})")


@code_app.command("sweep")
def sweep_command(
    drafter: Optional[str] = typer.Option(None, "--drafter", help="Large model (drafts scales < N)."),
    refiner: Optional[str] = typer.Option(None, "--refiner", help="Small model sharing the tokenizer (makes scales ≥ N)."),
    finetuned: Optional[Path] = typer.Option(None, "--finetuned", help="A folder from `ardistill code finetune` (its pair and weights)."),
    draft_steps: str = typer.Option("1..5", "--draft-steps", help="The Ns to measure: '4..6' or '2,4'. The drafter alone (N = K) is always measured."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Batch of the timed runs (FID samples follow the evaluation protocol's chunks of 16)."),
    num_images: int = typer.Option(0, "--num-images", min=0, help="Images per N for toy-FID (0 = speed only)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Sampler seed of the timed runs; evaluation seed of the FID images (chunk c of 16 uses seed·1000003 + c)."),
    cfg: Optional[float] = typer.Option(None, "--cfg", help="Guidance scale (default: the drafter's)."),
    top_k: Optional[str] = typer.Option(None, "--top-k", help="One value or one per scale."),
    top_p: Optional[float] = typer.Option(None, "--top-p"),
    temperature: Optional[str] = typer.Option(None, "--temperature", help="One value or one per scale."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Timed repeats per N (after one warm-up)."),
    label: str = typer.Option("", "--label", help="Name of this sweep in the table and plot."),
    compare: Optional[Path] = typer.Option(None, "--compare", help="An earlier sweep.json to draw in the same plot and table."),
    out: Path = typer.Option(Path("runs/code-sweep"), "--out", "-o", help="Folder for sweep.json, sweep.md and fid_vs_speedup.png."),
    random_init: bool = typer.Option(False, "--random-init", help="Random weights (speed/memory only)."),
    weights_dir: Optional[str] = WeightsDirOption,
    device: str = DeviceOption,
) -> None:
    """For each N: latency, speed-up over the drafter alone, peak memory and (with --num-images) toy-FID.

    Example: ardistill code sweep --drafter var-toy-l --refiner var-toy-s --draft-steps 1..5 --num-images 1000
    """
    from ardistill.cli.common import resolve_device
    from ardistill.methods.code import CoDe
    from ardistill.pipelines.code_sweep import load_sweep, parse_range, run_sweep, write_sweep

    d, r = load_pair(drafter, refiner, finetuned=finetuned, weights_dir=weights_dir, device=resolve_device(device), random_init=random_init)
    code = CoDe(d, r)
    sampling = {k: v for k, v in dict(cfg=cfg, top_k=parse_number_list(top_k, "--top-k", int), top_p=top_p,
                                      temperature=parse_number_list(temperature, "--temperature")).items() if v is not None}
    Ns = parse_range(draft_steps, code.num_scales)
    result = run_sweep(code, Ns, batch_size=batch_size, num_images=num_images, seed=seed, sampling=sampling, repeats=repeats,
                       label=label or ("fine-tuned" if finetuned else "training-free"))
    results = (load_sweep(compare) if compare else []) + [result]
    paths = write_sweep(results, out)
    console.print(result.markdown())
    console.print("wrote " + ", ".join(str(p) for p in paths.values()))


def register(app: typer.Typer) -> None:
    app.add_typer(code_app, name="code")
