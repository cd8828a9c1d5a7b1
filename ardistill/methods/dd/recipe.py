"""`kind: dd-student` recipes (recipes/dd/*.yaml) → a trained student folder.

Fields: name, teacher (registered name), trajectories (folder of a trajectory dataset, relative to the working
directory), t_list, split, batch_size, mse_weight, position_weighting (token | step), eval {every, num, seed}, train (TrainConfig fields), and
`trajectory_sampling` (the teacher settings to make the trajectories with; informational here, used by the
trajectory command), and for `ardistill distill`: num_trajectories, flow (FlowMapConfig fields), shard_size,
trajectory_seed, trajectory_batch_size. Output: <out> (default runs/<name>/): checkpoint.pt while training, then student.safetensors +
student.json.
"""

from __future__ import annotations

from pathlib import Path

from ardistill.errors import ArdistillError
from ardistill.recipes import load_recipe
from ardistill.training.loop import TrainConfig

KNOWN_FIELDS = {"kind", "name", "teacher", "baselines", "trajectories", "t_list", "split", "batch_size", "mse_weight", "position_weighting", "eval", "train",
                "trajectory_sampling", "num_trajectories", "_path",
                # used by `ardistill distill` to make the trajectories (ardistill/methods/dd/distill.py)
                "flow", "shard_size", "trajectory_seed", "trajectory_batch_size"}


def train_from_dd_recipe(recipe_ref: str, *, out: Path | None = None, resume: bool = False, steps: int | None = None,
                         trajectories: Path | None = None, device: str = "cpu", progress: bool = True) -> Path:
    """Train (or resume) the student a `dd-student` recipe describes; returns its folder."""
    from ardistill.api import load_teacher
    from ardistill.methods.dd.train import DDTrainSettings, train_student
    from ardistill.methods.dd.trajectories import open_trajectories

    recipe = load_recipe(recipe_ref)
    where = recipe["_path"]
    if recipe.get("kind") != "dd-student":
        raise ArdistillError(f"{where}: not a DD student recipe (kind {recipe.get('kind')!r}; expected dd-student)")
    unknown = set(recipe) - KNOWN_FIELDS
    if unknown:
        raise ArdistillError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    for key in ("teacher", "t_list", "split"):
        if key not in recipe:
            raise ArdistillError(f"{where}: missing field {key!r}")
    name = str(recipe.get("name") or Path(where).stem)
    traj_dir = Path(trajectories or recipe.get("trajectories") or f"runs/trajectories/{recipe['teacher']}")
    if not (traj_dir / "meta.json").is_file():
        raise ArdistillError(f"{traj_dir}: no trajectory dataset there; make it first (`ardistill trajectories --teacher T --num-samples N --out DIR`) "
                             "or pass --trajectories DIR")
    ds = open_trajectories(traj_dir)
    teacher = load_teacher(recipe["teacher"], device=device)
    train_cfg = TrainConfig.from_dict(recipe.get("train", {}))
    if steps is not None:
        train_cfg.steps = steps
    ev = dict(recipe.get("eval", {}))
    settings = DDTrainSettings(
        t_list=tuple(int(t) for t in recipe["t_list"]), split=int(recipe["split"]),
        batch_size=int(recipe.get("batch_size", 32)), mse_weight=float(recipe.get("mse_weight", 1.0)),
        position_weighting=str(recipe.get("position_weighting", "token")),
        eval_every=int(ev.get("every", 0)), eval_num=int(ev.get("num", 256)), eval_seed=int(ev.get("seed", 0)),
        extra={"recipe": where, "name": name, "trajectories": str(traj_dir)},
    )
    out = Path(out or Path("runs") / name)
    train_student(teacher, ds, settings, train_cfg, out, resume=resume, progress=progress)
    return out


__all__ = ["train_from_dd_recipe"]
