"""`ardistill distill`: (trajectories →) student training → benchmark → report, in one output folder, driven by the
recipe registered for the teacher and the method (`recipes/dd/<teacher>.yaml`, `recipes/dd2/<teacher>.yaml`). Every
stage resumes where it stopped, so an interrupted run is simply started again.

Layout of OUT: `trajectories/` (DD only: the sharded dataset), `student/` (checkpoints while training, then
student.safetensors + student.json), `bench/` (bench.json, bench.md, plots, sample grids), `report.md`.
DD2 needs no trajectories: its student folder holds its own stages (pool.pt, gts-head/, gts-full/, csd/).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ardistill.errors import ArdistillError, BadArgumentError
from ardistill.recipes import resolve_recipe


@dataclass(frozen=True)
class DistillPlan:
    """What one `distill` run does; the defaults come from the recipe."""

    teacher: str
    recipe: str
    out: Path
    steps: tuple[int, ...] = (1,)  # student step counts to benchmark (DD: 1 and/or 2; DD2: 1 … the teacher's AR steps)
    num_trajectories: int | None = None  # default: the recipe's num_trajectories
    train_steps: int | None = None  # default: the recipe's train.steps
    fid_samples: int = 1000
    batch_sizes: tuple[int, ...] = (1, 16)
    repeats: int = 5
    device: str = "cpu"
    baselines: tuple[str, ...] | None = None  # naive few-step baselines benched beside the students (None: the recipe's)
    method: str = "dd"  # "dd" (trajectories + student) | "dd2" (conditional score distillation, no trajectories)
    shipped: bool = True  # bench the teacher's built-in (fully trained) students beside this run's


METHODS = ("dd", "dd2")


def recipe_for_teacher(teacher: str, recipe: str | None = None, method: str = "dd") -> str:
    """The `method` recipe of `teacher`: the given one, else `recipes/<method>/<teacher>.yaml`."""
    if method not in METHODS:
        raise BadArgumentError(f"--method must be {' or '.join(METHODS)}, got {method!r}")
    ref = recipe or f"{method}/{teacher}"
    try:
        return str(resolve_recipe(ref))
    except ArdistillError:
        raise ArdistillError(f"no {method.upper()} recipe for teacher {teacher!r} (looked for recipes/{method}/{teacher}.yaml); "
                             "pass --recipe") from None


def run_distill(plan: DistillPlan, *, log: Callable[[str], None] = print, progress: bool = True) -> Path:
    """Run (or resume) every stage of `plan`; returns the report's path."""
    if plan.method == "dd2":
        return _run_dd2(plan, log=log, progress=progress)
    from ardistill.api import load_teacher
    from ardistill.methods.dd.recipe import load_dd_recipe, train_from_dd_recipe
    from ardistill.methods.dd.trajectories import generate_trajectories

    # The command line's values go into the typed recipe, checked as the file was.
    recipe = load_dd_recipe(plan.recipe).overridden({"num_trajectories": plan.num_trajectories, "train.steps": plan.train_steps})
    if recipe.teacher != plan.teacher:
        raise ArdistillError(f"{plan.recipe} distils {recipe.teacher!r}, not {plan.teacher!r}")
    bad = [s for s in plan.steps if s not in (1, 2)]
    if bad:
        raise ArdistillError(f"--steps must be 1 or 2 (teacher-involved schedules: `ardistill sample --student`), got {bad[0]}")
    if plan.baselines is None:
        import dataclasses

        plan = dataclasses.replace(plan, baselines=tuple(recipe.baselines or ()))
    num = recipe.num_trajectories
    if not num or num <= 0:
        raise ArdistillError(f"{plan.recipe}: num_trajectories: set it (or pass --num-trajectories)")
    teacher = load_teacher(plan.teacher, device=plan.device)
    check_plan(plan, teacher)  # settings the benchmark would refuse are refused now, before hours of work
    out = plan.out
    out.mkdir(parents=True, exist_ok=True)

    # 1. Trajectories (resumable shard by shard).
    log(f"[1/3] trajectories: {num} samples of {plan.teacher} → {out / 'trajectories'}")
    generate_trajectories(teacher, out / "trajectories", num=num, seed=recipe.trajectory_seed, shard_size=recipe.shard_size,
                          batch_size=recipe.trajectory_batch_size, flow=recipe.flow, progress=progress,
                          **recipe.trajectory_sampling.to_dict())

    # 2. Student training (resumes from its checkpoint; a finished student is kept).
    student_dir = out / "student"
    if (student_dir / "student.safetensors").is_file():
        log(f"[2/3] student: already trained ({student_dir})")
    else:
        log(f"[2/3] student: training from {plan.recipe} → {student_dir}")
        train_from_dd_recipe(recipe, teacher=teacher, out=student_dir, resume=(student_dir / "checkpoint.pt").is_file(),
                             trajectories=out / "trajectories", progress=progress)

    # 3. Benchmark: speed side by side with the teacher, toy-FID / class accuracy (or FID) of every method.
    log(f"[3/3] benchmark: teacher vs {', '.join(f'{s}-step student' for s in plan.steps)} → {out / 'bench'}")
    doc = _bench(plan, student_dir, out / "bench", marginals_from=out / "trajectories")
    for skipped in doc.get("skipped") or []:
        log(f"warning: baseline {skipped['name']} skipped: {skipped['reason']}")
    report = out / "report.md"
    from ardistill.io import atomic_write_text

    atomic_write_text(report, report_markdown(plan, doc))
    return report


