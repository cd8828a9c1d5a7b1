"""Random-init stand-ins for built-in models that are not trained yet, built from their recipes.

`ensure_benchable(name)` registers `name` from `recipes/toy/<name>.yaml` when no model of that name exists, so
`ardistill bench --teacher var-toy-l --random-init` works before the built-in weights land (speed does not depend
on weight values; quality numbers of such a model mean nothing and are flagged).
"""

from __future__ import annotations

from ardistill.errors import UnknownModelError
from ardistill.registry import ModelSpec, get_model_spec, register_model

NUM_TOY_CLASSES = 12  # classes of the procedural world (ardistill.data)


def spec_from_var_recipe(name: str) -> ModelSpec:
    """The ModelSpec a `var-teacher` recipe would export (config and sampling defaults, no files)."""
    from ardistill.configs import config_from_dict
    from ardistill.models.var.config import VARConfig, VQVAEConfig
    from ardistill.recipes import load_recipe

    recipe = load_recipe(f"toy/{name}")
    if recipe.get("kind") != "var-teacher":
        raise UnknownModelError(f"unknown model {name!r}: recipe toy/{name} is not a var-teacher recipe")
    tok = load_recipe(recipe["tokenizer_recipe"])
    vq_cfg = config_from_dict(VQVAEConfig, dict(tok["tokenizer"]), where=f"{tok['_path']}: tokenizer")
    fields = {**recipe["model"], "vae": vq_cfg, "patch_nums": tuple(vq_cfg.patch_nums), "vocab_size": vq_cfg.vocab_size,
              "z_channels": vq_cfg.z_channels, "num_classes": NUM_TOY_CLASSES}
    cfg = VARConfig(**fields)
    return ModelSpec(
        name=name, family="var", config=cfg, files=(),
        description=f"{name} (random init from recipe toy/{name}; built-in weights not present)",
        tokens_per_image=cfg.seq_len, image_size=cfg.patch_nums[-1] * vq_cfg.downsample,
        sampling_defaults=dict(recipe.get("sampling_defaults", {})),
    )


def ensure_benchable(name: str) -> bool:
    """Make `name` loadable with `random_init=True`; True when it was registered from its recipe here."""
    try:
        get_model_spec(name)
        return False
    except UnknownModelError:
        pass
    from ardistill.recipes import resolve_recipe

    try:
        resolve_recipe(f"toy/{name}")
    except Exception:
        get_model_spec(name)  # re-raise the registry's own message (with its suggestions)
    register_model(spec_from_var_recipe(name))
    return True
