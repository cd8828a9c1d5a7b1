"""`ardistill teacher train --recipe ...`: recipe-driven training of the built-in teachers, and their export as
built-in models (`ardistill/weights/<name>/`: safetensors in the official key layout + model.json + README.md).

Recipe kinds (the `kind:` field):
- `var-tokenizer` / `llamagen-tokenizer`: the multi-scale VQVAE / the VQ tokenizer (keys `tokenizer`, `data`,
  `train`, `batch_size`).
- `var-teacher` / `llamagen-teacher`: a VAR transformer / a class-conditional GPT on a tokenizer made by a tokenizer
  recipe (`tokenizer_recipe`), trained first when its output is missing (keys `model`, `data`, `train`,
  `batch_size`, `num_images`, `sampling_defaults`).
Output folder: `<runs>/<recipe name>/` (default runs/ in the working directory); `--resume` continues it.
"""

from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path

import torch

from ardistill.configs import config_from_dict, config_to_dict
from ardistill.errors import ArdistillError
from ardistill.io import atomic_save_safetensors, atomic_write_json, atomic_write_text, load_state_dict_file, load_strict
from ardistill.recipes import load_recipe
from ardistill.training.loop import TrainConfig

KINDS = ("var-tokenizer", "var-teacher", "llamagen-tokenizer", "llamagen-teacher")


def recipe_name(recipe: dict) -> str:
    return str(recipe.get("name") or Path(recipe["_path"]).stem)


def _data(recipe: dict):
    from ardistill.training.toy_data import ImageData

    d = dict(recipe.get("data", {}))
    unknown = set(d) - {"seed", "size", "rotation"}
    if unknown:
        raise ArdistillError(f"{recipe['_path']}: unknown data field(s) {', '.join(sorted(unknown))} (known: seed, size, rotation)")
    return ImageData(**d)


def _train_cfg(recipe: dict, steps: int | None) -> TrainConfig:
    cfg = TrainConfig.from_dict(recipe.get("train", {}))
    if steps is not None:
        cfg.steps = steps
    return cfg


def _tokenizer_family(recipe: dict):
    """(family, config class, model class, train function) of a tokenizer recipe."""
    kind = recipe.get("kind")
    if kind == "var-tokenizer":
        from ardistill.models.var.config import VQVAEConfig
        from ardistill.models.var.vqvae import VQVAE
        from ardistill.training.var_teacher import train_var_tokenizer

        return "var", VQVAEConfig, VQVAE, train_var_tokenizer
    if kind == "llamagen-tokenizer":
        from ardistill.models.llamagen.config import VQConfig
        from ardistill.models.llamagen.vq import VQModel
        from ardistill.training.llamagen_teacher import train_llamagen_tokenizer

        return "llamagen", VQConfig, VQModel, train_llamagen_tokenizer
    raise ArdistillError(f"{recipe['_path']}: kind {kind!r} is not a tokenizer recipe (var-tokenizer, llamagen-tokenizer)")


def train_tokenizer_recipe(recipe: dict, runs: Path, *, resume: bool, steps: int | None, progress: bool = True,
                           retrain_finished: bool = True) -> Path:
    """Train (or resume) the tokenizer of a tokenizer recipe; returns its `tokenizer.safetensors`.

    A finished tokenizer is kept as it is unless this recipe itself is resumed (`retrain_finished`, e.g. with more
    `--steps`); a teacher recipe's `--resume` never touches its finished tokenizer."""
    family, config_cls, _, train_fn = _tokenizer_family(recipe)
    out = runs / recipe_name(recipe)
    final = out / "tokenizer.safetensors"
    if final.is_file() and (not resume or not retrain_finished):
        return final
    tok_cfg = config_from_dict(config_cls, recipe["tokenizer"], where=f"{recipe['_path']}: tokenizer")
    t0 = time.time()
    from ardistill.training.tokenizer_loss import ReconstructionLoss

    loss = ReconstructionLoss.from_recipe(recipe.get("loss"), where=f"{recipe['_path']}: loss")
    model, result = train_fn(tok_cfg, _train_cfg(recipe, steps), _data(recipe), out, loss=loss,
                             batch_size=int(recipe.get("batch_size", 32)), resume=resume, progress=progress)
    atomic_save_safetensors(model.state_dict(), final)
    atomic_write_json(out / "tokenizer.json", {"kind": recipe["kind"], "config": config_to_dict(tok_cfg), "steps": result.step,
                                              "last_loss": result.last_loss, "seconds": time.time() - t0})
    return final


def load_tokenizer_output(path: Path, recipe: dict):
    """A trained tokenizer (module in eval mode, config) from its run folder."""
    _, config_cls, model_cls, _ = _tokenizer_family(recipe)
    info = json.loads((path.parent / "tokenizer.json").read_text())
    cfg = config_from_dict(config_cls, info["config"], where=str(path.parent / "tokenizer.json"))
    model = model_cls(cfg)
    load_strict(model, load_state_dict_file(path), what=str(path))
    return model.eval().requires_grad_(False), cfg