def _run_dd2(plan: DistillPlan, *, log: Callable[[str], None], progress: bool) -> Path:
    """DD2: student training (pool → GTS → CSD, each stage resumable) → benchmark → report."""
    import dataclasses

    from ardistill.api import load_teacher
    from ardistill.io import atomic_write_text
    from ardistill.methods.dd2.recipe import load_dd2_recipe
    from ardistill.methods.dd2.train import POOL_FILE, train_dd2_student

    if plan.num_trajectories is not None:
        raise BadArgumentError("--num-trajectories is for --method dd; DD2 trains from its teacher alone")
    recipe = load_dd2_recipe(plan.recipe).overridden({"csd.steps": plan.train_steps})
    if recipe.teacher != plan.teacher:
        raise ArdistillError(f"{plan.recipe} distils {recipe.teacher!r}, not {plan.teacher!r}")
    if plan.baselines is None:
        plan = dataclasses.replace(plan, baselines=tuple(recipe.baselines or ()))
    teacher = load_teacher(plan.teacher, device=plan.device)
    bad = [s for s in plan.steps if not 1 <= s <= teacher.num_steps]
    if bad:
        raise BadArgumentError(f"--steps must lie in 1 … {teacher.num_steps} for a DD2 student of {plan.teacher} (1 generator "
                               f"pass, then the teacher's last AR steps), got {bad[0]}")
    check_plan(plan, teacher)
    out = plan.out
    out.mkdir(parents=True, exist_ok=True)
    student_dir = out / "student"
    if (student_dir / "student.safetensors").is_file():
        log(f"[1/2] student: already trained ({student_dir})")
    else:
        log(f"[1/2] student: teacher pool → GTS tuning → CSD from {plan.recipe} → {student_dir}")
        train_dd2_student(teacher, recipe, student_dir, resume=(student_dir / POOL_FILE).is_file(), progress=progress, log=log)
    log(f"[2/2] benchmark: teacher vs {', '.join(f'{s}-step student' for s in plan.steps)} → {out / 'bench'}")
    doc = _bench(plan, student_dir, out / "bench", marginals_from=None)
    report = out / "report.md"
    atomic_write_text(report, report_markdown(plan, doc))
    return report


def check_plan(plan: DistillPlan, teacher) -> None:
    """Refuse (one-line BadArgumentError) what only the benchmark, the last stage, would otherwise reject."""
    from ardistill.generators import parse_baselines
    from ardistill.bench.run import TOY_NUM_CLASSES

    bad = [b for b in plan.batch_sizes if b < 1]
    if bad or not plan.batch_sizes:
        raise BadArgumentError(f"--batch-sizes must be ≥ 1, got {bad[0] if bad else 'none'}")
    parse_baselines(teacher, plan.baselines or ())
    if plan.fid_samples > 0 and teacher.num_classes != TOY_NUM_CLASSES:
        raise BadArgumentError(f"{plan.teacher} is not a model of the built-in world, whose held-out images are the only "
                               "FID reference `distill` has; pass --fid-samples 0 (speed only), then `ardistill bench "
                               "--fid --fid-ref ...` on the student")


