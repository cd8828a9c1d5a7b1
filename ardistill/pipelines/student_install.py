"""`ardistill student install`: ship a finished DD / DD2 training folder as a built-in student
(`ardistill.students`): the weights stored for shipping (matrices in fp16, small tensors in fp32; loaded into fp32
modules), the installed copy loaded back through `ardistill.load_student` and *that* copy measured by the evaluation
protocol, so the model card (the `builtin` block of student.json, README.md) describes what ships.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable, Sequence

import torch

from ardistill.errors import ArdistillError, BadArgumentError
from ardistill.io import atomic_save_safetensors, atomic_write_json, atomic_write_text, load_state_dict_file
from ardistill.recipes import relative_name
from ardistill.registry import PACKAGE_WEIGHTS, get_model_spec
from ardistill.students import CARD_BLOCK, STUDENT_CARD, STUDENT_WEIGHTS, builtin_student_dir

# Tensors with fewer elements than this stay fp32 when stored for shipping (biases, norms, scales): they cost
# nothing and keep exact values such as a DD2 generator's code scale.
FP16_MIN_NUMEL = 4096


def shipping_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating tensors of ≥ `FP16_MIN_NUMEL` elements as fp16, everything else as it is (fp32)."""
    return {k: (v.half() if v.is_floating_point() and v.numel() >= FP16_MIN_NUMEL else v).contiguous()
            for k, v in state_dict.items()}


def student_metrics(student, *, steps: Sequence[int], num: int = 1000, seed: int = 0,
                    progress: Callable[[str], None] | None = None) -> dict:
    """{"<k>step": {fid, class_accuracy, kid_mean, precision, recall}} of the student's k-step samples through the
    evaluation protocol (decoded from the continuous output, as bench and the training evaluations decode them),
    plus num, seed, protocol and the evaluator's SHA-256."""
    from ardistill.eval.evaluator import CARD_FILE, PACKAGE_EVALUATOR_DIR
    from ardistill.eval.protocol import describe, student_generator, toy_quality
    from ardistill.eval.quality import QUALITY_METRICS

    teacher = student.teacher
    out: dict = {}
    for k in steps:
        if progress is not None:
            progress(f"measuring {k}-step samples ({num} images)")
        q = toy_quality(student_generator(student, steps=int(k)), num, seed=seed, image_size=teacher.image_size,
                        num_classes=teacher.num_classes, device=teacher.device, across_ranks=False)
        out[f"{k}step"] = {m: round(float(q[m]), 4) for m in QUALITY_METRICS}
        out[f"{k}step"]["ms_per_image_cpu"] = round(1000 * q["generation_seconds"] / num, 2)
    out.update(num=num, seed=seed, protocol=describe(num, seed)["protocol"],
               evaluator_sha256=json.loads((PACKAGE_EVALUATOR_DIR / CARD_FILE).read_text())["sha256"])
    return out