def train_var_teacher_recipe(recipe: dict, runs: Path, *, resume: bool, steps: int | None, progress: bool = True,
                             num_images: int | None = None) -> Path:
    """Train (or resume) a `var-teacher` recipe; returns the run folder holding `transformer.safetensors`."""
    from ardistill.data import NUM_CLASSES
    from ardistill.models.var.config import VARConfig
    from ardistill.training.var_teacher import train_var_transformer

    tok_recipe = load_recipe(recipe["tokenizer_recipe"])
    tok_path = train_tokenizer_recipe(tok_recipe, runs, resume=resume, steps=steps, progress=progress,
                                      retrain_finished=False)
    vae, vq_cfg = load_tokenizer_output(tok_path, tok_recipe)
    model_fields = dict(recipe["model"])
    model_fields["vae"] = config_to_dict(vq_cfg)
    model_fields.setdefault("patch_nums", list(vq_cfg.patch_nums))
    model_fields.setdefault("vocab_size", vq_cfg.vocab_size)
    model_fields.setdefault("z_channels", vq_cfg.z_channels)
    model_fields.setdefault("num_classes", NUM_CLASSES)
    cfg = config_from_dict(VARConfig, model_fields, where=f"{recipe['_path']}: model")
    out = runs / recipe_name(recipe)
    t0 = time.time()
    model, result = train_var_transformer(cfg, vae, _train_cfg(recipe, steps), _data(recipe), out,
                                          num_images=num_images or int(recipe.get("num_images", 20_000)),
                                          batch_size=int(recipe.get("batch_size", 64)), resume=resume, progress=progress)
    _write_run(out, recipe, "var", cfg, model, vae, result, t0, tok_path)
    return out


def train_llamagen_teacher_recipe(recipe: dict, runs: Path, *, resume: bool, steps: int | None, progress: bool = True,
                                  num_images: int | None = None) -> Path:
    """Train (or resume) a `llamagen-teacher` recipe; returns the run folder holding `transformer.safetensors`."""
    from ardistill.data import NUM_CLASSES
    from ardistill.models.llamagen.config import GPTConfig
    from ardistill.training.llamagen_teacher import train_llamagen_gpt

    tok_recipe = load_recipe(recipe["tokenizer_recipe"])
    tok_path = train_tokenizer_recipe(tok_recipe, runs, resume=resume, steps=steps, progress=progress,
                                      retrain_finished=False)
    vq, vq_cfg = load_tokenizer_output(tok_path, tok_recipe)
    size = _data(recipe).size
    fields = dict(recipe["model"])
    fields["vq"] = config_to_dict(vq_cfg)
    fields.setdefault("vocab_size", vq_cfg.codebook_size)
    fields.setdefault("block_size", (size // vq_cfg.downsample) ** 2)
    fields.setdefault("num_classes", NUM_CLASSES)
    cfg = config_from_dict(GPTConfig, fields, where=f"{recipe['_path']}: model")
    out = runs / recipe_name(recipe)
    t0 = time.time()
    gpt, result = train_llamagen_gpt(cfg, vq, _train_cfg(recipe, steps), _data(recipe), out,
                                     num_images=num_images or int(recipe.get("num_images", 20_000)),
                                     batch_size=int(recipe.get("batch_size", 64)), resume=resume, progress=progress)
    _write_run(out, recipe, "llamagen", cfg, gpt, vq, result, t0, tok_path)
    return out


def _write_run(out: Path, recipe: dict, family: str, cfg, model, tokenizer, result, t0: float, tok_path: Path) -> None:
    atomic_save_safetensors(model.state_dict(), out / "transformer.safetensors")
    atomic_save_safetensors(tokenizer.state_dict(), out / "tokenizer.safetensors")
    tok_info = json.loads((tok_path.parent / "tokenizer.json").read_text())
    atomic_write_json(out / "run.json", {
        "tokenizer": {"name": tok_path.parent.name, "recipe": load_recipe(recipe["tokenizer_recipe"])["_path"],
                      **{k: tok_info.get(k) for k in ("steps", "last_loss", "seconds")}},
        "name": recipe_name(recipe), "family": family, "config": config_to_dict(cfg), "recipe": recipe["_path"],
        "steps": result.step, "last_loss": result.last_loss, "seconds": time.time() - t0,
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads, torch {torch.__version__}",
        "sampling_defaults": recipe.get("sampling_defaults", {}),
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
                  "evaluator's features through torch-fidelity).", "",
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
    recipe = load_recipe(recipe_ref)
    kind = recipe.get("kind")
    if kind in ("var-tokenizer", "llamagen-tokenizer"):
        return train_tokenizer_recipe(recipe, runs, resume=resume, steps=steps, progress=progress).parent
    if kind in ("var-teacher", "llamagen-teacher"):
        train = train_var_teacher_recipe if kind == "var-teacher" else train_llamagen_teacher_recipe
        out = train(recipe, runs, resume=resume, steps=steps, progress=progress, num_images=num_images)
        if export_to is not None:
            export_builtin(out, export_to)
        return out
    raise ArdistillError(f"{recipe['_path']}: unknown recipe kind {kind!r}; known: {', '.join(KINDS)}")
