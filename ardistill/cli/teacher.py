"""`ardistill teacher ...`: train the built-in teachers from their recipes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ardistill.cli.common import RenamedOption, console
from ardistill.errors import BadArgumentError

teacher_app = typer.Typer(help="Train the small built-in teachers (tokenizer + transformer) on the procedural world.",
                          no_args_is_help=True)


@teacher_app.command("train")
def train_command(
    recipe: str = typer.Option(..., "--recipe", help="Recipe YAML (e.g. recipes/toy/var-toy-l.yaml or toy/var-toy-l).",
                               show_default=False),
    runs: Path = typer.Option(Path("runs"), "--runs", help="Folder of training runs; this run goes to RUNS/<recipe name>/."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run from its last checkpoint."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Override the number of optimiser steps (of the tokenizer too, when this run trains it)."),
    num_images: Optional[int] = typer.Option(None, "--num-images", min=1, help="Override the number of training images (transformer recipes)."),
    export: bool = typer.Option(False, "--export", help="Install the trained teacher as a built-in model (ardistill/weights/<name>/)."),
    weights_root: Optional[Path] = typer.Option(None, "--weights-root", help="Where --export writes (default: the package's weights folder)."),
    old_r: Optional[str] = RenamedOption("-r", "--recipe"),
) -> None:
    """Train a teacher (its tokenizer first, if that is not trained yet) from a recipe.

    CPU-friendly, deterministic given the recipe's seed, checkpointed every `ckpt_every` steps and on Ctrl-C;
    run again with --resume to continue. Example: ardistill teacher train --recipe toy/var-toy-l --export
    """
    from ardistill.registry import PACKAGE_WEIGHTS
    from ardistill.training.teacher_recipes import train_from_recipe

    out = train_from_recipe(recipe, runs=runs, resume=resume, steps=steps,
                            export_to=(weights_root or PACKAGE_WEIGHTS) if export else None, num_images=num_images)
    console.print(f"finished: {out}")


def _refuse_batch_size(value: Optional[str]) -> None:
    if value is not None:
        raise BadArgumentError("--batch-size is gone: samples are made in the evaluation protocol's chunks of 16 "
                               "(docs/evaluation.md), so the numbers no longer depend on a batch size")


@teacher_app.command("eval")
def eval_command(
    teacher: str = typer.Argument(..., help="A built-in teacher (var-toy-l, var-toy-s, llamagen-toy) or a checkpoint path.", show_default=False),
    num: int = typer.Option(1000, "--num-samples", "-n", min=10, help="Class-balanced samples (and as many reconstructions and held-out reference images)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Evaluation seed: chunk c of 16 samples uses seed·1000003 + c (docs/evaluation.md)."),
    cfg: Optional[float] = typer.Option(None, "--cfg", help="Guidance scale (default: the model's)."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Top-k (default: the model's)."),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="Top-p (default: the model's)."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Temperature (default: the model's)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also write a PNG grid of the first 64 samples and OUT.json with the numbers."),
    old_num: Optional[str] = RenamedOption("--num", "--num-samples"),
    old_batch: Optional[str] = typer.Option(None, "--batch-size", hidden=True, show_default=False, callback=_refuse_batch_size),
) -> None:
    """Measure a teacher on the procedural world: class accuracy and toy-FID of its samples, next to those of its
    tokenizer's reconstructions of held-out real images (the best a generator on these tokens can do).

    Samples follow the evaluation protocol (docs/evaluation.md), so the numbers equal `ardistill bench --fid
    --num-samples N --seed S` for the teacher row and, at the defaults, the model card's."""
    from rich.table import Table

    from ardistill.api import load_teacher
    from ardistill.cli.common import out_path
    from ardistill.eval.quality import teacher_quality
    from ardistill.images import save_grid
    from ardistill.io import atomic_write_json

    if out is not None:
        out = out_path(out)
    model = load_teacher(teacher)
    sampling = {k: v for k, v in dict(cfg=cfg, top_k=top_k, top_p=top_p, temperature=temperature).items() if v is not None}
    q = teacher_quality(model, num=num, seed=seed, keep_images=64, **sampling)
    table = Table(title=f"{model.name}: {num} samples (seed {seed}) vs {num} held-out real images")
    for col in ("images", "class accuracy", "toy-FID", "KID", "precision", "recall"):
        table.add_column(col, justify="right" if col != "images" else "left")
    for what in ("samples", "reconstructions"):
        m = q[what]
        table.add_row(what, f"{100 * m['class_accuracy']:.1f}%", f"{m['fid']:.2f}", f"{m['kid_mean']:.3f}",
                      f"{m['precision']:.3f}", f"{m['recall']:.3f}")
    console.print(table)
    console.print(f"samples: toy-FID {q['samples']['fid']:.4f} (protocol {q['protocol']['protocol']})")
    console.print(f"sampling: {1000 * q['seconds_per_image']:.1f} ms per image (incl. decode), settings {model.default_sampling.to_dict() | sampling}")
    if out is not None:
        save_grid(q["images"], out, nrow=8)
        report = {k: v for k, v in q.items() if k != "images"}
        report.update(teacher=model.name, sampling=model.default_sampling.to_dict() | sampling)
        atomic_write_json(out.with_suffix(".json"), report)
        console.print(f"wrote {out} and {out.with_suffix('.json')}")


