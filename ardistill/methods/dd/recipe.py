"""`kind: dd-student` recipes (recipes/dd/*.yaml) → a trained student folder.

`DDRecipe` is the schema (checked on load: see ardistill/recipe_schema.py). Output: <out> (default runs/<name>/):
checkpoint.pt while training, then student.safetensors + student.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ardistill.configs import FieldError
from ardistill.errors import ArdistillError
from ardistill.methods.dd.flow import FlowMapConfig
from ardistill.recipe_schema import Recipe, TeacherSampling, load_typed_recipe
from ardistill.training.loop import TrainConfig


@dataclass(kw_only=True)
class DDEval:
    """Toy-FID and class accuracy of 1-step samples during training (toy teachers only)."""

    every: int = 0  # optimiser steps between evaluations; 0: only at the end
    num: int = 256  # images
    seed: int = 0


@dataclass(kw_only=True)
class TrajectorySampling(TeacherSampling):
    """Teacher settings the trajectories are sampled with (None: the teacher's default)."""

    cfg_interval: int | None = None


@dataclass(kw_only=True)
class DDRecipe(Recipe):
    """A Distilled Decoding student: what `ardistill train` trains, and what `ardistill distill` makes the
    trajectories with (num_trajectories, trajectory_sampling, flow, shard_size, trajectory_seed,
    trajectory_batch_size) and benches it against (baselines)."""

    kind: Literal["dd-student"] = "dd-student"
    teacher: str  # registered teacher name
    t_list: tuple[int, ...]  # the student's split points T (AR steps), starting at 0
    split: int  # AR steps from which tokens are argmax(logits) in 1-step sampling
    trajectories: str | None = None  # trajectory dataset folder; default runs/trajectories/<teacher>
    batch_size: int = 32
    mse_weight: float = 1.0
    position_weighting: Literal["token", "step"] = "token"
    eval: DDEval = field(default_factory=DDEval)
    train: TrainConfig = field(default_factory=TrainConfig)
    baselines: tuple[str, ...] = ()  # naive few-step baselines benched beside the student by `distill`
    # Making the trajectories (`ardistill distill`; `ardistill trajectories` takes them as options).
    num_trajectories: int | None = None
    trajectory_sampling: TrajectorySampling = field(default_factory=TrajectorySampling)
    flow: FlowMapConfig = field(default_factory=FlowMapConfig)
    shard_size: int = 1024
    trajectory_seed: int = 0
    trajectory_batch_size: int = 32

    def check(self) -> None:
        if not self.t_list or self.t_list[0] != 0:
            raise FieldError("t_list", f"must start with 0, got {list(self.t_list)}")
        if self.split < max(self.t_list):
            raise FieldError("split", f"must be ≥ the last t of t_list ({max(self.t_list)}), got {self.split}")
        try:
            self.flow.validate()
        except ArdistillError as e:
            raise FieldError("flow", str(e)) from None

    @property
    def trajectory_dir(self) -> Path:
        return Path(self.trajectories or f"runs/trajectories/{self.teacher}")


def load_dd_recipe(recipe: str | Path | DDRecipe) -> DDRecipe:
    """A DD recipe by name or path (checked), or one already loaded."""
    return recipe if isinstance(recipe, DDRecipe) else load_typed_recipe(recipe, DDRecipe)


def dd_recipe_for_training(recipe_ref: str | Path | DDRecipe, *, steps: int | None = None,
                           trajectories: Path | None = None) -> DDRecipe:
    """The recipe with `steps` and `trajectories` overriding its train.steps and trajectories, its trajectory dataset
    checked to exist (a one-line error before any teacher is loaded)."""
    recipe = load_dd_recipe(recipe_ref).overridden({"train.steps": steps, "trajectories": str(trajectories) if trajectories else None})
    traj_dir = recipe.trajectory_dir
    if not (traj_dir / "meta.json").is_file():
        raise ArdistillError(f"{traj_dir}: no trajectory dataset there; make it first (`ardistill trajectories --teacher T --num-samples N --out DIR`) "
                             "or pass --trajectories DIR")
    return recipe


def train_from_dd_recipe(recipe_ref: str | Path | DDRecipe, *, teacher, out: Path | None = None, resume: bool = False,
                         steps: int | None = None, trajectories: Path | None = None, progress: bool = True) -> Path:
    """Train (or resume) the student a `dd-student` recipe describes on the loaded `teacher` (the recipe's
    `teacher`, loaded by the caller: methods take loaded models, never names); returns its folder. `steps` and
    `trajectories` override the recipe's train.steps and trajectories."""
    from ardistill.methods.dd.train import DDTrainSettings, train_student
    from ardistill.methods.dd.trajectories import open_trajectories

    recipe = dd_recipe_for_training(recipe_ref, steps=steps, trajectories=trajectories)
    traj_dir = recipe.trajectory_dir
    ds = open_trajectories(traj_dir)
    settings = DDTrainSettings(
        t_list=recipe.t_list, split=recipe.split, batch_size=recipe.batch_size, mse_weight=recipe.mse_weight,
        position_weighting=recipe.position_weighting,
        eval_every=recipe.eval.every, eval_num=recipe.eval.num, eval_seed=recipe.eval.seed,
        extra={"recipe": recipe.source, "name": recipe.run_name, "trajectories": str(traj_dir)},
    )
    out = Path(out or Path("runs") / recipe.run_name)
    train_student(teacher, ds, settings, recipe.train, out, resume=resume, progress=progress)
    return out


__all__ = ["DDRecipe", "DDEval", "TrajectorySampling", "load_dd_recipe", "dd_recipe_for_training", "train_from_dd_recipe"]
