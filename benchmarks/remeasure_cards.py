"""Re-measure the `metrics` of installed built-in teachers' model cards with the evaluation protocol.

    OMP_NUM_THREADS=1 python benchmarks/remeasure_cards.py var-toy-l var-toy-s llamagen-toy

`ardistill teacher export RUN` measures a card when a trained run is installed; this script re-measures a card in place
when only the installed weights are at hand (e.g. after the evaluation protocol changed): the same function
(`ardistill.eval.quality.card_metrics`) on the same installed (fp16-stored) weights, then model.json and README.md are
rewritten (`model_card_markdown`). Nothing but `metrics` changes. The numbers equal `ardistill teacher eval NAME` and
the teacher row of `ardistill bench --teacher NAME --fid --num-samples N` (docs/evaluation.md).
"""

from __future__ import annotations

import argparse
import json

import ardistill
from ardistill.eval.quality import card_metrics
from ardistill.io import atomic_write_json, atomic_write_text
from ardistill.registry import PACKAGE_WEIGHTS
from ardistill.training.teacher_recipes import model_card_markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teachers", nargs="+", help="built-in teacher names (folders of ardistill/weights/)")
    parser.add_argument("--num", type=int, default=None, help="samples (default: the card's own count)")
    args = parser.parse_args()
    for name in args.teachers:
        folder = PACKAGE_WEIGHTS / name  # where load_teacher(name) reads the built-in from
        card = json.loads((folder / "model.json").read_text())
        num = args.num or int((card.get("metrics") or {}).get("num", 1000))
        old = (card.get("metrics") or {}).get("samples", {}).get("fid")
        card["metrics"] = card_metrics(ardistill.load_teacher(name), num=num, progress=False)
        atomic_write_json(folder / "model.json", card)
        atomic_write_text(folder / "README.md", model_card_markdown(card))
        print(f"{name}: samples toy-FID {old} → {card['metrics']['samples']['fid']} ({num} samples); {json.dumps(card['metrics'])}",
              flush=True)


if __name__ == "__main__":
    main()