@teacher_app.command("export")
def export_command(
    run_dir: Path = typer.Argument(..., help="A finished teacher run folder (RUNS/<name>/ with run.json).", show_default=False),
    num: int = typer.Option(1000, "--num-samples", "-n", min=10, help="Samples for the measured metrics written into the model card."),
    cfg: Optional[float] = typer.Option(None, "--cfg", help="Default guidance scale to ship (default: the recipe's)."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Default top-k to ship (default: the recipe's)."),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="Default top-p to ship (default: the recipe's)."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Default temperature to ship (default: the recipe's)."),
    weights_root: Optional[Path] = typer.Option(None, "--weights-root", help="Where to install (default: the package's weights folder)."),
    old_num: Optional[str] = RenamedOption("--num", "--num-samples"),
) -> None:
    """Install a trained teacher as a built-in model and measure it: the model card (model.json, README.md) gets the
    default sampling settings and the class accuracy / toy-FID of samples and of reconstructions."""
    import json

    from ardistill import registry
    from ardistill.errors import ArdistillError
    from ardistill.eval.quality import card_metrics
    from ardistill.training.teacher_recipes import export_builtin

    if not (run_dir / "run.json").is_file():
        raise ArdistillError(f"{run_dir}: not a finished teacher run (no run.json); train it with `ardistill teacher train`")
    root = weights_root or registry.PACKAGE_WEIGHTS
    overrides = {k: v for k, v in dict(cfg=cfg, top_k=top_k, top_p=top_p, temperature=temperature).items() if v is not None}
    dest = export_builtin(run_dir, root, sampling_overrides=overrides)
    model = _load_exported(dest)
    # The evaluation protocol at seed 0, as `ardistill teacher eval` and `ardistill bench --fid` measure it; the card
    # records the protocol and the shipped evaluator's SHA-256 (the tests check it is the shipped one).
    metrics = card_metrics(model, num=num)
    export_builtin(run_dir, root, sampling_overrides=overrides, metrics=metrics)
    console.print(f"installed {dest}: {json.dumps(metrics)}")


def _load_exported(folder: Path):
    """The teacher in an exported folder, loaded through the same registration the zoo performs at import."""
    import json

    from ardistill.configs import config_from_dict
    from ardistill.registry import ModelSpec, WeightFile, family_loader
    from ardistill.zoo import builtin_config_classes

    card = json.loads((folder / "model.json").read_text())
    spec = ModelSpec(name=card["name"], family=card["family"],
                     config=config_from_dict(builtin_config_classes()[card["family"]], card["config"]),
                     files=tuple(WeightFile(r, f) for r, f in card["files"].items()), builtin=True,
                     tokens_per_image=card["tokens_per_image"], image_size=card["image_size"],
                     sampling_defaults=card.get("sampling_defaults", {}))
    return family_loader(spec.family)(spec, transformer_path=folder / card["files"]["transformer"],
                                      vae_path=folder / card["files"]["tokenizer"])


def register(app: typer.Typer) -> None:
    app.add_typer(teacher_app, name="teacher")
