"""`ardistill teacher train --recipe ...`: recipe-driven training of the built-in teachers, and their export as
built-in models (`ardistill/weights/<name>/`: safetensors in the official key layout + model.json + README.md).

Recipe kinds (the `kind:` field; their schemas are the dataclasses below, checked on load):
- `var-tokenizer` / `llamagen-tokenizer`: the multi-scale VQVAE / the VQ tokenizer.
- `var-teacher` / `llamagen-teacher`: a VAR transformer / a class-conditional GPT on a tokenizer made by a tokenizer
  recipe (`tokenizer_recipe`), trained first when its output is missing.
Output folder: `<runs>/<recipe name>/` (default runs/ in the working directory); `--resume` continues it.
"""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from ardistill.configs import check_fields, config_from_dict, config_to_dict
from ardistill.errors import ArdistillError
from ardistill.io import atomic_save_safetensors, atomic_write_json, atomic_write_text, load_state_dict_file, load_strict
from ardistill.models.llamagen.config import GPTConfig, VQConfig
from ardistill.models.var.config import VARConfig, VQVAEConfig
from ardistill.recipe_schema import Recipe, TeacherSampling, load_typed_recipe
from ardistill.training.loop import TrainConfig
from ardistill.training.tokenizer_loss import ReconstructionLoss
from ardistill.training.toy_data import ImageData


@dataclass(kw_only=True)
class TokenizerRecipe(Recipe):
    """A toy tokenizer: `tokenizer` (its config), trained on `data` with `loss`."""

    data: ImageData = field(default_factory=ImageData)
    train: TrainConfig = field(default_factory=TrainConfig)
    batch_size: int = 32
    loss: ReconstructionLoss = field(default_factory=ReconstructionLoss)


@dataclass(kw_only=True)
class VARTokenizerRecipe(TokenizerRecipe):
    kind: Literal["var-tokenizer"] = "var-tokenizer"
    tokenizer: VQVAEConfig


@dataclass(kw_only=True)
class LlamaGenTokenizerRecipe(TokenizerRecipe):
    kind: Literal["llamagen-tokenizer"] = "llamagen-tokenizer"
    tokenizer: VQConfig


@dataclass(kw_only=True)
class TransformerRecipe(Recipe):
    """A toy teacher's transformer on the tokenizer of `tokenizer_recipe`. `model`: fields of the family's config;
    the ones the tokenizer fixes (vocabulary, geometry) default to the tokenizer's."""

    tokenizer_recipe: str
    model: dict[str, Any]
    data: ImageData = field(default_factory=ImageData)
    train: TrainConfig = field(default_factory=TrainConfig)
    num_images: int = 20_000
    batch_size: int = 64
    sampling_defaults: TeacherSampling = field(default_factory=TeacherSampling)  # shipped in the model card


@dataclass(kw_only=True)
class VARTeacherRecipe(TransformerRecipe):
    kind: Literal["var-teacher"] = "var-teacher"

    def check(self) -> None:
        check_fields(VARConfig, self.model, ("model",), exclude=("vae",))  # the tokenizer recipe gives `vae`


@dataclass(kw_only=True)
class LlamaGenTeacherRecipe(TransformerRecipe):
    kind: Literal["llamagen-teacher"] = "llamagen-teacher"

    def check(self) -> None:
        check_fields(GPTConfig, self.model, ("model",), exclude=("vq",))  # the tokenizer recipe gives `vq`


SCHEMAS = (VARTokenizerRecipe, LlamaGenTokenizerRecipe, VARTeacherRecipe, LlamaGenTeacherRecipe)


def tokenizer_recipe_of(recipe: TransformerRecipe) -> TokenizerRecipe:
    """The (checked) tokenizer recipe a teacher recipe names, of the teacher's family."""
    return load_typed_recipe(recipe.tokenizer_recipe,
                             VARTokenizerRecipe if isinstance(recipe, VARTeacherRecipe) else LlamaGenTokenizerRecipe)