def install_student(run_dir: str | os.PathLike, name: str, *, root: str | os.PathLike | None = None,
                    steps: Sequence[int] = (1, 2), num: int = 1000, seed: int = 0, description: str = "",
                    progress: Callable[[str], None] | None = None) -> Path:
    """Install the finished student in `run_dir` as built-in student `name` under `root` (default: the package's
    weights folder) and measure it; returns the installed folder. An existing installation of `name` is replaced
    only once the new one is complete."""
    from ardistill.api import load_student

    run = Path(run_dir)
    if not (run / STUDENT_CARD).is_file() or not (run / STUDENT_WEIGHTS).is_file():
        raise ArdistillError(f"{run}: not a finished student folder (no {STUDENT_CARD} + {STUDENT_WEIGHTS}); "
                             "finish it with `ardistill train --recipe ... --resume`")
    if not name or "/" in name or os.sep in name or name.startswith("."):
        raise BadArgumentError(f"--name must be a plain model name such as dd2-var-toy-l, got {name!r}")
    base = Path(root or PACKAGE_WEIGHTS)
    if (base / name).exists() and builtin_student_dir(name, root=base) is None:
        raise BadArgumentError(f"{base / name} exists and is not a built-in student; choose another --name")
    card = json.loads((run / STUDENT_CARD).read_text())
    if card.get("teacher") is None or card.get("family") is None:
        raise ArdistillError(f"{run / STUDENT_CARD}: not a student card (no teacher / family)")
    card.setdefault("method", "dd")  # DD cards predate the field; a built-in card always says its method
    shipped = shipped_card(card)
    staging = base / f".{name}.installing"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        weights = load_state_dict_file(run / STUDENT_WEIGHTS)
        atomic_save_safetensors(shipping_state_dict(weights), staging / STUDENT_WEIGHTS)
        params = sum(v.numel() for v in weights.values() if v.is_floating_point())
        block = {"description": description or _default_description(card), "params": int(params),
                 **_trajectory_facts(card), "storage": f"floating tensors of ≥ {FP16_MIN_NUMEL} elements as float16, the "
                 "rest float32 (loaded into fp32 modules)"}
        atomic_write_json(staging / STUDENT_CARD, {**shipped, "name": name, CARD_BLOCK: block})
        student = load_student(staging, device="cpu")
        for k in steps:
            student.schedule(int(k))  # a count the student cannot sample is a one-line error before any work
        block["metrics"] = student_metrics(student, steps=steps, num=num, seed=seed, progress=progress)
        teacher_card = get_model_spec(card["teacher"])
        block["teacher_metrics"] = _teacher_card_metrics(teacher_card.name)
        atomic_write_json(staging / STUDENT_CARD, {**shipped, "name": name, CARD_BLOCK: block})
        atomic_write_text(staging / "README.md", model_card_markdown(name, {**shipped, CARD_BLOCK: block}))
        for f in staging.iterdir():
            f.chmod(0o644)  # atomic writes make private files; these ship
        dest = base / name
        if dest.exists():
            old = base / f".{name}.old"
            shutil.rmtree(old, ignore_errors=True)
            dest.rename(old)
            staging.rename(dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _trajectory_facts(card: dict) -> dict:
    """A DD student's trajectory dataset, when its folder is still there: {"trajectories": {"num", "sampling", "flow",
    "minutes"}} (minutes: from the files' times, meta.json written at the start, the last shard at the end)."""
    folder = Path(card.get("trajectories") or "")
    meta = folder / "meta.json"
    if not card.get("trajectories") or not meta.is_file():
        return {}
    info = json.loads(meta.read_text())
    shards = list(folder.glob("shard-*.safetensors"))
    minutes = (max(p.stat().st_mtime for p in shards) - meta.stat().st_mtime) / 60 if shards else None
    inner = info.get("meta", {})
    return {"trajectories": {"num": info.get("num"), "sampling": inner.get("sampling"), "flow": inner.get("flow"),
                             "minutes": round(minutes, 1) if minutes is not None else None}}


def _teacher_card_metrics(teacher: str) -> dict | None:
    card = PACKAGE_WEIGHTS / teacher / "model.json"
    if not card.is_file():
        return None
    samples = json.loads(card.read_text()).get("metrics", {}).get("samples")
    return {k: samples[k] for k in ("fid", "class_accuracy")} if samples else None


def _default_description(card: dict) -> str:
    method = "Distilled Decoding 2" if card.get("method") == "dd2" else "Distilled Decoding"
    return f"{method} student of {card['teacher']}"


def shipped_card(card: dict) -> dict:
    """The training card as it ships: the recipe as the repository spells it, no path of the trainer's machine (the
    trajectory folder's facts live in the `builtin` block)."""
    out = {k: v for k, v in card.items() if k != "trajectories"}
    if out.get("recipe"):
        out["recipe"] = relative_name(out["recipe"])
    return out


def model_card_markdown(name: str, card: dict) -> str:
    """README.md of a built-in student, from its card."""
    block = card[CARD_BLOCK]
    m, teacher = block["metrics"], block.get("teacher_metrics") or {}
    lines = [f"# {name}", "", f"{block['description']}.", "",
             f"- method: {card.get('method', 'dd').upper()}; teacher: `{card['teacher']}`; parameters: {block['params']:,}",
             f"- recipe: `{relative_name(card['recipe']) if card.get('recipe') else 'n/a'}`"]
    seconds = card.get("seconds")
    if isinstance(seconds, dict) and seconds.get("total"):  # DD2: every stage
        lines.append(f"- training: {seconds['total'] / 60:.1f} wall-clock minutes ("
                     + ", ".join(f"{k} {v / 60:.1f}" for k, v in seconds.items() if k != "total" and v) + ")")
    elif isinstance(seconds, (int, float)):  # DD: the student's training (its trajectories are made before)
        traj = block.get("trajectories") or {}
        made = (f", after {traj['minutes']:.1f} minutes making {traj['num']:,} trajectories (teacher sampling "
                f"{traj['sampling']}, flow map {traj['flow']['solver']} {traj['flow']['steps']} steps)") if traj.get("minutes") else ""
        lines.append(f"- training: {seconds / 60:.1f} minutes of student training ({card.get('steps', '?')} steps at batch "
                     f"{card.get('batch_size', '?')}){made}")
    if card.get("generator_init"):  # DD2: the generator started from a trained student (continued), not from GTS
        lines.append(f"- generator started from `{card['generator_init']}`"
                     + (f": {card['continued_from']}" if card.get("continued_from") else "")
                     + "; the training time above is this run's only")
    lines += [f"- storage: {block['storage']}", "",
              f"Measured at install by the evaluation protocol ({m['protocol']}, {m['num']} class-balanced images, "
              f"seed {m['seed']}, the shipped evaluator), decoded from the continuous output:", "",
              "| sampler | toy-FID | class acc. | precision / recall | × teacher's toy-FID |", "|---|---:|---:|---:|---:|"]
    if teacher:
        lines.append(f"| teacher `{card['teacher']}` (its card) | {teacher['fid']:.2f} | {100 * teacher['class_accuracy']:.1f}% | — | 1 |")
    for key, row in m.items():
        if not key.endswith("step"):
            continue
        ratio = f"{row['fid'] / teacher['fid']:.2f}×" if teacher else "—"
        lines.append(f"| {key[:-4]}-step | {row['fid']:.2f} | {100 * row['class_accuracy']:.1f}% | "
                     f"{row['precision']:.3f} / {row['recall']:.3f} | {ratio} |")
    lines += ["", "```python", "import ardistill", f"student = ardistill.load_student({name!r})",
              "tokens = student.sample([0, 1, 2], steps=1, seed=0)", "images = student.teacher.decode(tokens)", "```", ""]
    return "\n".join(lines)


__all__ = ["install_student", "student_metrics", "shipping_state_dict", "model_card_markdown", "FP16_MIN_NUMEL"]
