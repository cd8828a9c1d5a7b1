"""Which DD2 stage is weak on a LlamaGen teacher: the GTS-tuned model as an AR sampler, the one-step generator (at
initialisation and after CSD), and how the generator's tokens sit under the teacher (docs/dd2.md, "Where
llamagen-toy's DD2 student is weak").

    PYTHONPATH=. python benchmarks/dd2_llamagen_diagnose.py --run RUN [--num 256] [--what euler,generator,modes]

RUN: a `ardistill train --recipe dd2/llamagen-toy` folder (pool.pt, adapt/, gts-full/, csd/). Prints one JSON line
per measurement:
- euler: the GTS-tuned model, 10 Euler steps per token; generator: the one-step generator at initialisation
  (gts-full) and after CSD (csd, raw weights); both through the evaluation protocol (`num` images).
- modes: per class, 96 one-step draws: distinct first-token codes (the teacher's own samples beside), the teacher's
  log-probability of the generator's first tokens, the per-token NLL of whole sequences, and how far the output moves
  with the noise (same class) against with the class (same noise).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import ardistill
from ardistill.methods.dd2.evaluate import evaluate_samples, one_step_sampler
from ardistill.methods.dd2.family import family_adapter
from ardistill.methods.dd2.recipe import load_dd2_recipe
from ardistill.methods.dd2.train import load_or_make_pool


def emit(**row) -> None:
    print(json.dumps(row), flush=True)


def network(fam, recipe, run: Path, stage: str):
    net = fam.new_network(head_width=recipe.network.head_width, head_depth=recipe.network.head_depth, seed=recipe.network.seed)
    sd = torch.load(run / stage / "checkpoint.pt", weights_only=False, map_location="cpu")["model"]
    if stage.startswith("csd"):  # GeneratorAndGuidance: the generator's weights
        sd = {k[len("generator."):]: v for k, v in sd.items() if k.startswith("generator.")}
    net.load_state_dict(sd)
    return net.eval()


@torch.no_grad()
def modes(fam, gen, *, draws: int = 96) -> dict:
    C, L, K = fam.code_dim, fam.tokens_per_image, fam.num_classes
    rows = []
    for c in range(K):
        labels = torch.full((draws,), c)
        tokens = fam.nearest_codes(gen(torch.randn(draws, L, C, generator=torch.Generator().manual_seed(c)), labels))
        probs = fam.sampling_probs(labels, tokens)  # [N, L, V]
        own = fam.sample_teacher(labels, seed=100 + c)
        first = probs[0, 0]  # the first token's distribution depends on the class only
        rows.append({"class": c, "distinct_first_codes": int(tokens[:, 0].unique().numel()),
                     "teacher_distinct_first_codes": int(own[:, 0].unique().numel()),
                     "first_token_logp": float(first[tokens[:, 0]].clamp_min(1e-12).log().mean()),
                     "teacher_first_token_logp": float(first[own[:, 0]].clamp_min(1e-12).log().mean()),
                     "nll_per_token": float(-probs.gather(-1, tokens[..., None]).clamp_min(1e-12).log().mean()),
                     "teacher_nll_per_token": float(-fam.sampling_probs(labels, own).gather(-1, own[..., None]).clamp_min(1e-12).log().mean())})
    eps = torch.randn(K, L, C, generator=torch.Generator().manual_seed(5))
    by_class = gen(eps[:1].expand(K, -1, -1), torch.arange(K)).std(0).mean()
    by_noise = gen(eps, torch.zeros(K, dtype=torch.long)).std(0).mean()
    return {"per_class": rows, "std_over_classes": float(by_class), "std_over_noise": float(by_noise)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--recipe", default="recipes/dd2/llamagen-toy.yaml")
    ap.add_argument("--num", type=int, default=256)
    ap.add_argument("--what", default="euler,generator,modes")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    recipe = load_dd2_recipe(a.recipe)
    teacher = ardistill.load_teacher(recipe.teacher)
    fam = family_adapter(teacher, code_scale=recipe.network.code_scale, **recipe.sampling.to_dict())
    pool = load_or_make_pool(fam, recipe, a.run / "pool.pt", progress=False)
    if fam.needs_adaptation:
        fam.adapt(pool.tokens, pool.labels, recipe.adaptation, a.run / "adapt", resume=True, progress=False)
    what = set(a.what.split(","))
    tuned = network(fam, recipe, a.run, "gts-full")
    if "euler" in what:
        emit(what="gts-euler-10", **evaluate_samples(fam, lambda labels, g: fam.euler_sample(tuned, labels, steps=10, generator=g), num=a.num))
    for stage in ("gts-full", "csd"):
        if not (a.run / stage / "checkpoint.pt").is_file():
            continue
        gen = fam.generator_from(network(fam, recipe, a.run, stage)).eval()
        if "generator" in what:
            emit(what=f"generator-{stage}", **evaluate_samples(fam, one_step_sampler(fam, gen), num=a.num))
        if "modes" in what:
            emit(what=f"modes-{stage}", **modes(fam, gen))


if __name__ == "__main__":
    main()