def _tokenizer_family(recipe: TokenizerRecipe):
    """(model class, train function) of a tokenizer recipe."""
    if isinstance(recipe, VARTokenizerRecipe):
        from ardistill.models.var.vqvae import VQVAE
        from ardistill.training.var_teacher import train_var_tokenizer

        return VQVAE, train_var_tokenizer
    from ardistill.models.llamagen.vq import VQModel
    from ardistill.training.llamagen_teacher import train_llamagen_tokenizer

    return VQModel, train_llamagen_tokenizer


def train_tokenizer_recipe(recipe: TokenizerRecipe, runs: Path, *, resume: bool, steps: int | None, progress: bool = True,
                           retrain_finished: bool = True) -> Path:
    """Train (or resume) the tokenizer of a tokenizer recipe; returns its `tokenizer.safetensors`.

    A finished tokenizer is kept as it is unless this recipe itself is resumed (`retrain_finished`, e.g. with more
    `--steps`); a teacher recipe's `--resume` never touches its finished tokenizer."""
    _, train_fn = _tokenizer_family(recipe)
    recipe = recipe.overridden({"train.steps": steps})
    out = runs / recipe.run_name
    final = out / "tokenizer.safetensors"
    if final.is_file() and (not resume or not retrain_finished):
        return final
    t0 = time.time()
    model, result = train_fn(recipe.tokenizer, recipe.train, recipe.data, out, loss=recipe.loss,
                             batch_size=recipe.batch_size, resume=resume, progress=progress)
    atomic_save_safetensors(model.state_dict(), final)
    atomic_write_json(out / "tokenizer.json", {"kind": recipe.kind, "config": config_to_dict(recipe.tokenizer), "steps": result.step,
                                              "last_loss": result.last_loss, "seconds": time.time() - t0})
    return final


def load_tokenizer_output(path: Path, recipe: TokenizerRecipe):
    """A trained tokenizer (module in eval mode, config) from its run folder."""
    model_cls, _ = _tokenizer_family(recipe)
    info = json.loads((path.parent / "tokenizer.json").read_text())
    cfg = config_from_dict(type(recipe.tokenizer), info["config"], where=str(path.parent / "tokenizer.json"))
    model = model_cls(cfg)
    load_strict(model, load_state_dict_file(path), what=str(path))
    return model.eval().requires_grad_(False), cfg


def train_var_teacher_recipe(recipe: VARTeacherRecipe, runs: Path, *, resume: bool, steps: int | None, progress: bool = True,
                             num_images: int | None = None) -> Path:
    """Train (or resume) a `var-teacher` recipe; returns the run folder holding `transformer.safetensors`."""
    from ardistill.data import NUM_CLASSES
    from ardistill.training.var_teacher import train_var_transformer

    recipe = recipe.overridden({"train.steps": steps, "num_images": num_images})
    tok_recipe = tokenizer_recipe_of(recipe)
    tok_path = train_tokenizer_recipe(tok_recipe, runs, resume=resume, steps=steps, progress=progress,
                                      retrain_finished=False)
    vae, vq_cfg = load_tokenizer_output(tok_path, tok_recipe)
    model_fields = {"patch_nums": vq_cfg.patch_nums, "vocab_size": vq_cfg.vocab_size, "z_channels": vq_cfg.z_channels,
                    "num_classes": NUM_CLASSES, **recipe.model, "vae": vq_cfg}
    cfg = config_from_dict(VARConfig, model_fields, where=f"{recipe.source}: model")
    out = runs / recipe.run_name
    t0 = time.time()
    model, result = train_var_transformer(cfg, vae, recipe.train, recipe.data, out, num_images=recipe.num_images,
                                          batch_size=recipe.batch_size, resume=resume, progress=progress)
    _write_run(out, recipe, tok_recipe, "var", cfg, model, vae, result, t0, tok_path)
    return out


