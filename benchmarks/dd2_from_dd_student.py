"""A DD student read out as DD2's one-step generator, before any CSD (docs/dd2.md decision 24): the one-step toy-FID
of `DDStudentGenerator` (`expected` at a temperature, or `continuous`) by the evaluation protocol, beside the DD
student's own one-step sampler on the same images.

    PYTHONPATH=. python benchmarks/dd2_from_dd_student.py --student dd-var-toy-l --recipe recipes/dd2/var-toy-l.yaml \
        --read-outs expected@1,expected@0.3,continuous [--num 256]

The recipe gives the teacher, its distilled sampling settings and the code scale. One JSON line per read-out (nearest
codes decoded, and the continuous vectors decoded as they are). CSD from such a generator is the recipe option
`network.generator_init` (`ardistill train`).
"""

from __future__ import annotations

import argparse
import json

import torch

import ardistill
from ardistill.eval.protocol import student_generator, toy_quality
from ardistill.methods.dd2.evaluate import evaluate_samples, one_step_sampler
from ardistill.methods.dd2.family import family_adapter
from ardistill.methods.dd2.recipe import load_dd2_recipe
from ardistill.models.dd2.from_dd import DDStudentGenerator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--student", default="dd-llamagen-toy", help="a DD student: built-in name or folder")
    ap.add_argument("--recipe", default="recipes/dd2/llamagen-toy.yaml")
    ap.add_argument("--read-outs", default="expected@1,continuous", help="expected@TEMPERATURE or continuous, comma-separated")
    ap.add_argument("--num", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    recipe = load_dd2_recipe(a.recipe)
    teacher = ardistill.load_teacher(recipe.teacher)
    fam = family_adapter(teacher, code_scale=recipe.network.code_scale, **recipe.sampling.to_dict())
    student = ardistill.load_student(a.student, teacher=teacher)
    q = toy_quality(student_generator(student), a.num, seed=0, image_size=teacher.image_size,
                    num_classes=teacher.num_classes, device=teacher.device, across_ranks=False)
    print(json.dumps({"read_out": "dd-sampler", "num": a.num, "fid": q["fid"], "class_acc": q["class_accuracy"]}), flush=True)
    for spec in a.read_outs.split(","):
        output, _, temperature = spec.partition("@")
        gen = DDStudentGenerator(student.model, teacher.codebook, fam.code_scale, output=output,
                                 temperature=float(temperature or 1.0)).eval()
        r = evaluate_samples(fam, one_step_sampler(fam, gen), num=a.num)
        print(json.dumps({"read_out": spec, "num": a.num, "fid": r["nearest"]["fid"], "class_acc": r["nearest"]["class_acc"],
                          "continuous_fid": r["continuous"]["fid"]}), flush=True)


if __name__ == "__main__":
    main()
