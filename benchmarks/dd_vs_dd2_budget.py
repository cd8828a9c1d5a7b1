"""One-step toy-FID against CPU-minutes of training, DD and DD2 on the same axes (issue #20's plot), read from
finished run folders; everything a method spends before its student exists is counted.

    PYTHONPATH=. python benchmarks/dd_vs_dd2_budget.py --teacher var-toy-l \
        --dd runs/distill/var-toy-l --dd2 runs/distill-dd2/var-toy-l/student --dd2-bench runs/.../bench.json \
        --out docs/img/dd-vs-dd2-var-toy-l.png

- DD (an `ardistill distill` folder): trajectory generation (from the trajectory files' times: `meta.json` is
  written when generation starts, each shard when it is done) + student training (`student/student.json`
  "seconds"); each periodic evaluation sits at trajectories + seconds × step / final step.
- DD2 (an `ardistill train --recipe dd2/...` folder): pool + continuous adaptation + GTS + CSD (`student.json`
  "seconds", which add up across resumes); each CSD evaluation sits at pool + adaptation + GTS + CSD seconds × step /
  final step.
- Curves: the runs' periodic evaluations (protocol, `eval.num` images, 256 in the shipped recipes: biased upward
  against 1000 images); markers: the final student's 1000-image toy-FID from a bench.json (`--dd-bench`,
  `--dd2-bench`, or an installed student's student.json; the DD default is the distill folder's own
  bench/bench.json), and the teacher's as a line (`--teacher-fid`, default: the bench's teacher row).

Writes the PNG and a JSON of the plotted points next to it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def trajectory_seconds(folder: Path) -> float:
    """Wall seconds of trajectory generation: last shard written − meta.json written (an uninterrupted run)."""
    meta = folder / "meta.json"
    shards = sorted(folder.glob("shard-*.safetensors"))
    if not meta.is_file() or not shards:
        raise SystemExit(f"{folder}: no trajectory shards")
    return max(p.stat().st_mtime for p in shards) - meta.stat().st_mtime


def evals_at(card: dict, before: float, seconds: float, step_key: str, final_step: int) -> list[dict]:
    return [{"minutes": (before + seconds * e[step_key] / final_step) / 60, "step": e[step_key], "fid": e["fid"],
             "class_acc": e["class_acc"]} for e in card.get("evals", [])]


def dd_points(run: Path) -> dict:
    card = json.loads((run / "student" / "student.json").read_text())
    traj = trajectory_seconds(Path(card["trajectories"]) if Path(card.get("trajectories", "")).is_dir() else run / "trajectories")
    train = float(card["seconds"])
    return {"before_training_minutes": traj / 60, "total_minutes": (traj + train) / 60,
            "evals": evals_at(card, traj, train, "step", int(card["steps"]))}


def dd2_points(run: Path) -> dict:
    card = json.loads((run / "student.json").read_text())
    s = card["seconds"]
    before = s["pool"] + s.get("adaptation", 0.0) + s["gts"]
    return {"before_training_minutes": before / 60, "total_minutes": s["total"] / 60,
            "evals": evals_at(card, before, s["csd"], "generator_steps", int(card["generator_steps"]))}


def final_fid(bench: Path | None, row: str) -> float | None:
    """The 1000-image toy-FID of `row` in a bench.json, or (row "…-1step") of a built-in student's card."""
    if bench is None or not bench.is_file():
        return None
    doc = json.loads(bench.read_text())
    if "builtin" in doc:  # an installed student's student.json
        return float(doc["builtin"]["metrics"]["1step"]["fid"]) if row.endswith("-1step") else None
    q = doc.get("quality", {})
    return float(q[row]["fid"]) if row in q else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--dd", type=Path, required=True, help="`ardistill distill` folder (DD)")
    ap.add_argument("--dd2", type=Path, required=True, help="DD2 training folder")
    ap.add_argument("--dd-bench", type=Path, default=None)
    ap.add_argument("--dd2-bench", type=Path, default=None)
    ap.add_argument("--teacher-fid", type=float, default=None)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dd, dd2 = dd_points(a.dd), dd2_points(a.dd2)
    dd["final_fid_1000"] = final_fid(a.dd_bench or a.dd / "bench" / "bench.json", "dd-1step")
    dd2["final_fid_1000"] = final_fid(a.dd2_bench, "dd2-1step")
    teacher = a.teacher_fid or final_fid(a.dd_bench or a.dd / "bench" / "bench.json", "teacher") or final_fid(a.dd2_bench, "teacher")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, pts, color in (("DD (trajectories + student)", dd, "tab:blue"), ("DD2 (pool + GTS + CSD)", dd2, "tab:red")):
        xs = [pts["before_training_minutes"]] + [e["minutes"] for e in pts["evals"]]
        ax.plot(xs[1:], [e["fid"] for e in pts["evals"]], "o-", color=color, label=f"{name}, periodic eval")
        ax.axvline(pts["before_training_minutes"], color=color, ls=":", lw=1)
        if pts["final_fid_1000"] is not None:
            ax.plot([pts["total_minutes"]], [pts["final_fid_1000"]], "*", ms=12, color=color, label=f"{name.split(' ')[0]} final, 1000 images")
    if teacher is not None:
        ax.axhline(teacher, color="k", ls="--", lw=1, label=f"teacher {teacher:.2f}")
    ax.set_xlabel("minutes on one CPU thread (all stages before the student counted)")
    ax.set_xlim(left=0)
    ax.set_ylabel("one-step toy-FID")
    ax.set_title(f"{a.teacher}: DD vs DD2, one-step quality against training budget")
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(alpha=0.3)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    a.out.with_suffix(".json").write_text(json.dumps({"teacher": a.teacher, "teacher_fid": teacher, "dd": dd, "dd2": dd2}, indent=1))
    print(json.dumps({"dd": dd, "dd2": dd2}))


if __name__ == "__main__":
    main()