def train_llamagen_teacher_recipe(recipe: LlamaGenTeacherRecipe, runs: Path, *, resume: bool, steps: int | None,
                                  progress: bool = True, num_images: int | None = None) -> Path:
    """Train (or resume) a `llamagen-teacher` recipe; returns the run folder holding `transformer.safetensors`."""
    from ardistill.data import NUM_CLASSES
    from ardistill.training.llamagen_teacher import train_llamagen_gpt

    recipe = recipe.overridden({"train.steps": steps, "num_images": num_images})
    tok_recipe = tokenizer_recipe_of(recipe)
    tok_path = train_tokenizer_recipe(tok_recipe, runs, resume=resume, steps=steps, progress=progress,
                                      retrain_finished=False)
    vq, vq_cfg = load_tokenizer_output(tok_path, tok_recipe)
    fields = {"vocab_size": vq_cfg.codebook_size, "block_size": (recipe.data.size // vq_cfg.downsample) ** 2,
              "num_classes": NUM_CLASSES, **recipe.model, "vq": vq_cfg}
    cfg = config_from_dict(GPTConfig, fields, where=f"{recipe.source}: model")
    out = runs / recipe.run_name
    t0 = time.time()
    gpt, result = train_llamagen_gpt(cfg, vq, recipe.train, recipe.data, out, num_images=recipe.num_images,
                                     batch_size=recipe.batch_size, resume=resume, progress=progress)
    _write_run(out, recipe, tok_recipe, "llamagen", cfg, gpt, vq, result, t0, tok_path)
    return out


def _write_run(out: Path, recipe: TransformerRecipe, tok_recipe: TokenizerRecipe, family: str, cfg, model, tokenizer,
               result, t0: float, tok_path: Path) -> None:
    atomic_save_safetensors(model.state_dict(), out / "transformer.safetensors")
    atomic_save_safetensors(tokenizer.state_dict(), out / "tokenizer.safetensors")
    tok_info = json.loads((tok_path.parent / "tokenizer.json").read_text())
    atomic_write_json(out / "run.json", {
        "tokenizer": {"name": tok_path.parent.name, "recipe": tok_recipe.source,
                      **{k: tok_info.get(k) for k in ("steps", "last_loss", "seconds")}},
        "name": recipe.run_name, "family": family, "config": config_to_dict(cfg), "recipe": recipe.source,
        "steps": result.step, "last_loss": result.last_loss, "seconds": time.time() - t0,
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads, torch {torch.__version__}",
        "sampling_defaults": recipe.sampling_defaults.to_dict(),
        "params": sum(p.numel() for p in model.parameters()),
    })


def _geometry(family: str, cfg: dict) -> tuple[int, int]:
    """(tokens per image, image size in px) of an exported config dict."""
    if family == "var":
        patch_nums = cfg["patch_nums"]
        return sum(p * p for p in patch_nums), patch_nums[-1] * 2 ** (len(cfg["vae"]["ch_mult"]) - 1)
    grid = math.isqrt(cfg["block_size"])
    return cfg["block_size"], grid * 2 ** (len(cfg["vq"]["encoder_ch_mult"]) - 1)


def repo_relative(path: str) -> str:
    """`.../recipes/toy/x.yaml` → `recipes/toy/x.yaml` (model cards must not carry the trainer's home folder)."""
    from ardistill.recipes import relative_name

    return relative_name(path)


def _storage(state: dict, dtype: torch.dtype) -> dict:
    """Floating-point tensors cast to the storage dtype (integer buffers unchanged); loading casts back to fp32."""
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}


def export_builtin(run_dir: Path, weights_root: Path, *, metrics: dict | None = None,
                   sampling_overrides: dict | None = None, storage_dtype: torch.dtype = torch.float16) -> Path:
    """Copy a finished teacher run into `weights_root/<name>/` as a built-in model (model.json + safetensors).

    Weights are stored in fp16 (half the package size; every metric in the card is measured on the installed,
    rounded weights, which load into fp32 modules)."""
    info = json.loads((run_dir / "run.json").read_text())
    name = info["name"]
    dest = weights_root / name
    # A tokenizer shared by several teachers (var-toy-l and var-toy-s) is stored once, in its own folder next to
    # theirs; model.json paths are relative to the model's folder.
    tok_name = (info.get("tokenizer") or {}).get("name")
    files = {"transformer": "transformer.safetensors",
             "tokenizer": f"../{tok_name}/tokenizer.safetensors" if tok_name else "tokenizer.safetensors"}
    for role, fname in files.items():
        atomic_save_safetensors(_storage(load_state_dict_file(run_dir / Path(fname).name), storage_dtype), dest / fname)
    cfg = info["config"]
    tokens_per_image, image_size = _geometry(info["family"], cfg)
    card = {
        "name": name, "family": info["family"], "config": cfg, "files": files,
        "description": f"built-in {info['family'].upper()} teacher trained on the procedural world ({image_size} px)",
        "tokens_per_image": tokens_per_image, "image_size": image_size, "params": info["params"],
        "sampling_defaults": {**info.get("sampling_defaults", {}), **(sampling_overrides or {})},
        "training": {**{k: info[k] for k in ("recipe", "steps", "last_loss", "seconds", "machine")},
                     "recipe": repo_relative(info["recipe"])},
        "tokenizer_training": {**(info.get("tokenizer") or {}),
                               **({"recipe": repo_relative(info["tokenizer"]["recipe"])} if info.get("tokenizer") else {})},
        "storage_dtype": str(storage_dtype).removeprefix("torch."),
        "metrics": metrics or {},
    }
    atomic_write_json(dest / "model.json", card)
    atomic_write_text(dest / "README.md", model_card_markdown(card))
    return dest


