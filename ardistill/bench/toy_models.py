"""Random-init stand-ins for built-in models that are not trained yet, built from their recipes.

`ensure_benchable(name)` registers `name` from `recipes/toy/<name>.yaml` when no model of that name exists, so
`ardistill bench --teacher var-toy-l --random-init` works before the built-in weights land (speed does not depend
on weight values; quality numbers of such a model mean nothing and are flagged).
"""

from __future__ import annotations

import torch

from ardistill.errors import UnknownModelError
from ardistill.registry import ModelSpec, get_model_spec, register_model

NUM_TOY_CLASSES = 12  # classes of the procedural world (ardistill.data)


def spec_from_var_recipe(name: str) -> ModelSpec:
    """The ModelSpec a `var-teacher` recipe would export (config and sampling defaults, no files)."""
    from ardistill.configs import config_from_dict
    from ardistill.models.var.config import VARConfig
    from ardistill.recipe_schema import load_typed_recipe
    from ardistill.training.teacher_recipes import SCHEMAS, VARTeacherRecipe, tokenizer_recipe_of

    recipe = load_typed_recipe(f"toy/{name}", *SCHEMAS)
    if not isinstance(recipe, VARTeacherRecipe):
        raise UnknownModelError(f"unknown model {name!r}: recipe toy/{name} is not a var-teacher recipe")
    vq_cfg = tokenizer_recipe_of(recipe).tokenizer
    fields = {**recipe.model, "vae": vq_cfg, "patch_nums": vq_cfg.patch_nums, "vocab_size": vq_cfg.vocab_size,
              "z_channels": vq_cfg.z_channels, "num_classes": NUM_TOY_CLASSES}
    cfg = config_from_dict(VARConfig, fields, where=f"{recipe.source}: model")
    return ModelSpec(
        name=name, family="var", config=cfg, files=(),
        description=f"{name} (random init from recipe toy/{name}; built-in weights not present)",
        tokens_per_image=cfg.seq_len, image_size=cfg.patch_nums[-1] * vq_cfg.downsample,
        sampling_defaults=recipe.sampling_defaults.to_dict(),
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


RANDOM_STUDENT = "random-init"  # `--student random-init`: a random-init DD student of the teacher (speed only)
RANDOM_DD2_STUDENT = "random-init-dd2"  # `--student random-init-dd2`: a random-init DD2 generator (speed only)
RANDOM_STUDENTS = (RANDOM_STUDENT, RANDOM_DD2_STUDENT)


def write_random_student(teacher, out_dir) -> str:
    """Write a random-init DD student folder for `teacher` (2-step split at half the AR steps); returns its path.

    Speed does not depend on weight values, so this measures what a trained student costs before one exists.
    """
    try:
        from ardistill.methods.dd.student import Student
        from ardistill.models.dd.checkpoint import build_student
        from ardistill.models.dd.config import DDStudentConfig
    except ImportError:
        from ardistill.errors import ArdistillError

        raise ArdistillError("--student needs the DD package (ardistill.methods.dd), which is not installed in this version") from None
    steps = getattr(teacher, "num_scales", None) or teacher.tokens_per_image
    half = max(1, steps // 2)
    config = DDStudentConfig(family=teacher.family, teacher=teacher.name, t_list=(0, half), split=half)
    arch = teacher.transformer.config if teacher.family == "var" else teacher.gpt.config
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's global generator
        torch.manual_seed(0)
        model = build_student(teacher.family, arch, device=teacher.device)
    Student(model, teacher, config, name="random-student").save(out_dir, extra={"note": "random-init student for benchmarks"})
    return str(out_dir)


def write_random_dd2_student(teacher, out_dir, *, head_width: int = 1024, head_depth: int = 3) -> str:
    """Write a DD2 student folder for `teacher` with the generator at initialisation (a copy of the teacher's backbone,
    a fresh head of the paper recipes' size, recipes/dd2/var-d16.yaml); returns its path. Speed only."""
    from ardistill.methods.dd2.student import DD2Student

    student = DD2Student.untrained(teacher, head_width=head_width, head_depth=head_depth, seed=0, name="random-dd2-student")
    student.save(out_dir, extra={"note": "random-init DD2 generator for benchmarks"})
    return str(out_dir)
