"""The methods a benchmark compares: teachers, DD students and CoDe pairs, behind one small interface.

A `BenchMethod` is a name, a `generate_tokens(labels, seed) -> [B, L]` callable, a `decode(tokens) -> [B, 3, H, W]`
callable, and the network modules whose calls are *counted* (forward hooks) to measure AR steps and forward passes:
counts are never declared by a method, so a student that silently runs twice its forward passes is caught.

Method families register a builder with `register_method_family(kind, builder)`; the built-in ones are
"teacher", "dd" (`dd-1step`, `dd-2step`, ...), "code" (`code-N`) and "baseline" (`skip-K`, `onestep`: the naive
few-step baselines DD is compared with). DD and CoDe builders import their packages
only when called, so the bench works before those packages exist.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from ardistill.errors import ArdistillError, BadArgumentError


@dataclass
class BenchMethod:
    """One way of producing images, as the benchmark sees it.

    Attributes:
        name: row label ("teacher", "dd-1step", "code-8").
        kind: registered family ("teacher" | "dd" | "code" | ...).
        generate_tokens: (labels [B] int64, seed) → tokens [B, L] int64.
        decode: tokens [B, L] → images [B, 3, H, W] in [0, 1].
        counted: {role: module} whose every call is one network forward pass (its output head: one call per
            forward); the first input's leading dimension is the number of rows (CFG doubles it).
        settings: what the rows should record (sampling settings, step counts, model names).
        x_value: the method's knob for plots (DD steps, CoDe draft steps N; None for the teacher).
    """

    name: str
    kind: str
    generate_tokens: Callable[[torch.Tensor, int], torch.Tensor]
    decode: Callable[[torch.Tensor], torch.Tensor]
    counted: dict[str, nn.Module]
    settings: dict = field(default_factory=dict)
    x_value: int | None = None


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
    """Run `generate_tokens` once under the hooks and report what the networks actually did."""
    if not method.counted:
        raise ArdistillError(f"method {method.name!r} has no network module to count forward passes on")
    with torch.no_grad(), count_forward_passes(method.counted) as tallies:
        method.generate_tokens(labels, seed)
    batch = int(labels.shape[0])
    per_role = {role: {"calls": c, "rows_per_image": r / batch} for role, (c, r) in tallies.items()}
    return ForwardCounts(
        ar_steps=sum(c for c, _ in tallies.values()),
        forward_passes_per_image=sum(r for _, r in tallies.values()) / batch,
        per_role=per_role,
    )


def output_head(network: nn.Module) -> nn.Module:
    """The logits projection of a transformer (VAR: `head`, LlamaGen: `output`): called once per forward pass,
    whichever entry point (full forward, cached step) the sampler uses."""
    for attr in ("head", "output", "lm_head"):
        module = getattr(network, attr, None)
        if isinstance(module, nn.Module):
            return module
    return network


def networks_of(obj: object) -> dict[str, nn.Module]:
    """The transformer-like modules an object holds (teacher: `transformer` / `gpt`; a student: `network`, ...)."""
    found = {}
    for attr in ("transformer", "gpt", "network", "model", "student"):
        module = getattr(obj, attr, None)
        if isinstance(module, nn.Module) and all(output_head(module) is not m for m in found.values()):
            found[attr] = output_head(module)  # one role per module (a teacher's `network` is its transformer / gpt)
    if not found and isinstance(obj, nn.Module):
        found["network"] = output_head(obj)
    return found


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
    overrides = {k: v for k, v in (sampling or {}).items() if v is not None}

    def generate(labels: torch.Tensor, seed: int) -> torch.Tensor:
        return teacher.sample(labels, seed=seed, **overrides)

    settings = {"model": teacher.name, "sampling": {**teacher.default_sampling.to_dict(), **overrides}}
    return [BenchMethod(name, "teacher", generate, teacher.decode, networks_of(teacher), settings)]


def dd_methods(teacher, *, student_dir: str, steps: Sequence[int] = (1, 2)) -> list[BenchMethod]:
    """DD students (`ardistill.load_student(dir, teacher=...)`): one method per step count, named `dd-{K}step`."""
    import ardistill

    load_student = getattr(ardistill, "load_student", None)
    if load_student is None:
        raise ArdistillError("--student needs the DD package (ardistill.load_student), which is not installed in this version")
    student = load_student(student_dir, teacher=teacher)
    counted = networks_of(student)
    if not counted:
        raise ArdistillError(f"{student_dir}: the DD student exposes no network module to count forward passes on")
    decode = getattr(student, "decode", teacher.decode)
    methods = []
    for k in steps:
        def generate(labels: torch.Tensor, seed: int, _k=int(k)) -> torch.Tensor:
            return student.sample(labels, steps=_k, seed=seed)

        methods.append(BenchMethod(f"dd-{k}step", "dd", generate, decode, counted,
                                   {"student": str(student_dir), "steps": int(k), "teacher": teacher.name}, x_value=int(k)))
    return methods


def code_methods(drafter, refiner, *, draft_steps: Sequence[int], sampling: dict | None = None) -> list[BenchMethod]:
    """CoDe pairs (`ardistill.CoDe(drafter, refiner)`): one method per drafter step count N, named `code-{N}`."""
    import ardistill

    CoDe = getattr(ardistill, "CoDe", None)
    if CoDe is None:
        try:
            from ardistill.methods.code.sampler import CoDe
        except ImportError:
            raise ArdistillError("--drafter/--refiner need the CoDe package (ardistill.CoDe), which is not installed in this version") from None
    pair = CoDe(drafter, refiner)
    counted = {f"drafter.{r}": m for r, m in networks_of(drafter).items()}
    counted.update({f"refiner.{r}": m for r, m in networks_of(refiner).items()})
    overrides = {k: v for k, v in (sampling or {}).items() if v is not None}
    methods = []
    for n in draft_steps:
        def generate(labels: torch.Tensor, seed: int, _n=int(n)) -> torch.Tensor:
            return pair.sample(labels, draft_steps=_n, seed=seed, **overrides)

        methods.append(BenchMethod(f"code-{n}", "code", generate, getattr(pair, "decode", drafter.decode), counted,
                                   {"drafter": drafter.name, "refiner": refiner.name, "draft_steps": int(n), "sampling": overrides},
                                   x_value=int(n)))
    return methods


def parse_baselines(teacher, names: Sequence[str]) -> list[tuple[str, int | None]]:
    """[(name, K or None for onestep)] of baseline names, checked against `teacher`'s number of AR steps
    (BadArgumentError for an unknown name or a K the teacher cannot skip)."""
    steps = teacher.num_steps
    parsed = []
    for name in names:
        if name == "onestep":
            parsed.append((name, None))
        elif name.startswith("skip-") and name[5:].isdigit() and int(name[5:]) >= 1:
            if int(name[5:]) > steps:
                raise BadArgumentError(f"baseline {name}: {teacher.name} has {steps} AR steps, so K must be in 1..{steps}")
            parsed.append((name, int(name[5:])))
        else:
            raise BadArgumentError(f"unknown baseline {name!r}: use skip-K (K ≥ 1 AR steps replaced by one parallel step) or onestep")
    return parsed


def baselines_needing_marginals(teacher, names: Sequence[str]) -> list[str]:
    """The baselines among `names` that draw tokens from the class-conditional marginals: `onestep`, and on a
    next-token teacher every `skip-K` too."""
    one_pass = "one_pass_finish" in teacher.step_features  # a step sampler that can finish in one forward (VAR)
    return [n for n, k in parse_baselines(teacher, names) if k is None or not one_pass]


def baseline_methods(teacher, *, names: Sequence[str], marginals=None, marginal_samples_per_class: int = 100,
                     seed: int = 0) -> list[BenchMethod]:
    """The naive few-step baselines of `ardistill.methods.dd.baselines`: `skip-K` (K AR steps cut) and `onestep`
    (every token independent from the class-conditional marginals of the teacher's samples, no network pass).

    marginals: a `TokenMarginals`; default: estimated from `marginal_samples_per_class` teacher samples per class."""
    from ardistill.methods.dd.baselines import TokenMarginals, skip_sample

    parsed = parse_baselines(teacher, names)
    if baselines_needing_marginals(teacher, names) and marginals is None:
        marginals = TokenMarginals.from_teacher(teacher, per_class=marginal_samples_per_class, seed=seed + 7919)
    counted = networks_of(teacher)
    methods = []
    for name, k in parsed:
        if k is None:
            def generate(labels: torch.Tensor, seed: int) -> torch.Tensor:
                return marginals.sample(labels, generator=torch.Generator().manual_seed(int(seed)))
        else:
            def generate(labels: torch.Tensor, seed: int, _k=k) -> torch.Tensor:
                return skip_sample(teacher, labels, skip=_k, marginals=marginals, seed=seed)
        methods.append(BenchMethod(name, "baseline", generate, teacher.decode, counted,
                                   {"teacher": teacher.name, "baseline": name, "skipped_steps": k}))
    return methods


register_method_family("teacher", teacher_methods)
register_method_family("baseline", baseline_methods)
register_method_family("dd", dd_methods)
register_method_family("code", code_methods)