def model_card_markdown(card: dict) -> str:
    t = card["training"]
    lines = [f"# {card['name']}", "", card["description"] + ".", "",
             f"- family: {card['family']}; transformer parameters: {card['params']:,}; tokens per image: {card['tokens_per_image']}",
             f"- recipe: `{t['recipe']}`; steps: {t['steps']}; final loss: {t['last_loss']:.4f}",
             f"- training time: {t['seconds'] / 60:.1f} min on {t['machine']}",
             *([f"- tokenizer `{tk['name']}`: recipe `{tk['recipe']}`; steps: {tk['steps']}; training time: "
                f"{tk['seconds'] / 60:.1f} min"] if (tk := card.get("tokenizer_training")) and tk.get("seconds") else []),
             f"- weights stored as {card.get('storage_dtype', 'float32')} (loaded into fp32 modules)",
             f"- default sampling: {card['sampling_defaults']}", "", "## Config", "", "```json",
             json.dumps(card["config"], indent=1), "```", ""]
    m = card.get("metrics") or {}
    if "samples" in m:
        lines += ["## Measured (`ardistill teacher export`, CPU)", "",
                  f"{m['num']} class-balanced samples at the default sampling settings and {m['num']} reconstructions of "
                  f"held-out real images, each against {m['num']} other held-out real images (toy-FID: the shipped "
                  "evaluator's features through torch-fidelity)."
                  + (f" Samples follow the evaluation protocol (docs/evaluation.md) with seed {m['seed']}: "
                     f"`ardistill teacher eval {card['name']}` and the teacher row of `ardistill bench --teacher {card['name']} "
                     f"--fid --num-samples {m['num']}` give the same numbers." if "protocol" in m else ""), "",
                  "| images | class accuracy | toy-FID | KID | precision | recall |", "|---|---:|---:|---:|---:|---:|"]
        for what in ("samples", "reconstructions"):
            r = m[what]
            lines.append(f"| {what} | {100 * r['class_accuracy']:.1f}% | {r['fid']:.2f} | {r['kid_mean']:.3f} | "
                         f"{r['precision']:.3f} | {r['recall']:.3f} |")
        lines += ["", f"Sampling + decoding: {m['ms_per_image_cpu']} ms per image on the CPU it was measured on.", ""]
    return "\n".join(lines)


def train_from_recipe(recipe_ref: str, *, runs: Path, resume: bool = False, steps: int | None = None,
                      export_to: Path | None = None, progress: bool = True, num_images: int | None = None) -> Path:
    """Dispatch on the recipe's `kind`; returns the run folder (and exports it when `export_to` is given)."""
    recipe = load_typed_recipe(recipe_ref, *SCHEMAS)
    if isinstance(recipe, TokenizerRecipe):
        if num_images is not None:
            raise ArdistillError(f"{recipe.source}: --num-images is for teacher recipes; a tokenizer recipe trains on a stream")
        return train_tokenizer_recipe(recipe, runs, resume=resume, steps=steps, progress=progress).parent
    train = train_var_teacher_recipe if isinstance(recipe, VARTeacherRecipe) else train_llamagen_teacher_recipe
    out = train(recipe, runs, resume=resume, steps=steps, progress=progress, num_images=num_images)
    if export_to is not None:
        export_builtin(out, export_to)
    return out
