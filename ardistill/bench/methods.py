"""The methods a benchmark compares: the generators of `ardistill.generators`, counted and registered by family.

A method is a `Generator` (`BenchMethod` is its old name, kept): a name, `generate_tokens(labels, seed)`,
`decode(output)`, and the network modules whose calls are *counted* (forward hooks) to measure AR steps and forward
passes: counts are never declared by a method, so a student that silently runs twice its forward passes is caught.

Method families register a builder with `register_method_family(kind, builder)`; the built-in ones wrap the
generator builders on loaded models: "teacher", "dd" (`dd-1step`, `dd-2step`, ...), "code" (`code-N`) and
"baseline" (`skip-K`, `onestep`). `ardistill bench` itself builds through `ardistill.generators.GeneratorBuilder`,
which applies the execution options the same way to every kind.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from ardistill.errors import ArdistillError, BadArgumentError
from ardistill.generators import (BenchMethod, Generator, baseline_generators, baselines_needing_marginals, code_generators,
                                  dd_generators, networks_of, output_head, parse_baselines, teacher_generator)


@dataclass
class ForwardCounts:
    """Measured work of one `generate_tokens` call on a batch of B images.

    ar_steps: sequential network calls (all counted modules together).
    forward_passes_per_image: rows processed / B, summed over counted modules (CFG's doubled batch counts twice).
    per_role: {role: {"calls": n, "rows_per_image": r}}.
    """

    ar_steps: int
    forward_passes_per_image: float
    per_role: dict[str, dict]

    def to_dict(self) -> dict:
        return {"ar_steps": self.ar_steps, "forward_passes_per_image": self.forward_passes_per_image, "per_role": self.per_role}


@contextmanager
def count_forward_passes(counted: dict[str, nn.Module]) -> Iterator[dict[str, list[int]]]:
    """Hook every module in `counted`; yields {role: [calls, rows]} updated live while the context is open."""
    tallies = {role: [0, 0] for role in counted}
    handles = []
    for role, module in counted.items():
        def hook(_module, args, _tally=tallies[role]):
            _tally[0] += 1
            first = args[0] if args else None
            _tally[1] += int(first.shape[0]) if isinstance(first, torch.Tensor) and first.dim() > 0 else 1
        handles.append(module.register_forward_pre_hook(hook))
    try:
        yield tallies
    finally:
        for h in handles:
            h.remove()


def measure_counts(method: BenchMethod, labels: torch.Tensor, seed: int = 0) -> ForwardCounts:
    """Run `generate_tokens` once under the hooks and report what the networks actually did.

    The counted run is eager (`torch.compiler.set_stance("force_eager")`): a compiled forward (`--compile`) traced
    before the hooks were added never calls them (measured: a compiled DD student counted 0 passes), and the
    passes a sampler makes do not depend on how each one is executed."""
    if not method.counted:
        raise ArdistillError(f"method {method.name!r} has no network module to count forward passes on")
    stance = getattr(torch.compiler, "set_stance", None)
    with torch.no_grad(), (stance("force_eager") if stance else nullcontext()), count_forward_passes(method.counted) as tallies:
        method.generate_tokens(labels, seed)
    batch = int(labels.shape[0])
    per_role = {role: {"calls": c, "rows_per_image": r / batch} for role, (c, r) in tallies.items()}
    return ForwardCounts(
        ar_steps=sum(c for c, _ in tallies.values()),
        forward_passes_per_image=sum(r for _, r in tallies.values()) / batch,
        per_role=per_role,
    )


# -------------------------------------------------------------------------------------------------- registry
MethodBuilder = Callable[..., list[BenchMethod]]
_FAMILIES: dict[str, MethodBuilder] = {}


def register_method_family(kind: str, builder: MethodBuilder) -> None:
    """`builder(**options) -> [BenchMethod, ...]`; the CLI calls it with the options of that family."""
    _FAMILIES[kind] = builder


def method_families() -> list[str]:
    return sorted(_FAMILIES)


def build_methods(kind: str, **options) -> list[BenchMethod]:
    if kind not in _FAMILIES:
        raise BadArgumentError(f"unknown method family {kind!r}; known: {', '.join(method_families())}")
    return _FAMILIES[kind](**options)


# ---------------------------------------------------------------------------------------------- the builders
def teacher_methods(teacher, *, sampling: dict | None = None, name: str = "teacher") -> list[BenchMethod]:
    """The teacher's reference sampler (its default settings, overridden by `sampling`) and its tokenizer."""
    return [teacher_generator(teacher, sampling=sampling, name=name)]


def dd_methods(teacher, *, student_dir: str, steps: Sequence[int] = (1, 2)) -> list[BenchMethod]:
    """DD students (`ardistill.load_student(dir, teacher=...)`, in the teacher's dtype): one method per step count,
    named `dd-{K}step`, decoding the continuous code vectors."""
    import ardistill

    load_student = getattr(ardistill, "load_student", None)
    if load_student is None:
        raise ArdistillError("--student needs the DD package (ardistill.load_student), which is not installed in this version")
    return dd_generators(load_student(student_dir, teacher=teacher), steps=steps, label=str(student_dir))


def code_methods(drafter, refiner, *, draft_steps: Sequence[int], sampling: dict | None = None) -> list[BenchMethod]:
    """CoDe pairs (`ardistill.CoDe(drafter, refiner)`): one method per drafter step count N, named `code-{N}`."""
    import ardistill

    CoDe = getattr(ardistill, "CoDe", None)
    if CoDe is None:
        raise ArdistillError("--drafter/--refiner need the CoDe package (ardistill.CoDe), which is not installed in this version")
    return code_generators(CoDe(drafter, refiner), draft_steps=draft_steps, sampling=sampling, drafter=drafter, refiner=refiner)


def baseline_methods(teacher, *, names: Sequence[str], marginals=None, marginal_samples_per_class: int = 100,
                     seed: int = 0) -> list[BenchMethod]:
    """The naive few-step baselines (`ardistill.generators.baseline_generators`): `skip-K` and `onestep`."""
    return baseline_generators(teacher, names=names, marginals=marginals, marginal_samples_per_class=marginal_samples_per_class,
                               seed=seed)


register_method_family("teacher", teacher_methods)
register_method_family("baseline", baseline_methods)
register_method_family("dd", dd_methods)
register_method_family("code", code_methods)

__all__ = ["BenchMethod", "Generator", "ForwardCounts", "count_forward_passes", "measure_counts", "register_method_family",
           "method_families", "build_methods", "networks_of", "output_head", "parse_baselines", "baselines_needing_marginals"]
