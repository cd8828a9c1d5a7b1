"""Built-in students: trained DD and DD2 students shipped inside the package, loadable by name
(`ardistill.load_student("dd2-var-toy-l")`), each with a model card measured by the evaluation protocol.

A built-in student is a folder `ardistill/weights/<name>/` holding what `ardistill train` writes (`student.json`,
`student.safetensors`) plus a `builtin` block in the card (the protocol's metrics of its 1- and 2-step samples, its
teacher's, the evaluator's SHA-256, how it was trained and stored) and a `README.md` written from that block.
`ardistill student install RUN --name NAME` (`ardistill.pipelines.student_install`) makes one from a finished
training folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ardistill.registry import PACKAGE_WEIGHTS, ModelSpec, WeightFile, add_catalogue, get_model_spec, register_model

STUDENT_CARD = "student.json"  # the card name both student formats use (methods/dd, methods/dd2)
STUDENT_WEIGHTS = "student.safetensors"
CARD_BLOCK = "builtin"


def builtin_student_dir(name: str | os.PathLike, *, root: str | os.PathLike | None = None) -> Path | None:
    """The folder of the built-in student `name` (a plain name, not a path), or None."""
    text = str(name)
    if not text or os.sep in text or "/" in text or text.startswith("."):
        return None
    folder = Path(root or PACKAGE_WEIGHTS) / text
    card = folder / STUDENT_CARD
    if not card.is_file():
        return None
    try:
        return folder if CARD_BLOCK in json.loads(card.read_text()) else None
    except (OSError, ValueError):
        return None


def builtin_student_names(root: str | os.PathLike | None = None) -> list[str]:
    base = Path(root or PACKAGE_WEIGHTS)
    return sorted(p.parent.name for p in base.glob(f"*/{STUDENT_CARD}") if builtin_student_dir(p.parent.name, root=base))


def builtin_students_of(teacher: str, root: str | os.PathLike | None = None) -> list[str]:
    """The built-in students distilled from `teacher` (DD first, then DD2)."""
    base = Path(root or PACKAGE_WEIGHTS)
    cards = {n: json.loads((base / n / STUDENT_CARD).read_text()) for n in builtin_student_names(base)}
    return sorted((n for n, c in cards.items() if c.get("teacher") == teacher), key=lambda n: (cards[n].get("method", "dd"), n))


def _student_config(card: dict, folder: Path):
    """The typed config of a student card (DD or DD2), as its loader reads it."""
    if card.get("method") == "dd2":
        from ardistill.methods.dd2.student import read_dd2_card

        return read_dd2_card(folder)[0]
    from ardistill.models.dd.config import DDStudentConfig

    return DDStudentConfig(family=card["family"], teacher=card["teacher"], t_list=tuple(card["t_list"]), split=int(card["split"]))


def _register_builtin_students(root: str | os.PathLike | None = None) -> None:
    """Register every built-in student (kind "student", builtin) so that `ardistill models` lists it."""
    base = Path(root or PACKAGE_WEIGHTS)
    for name in builtin_student_names(base):
        folder = base / name
        card = json.loads((folder / STUDENT_CARD).read_text())
        teacher = get_model_spec(card["teacher"])
        block = card[CARD_BLOCK]
        register_model(ModelSpec(
            name=name, family=f"{card.get('method', 'dd')}-{card['family']}", config=_student_config(card, folder),
            files=(WeightFile("student", STUDENT_WEIGHTS),), description=block.get("description", ""), builtin=True,
            tokens_per_image=teacher.tokens_per_image, image_size=teacher.image_size, params=int(block.get("params", 0)),
            kind="student"))


add_catalogue(_register_builtin_students)


__all__ = ["builtin_student_dir", "builtin_student_names", "builtin_students_of", "STUDENT_CARD", "STUDENT_WEIGHTS", "CARD_BLOCK"]