def _bench(plan: DistillPlan, student_dir: Path, bench_dir: Path, *, marginals_from: Path | None = None) -> dict:
    """The benchmark of the student beside its teacher (and baselines, their token marginals read from the DD
    trajectories `marginals_from`, else drawn from the teacher)."""
    from ardistill.bench.report import write_run
    from ardistill.bench.run import BenchConfig, run_benchmark
    from ardistill.bench.speed import SpeedSettings
    from ardistill.images import save_grid
    from ardistill.students import builtin_students_of

    shipped = tuple(builtin_students_of(plan.teacher)) if plan.shipped else ()
    cfg = BenchConfig(teacher=plan.teacher, student=str(student_dir), dd_steps=plan.steps, shipped_students=shipped,
                      baselines=plan.baselines,
                      marginals_from=str(marginals_from) if plan.baselines and marginals_from else None,
                      speed=SpeedSettings(batch_sizes=plan.batch_sizes, repeats=plan.repeats),
                      fid=plan.fid_samples > 0, num_samples=max(plan.fid_samples, 2), device=plan.device)
    bench_dir.mkdir(parents=True, exist_ok=True)

    def grid(name: str, images, caption: str) -> str:
        save_grid(images, bench_dir / f"grid-{name}.png", caption=caption)
        return f"grid-{name}.png"

    doc = run_benchmark(cfg, on_grid=grid)
    write_run(bench_dir, doc)
    return doc


def report_markdown(plan: DistillPlan, doc: dict) -> str:
    """The one-page report: what was run, the teacher's and the students' images, quality and speed-up."""
    from ardistill.bench.report import grid_caption, run_markdown
    from ardistill.training.teacher_recipes import repo_relative

    skipped = {s["name"] for s in doc.get("skipped") or []}
    baselines = [b for b in plan.baselines or () if b not in skipped]

    def captions(names) -> str:  # the row under a row of grids: method, AR steps, toy-FID
        return "| " + " | ".join(grid_caption(n, doc.get("speed", []), doc.get("quality") or {}) for n in names) + " |"

    rows = [f"{plan.method}-{s}step" for s in plan.steps]  # the benchmark's row names (dd-1step, dd2-1step, ...)
    shipped = [m["name"] for m in doc.get("methods", []) if m["kind"] == "dd" and m["name"] not in rows]  # built-in students
    title = {"dd": "Distilled Decoding", "dd2": "Distilled Decoding 2"}[plan.method]
    folders = "`trajectories/`, `student/`, `bench/`" if plan.method == "dd" else "`student/`, `bench/`"
    lines = [f"# {title} of {plan.teacher}", "",
             f"Recipe `{repo_relative(plan.recipe)}`; output `{plan.out}`: {folders}.", "",
             "| teacher | " + " | ".join(f"{s}-step student" for s in plan.steps) + " |",
             "|---|" + "---|" * len(plan.steps),
             "| ![teacher](bench/grid-teacher.png) | " + " | ".join(f"![{r}](bench/grid-{r}.png)" for r in rows) + " |",
             captions(["teacher", *rows]),
             *([ "", "Naive baselines (the same teacher with AR steps cut, tokens drawn independently):", "",
                 "| " + " | ".join(baselines) + " |", "|" + "---|" * len(baselines),
                 "| " + " | ".join(f"![{b}](bench/grid-{b}.png)" for b in baselines) + " |", captions(baselines), ""]
               if baselines else []),
             *[f"**Baseline {s['name']} skipped**: {s['reason']}." for s in doc.get("skipped") or []],
             *(["", "The shipped, fully trained students of the same teacher (`ardistill.load_student(NAME)`; their "
                "training is in their model cards), benched in this run:", "",
                "| " + " | ".join(shipped) + " |", "|" + "---|" * len(shipped),
                "| " + " | ".join(f"![{r}](bench/grid-{r}.png)" for r in shipped) + " |", captions(shipped), ""]
               if shipped else []),
             ""]
    return "\n".join(lines) + run_markdown(doc, plots=[], heading="##", plot_prefix="bench/")


__all__ = ["DistillPlan", "METHODS", "run_distill", "recipe_for_teacher", "report_markdown"]
