"""One interface for everything that makes images: the teacher, DD students (1/2 steps, teacher-involved), CoDe pairs
and the naive few-step baselines (skip-K, onestep). `ardistill sample`, `ardistill bench` and `ardistill distill`
build theirs here.

A `Generator` is a name, a kind, `generate_tokens(labels [B] int64, seed) -> output`, `decode(output) -> images
[B, 3, H, W]` in [0, 1], the network modules whose calls are *counted* (forward hooks, `ardistill.bench.methods`),
and the settings a report records. `decode(generate_tokens(labels, seed))` is the generator's image, whatever its
kind. The output is token ids [B, L] int64 for every kind except the DD students, whose output is the code vectors
[B, L, C] fp32 they decode (the decode rule below); `tokens(output)` gives ids [B, L] for every kind.

Decode rule, one per kind (docs/architecture.md, "Generators"):
- teacher, CoDe, skip-K, onestep: `teacher.decode(tokens)` (CoDe: the shared tokenizer).
- DD student (1-step, 2-step, teacher-involved): `teacher.decode_embeddings(student.sample(..., return_embeddings=True))`,
  the continuous vectors, as the official release decodes them and as the DD training evaluation does; ids are their
  nearest codes (`tokens`), for files only.

Options are given to `GeneratorBuilder` once and applied the same way to every kind: execution (device, dtype, fast,
compile; `ExecutionOptions`) and sampling (cfg, top_k, top_p, temperature; `SamplingOptions`). An option a kind does
not take is refused with a one-line `BadArgumentError` naming it, never dropped (`OPTION_TABLE`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Callable, Sequence

import torch
from torch import nn

from ardistill.errors import ArdistillError, BadArgumentError
from ardistill.sampling.fast import compiled, parse_dtype, resolve_compile

EXECUTION_FLAGS = {"dtype": "--dtype", "fast": "--fast", "compile": "--compile"}
SAMPLING_FLAGS = {"cfg": "--cfg", "top_k": "--top-k", "top_p": "--top-p", "temperature": "--temperature"}

# kind → the options it takes (device is taken by every kind). What each one does there is in `OPTION_EFFECTS`.
OPTION_TABLE: dict[str, frozenset[str]] = {
    "teacher": frozenset({"dtype", "fast", "compile", "cfg", "top_k", "top_p", "temperature"}),
    "dd": frozenset({"dtype", "compile"}),
    "dd-teacher-involved": frozenset({"dtype", "fast", "compile", "cfg", "top_k", "top_p", "temperature"}),
    "code": frozenset({"dtype", "fast", "compile", "cfg", "top_k", "top_p", "temperature"}),
    "skip": frozenset({"dtype", "fast", "compile", "cfg", "top_k", "top_p", "temperature"}),
    "onestep": frozenset({"dtype"}),
}

# Why a kind refuses an option (the second half of its one-line error).
REFUSALS: dict[tuple[str, str], str] = {
    ("dd", "fast"): "a 1/2-step DD student has no sampling loop to speed up (one forward pass per step); --dtype and --compile apply to it",
    ("dd", "sampling"): "a 1/2-step DD student samples no token distribution (argmax and the noise decide); the teacher's "
                        "settings apply only to teacher-involved sampling (--teacher-start)",
    ("onestep", "fast"): "onestep runs no network when sampling (independent draws from token marginals)",
    ("onestep", "compile"): "onestep runs no network when sampling (independent draws from token marginals)",
    ("onestep", "sampling"): "onestep draws from the teacher's token marginals at its default settings, not from logits",
}

KIND_LABELS = {"teacher": "the teacher", "dd": "a 1/2-step DD student", "dd-teacher-involved": "teacher-involved DD sampling",
               "code": "a CoDe pair", "skip": "the skip-K baseline", "onestep": "the onestep baseline"}


@dataclass(frozen=True)
class ExecutionOptions:
    """How generators run. dtype None / fast False / compile None: not asked for (the exact fp32 eager path)."""

    device: str | torch.device = "cpu"
    dtype: str | torch.dtype | None = None
    fast: bool = False
    compile: bool | str | None = None

    def resolved_dtype(self) -> torch.dtype:
        return parse_dtype(self.dtype)

    def compile_mode(self) -> str | None:
        return resolve_compile(self.compile, self.device)

    def given(self) -> list[str]:
        """Names of the options asked for beyond the reference path (fp32, no fast loops, eager)."""
        out = []
        if self.resolved_dtype() != torch.float32:
            out.append("dtype")
        if self.fast:
            out.append("fast")
        if self.compile_mode() is not None:
            out.append("compile")
        return out


@dataclass(frozen=True)
class SamplingOptions:
    """Overrides of the sampler's defaults; None = the model's default. top_k / temperature: one value or one per
    AR step (VAR scales)."""

    cfg: float | None = None
    top_k: int | Sequence[int] | None = None
    top_p: float | None = None
    temperature: float | Sequence[float] | None = None

    @classmethod
    def of(cls, value: "SamplingOptions | dict | None") -> "SamplingOptions":
        if value is None:
            return cls()
        if isinstance(value, SamplingOptions):
            return value
        unknown = set(value) - {f.name for f in fields(cls)}
        if unknown:
            raise BadArgumentError(f"unknown sampling setting(s) {', '.join(sorted(unknown))}; known: cfg, top_k, top_p, temperature")
        return cls(**value)

    def overrides(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def check_options(kind: str, execution: ExecutionOptions, sampling: SamplingOptions) -> None:
    """Refuse (one line) every option asked for that `kind` does not take (`OPTION_TABLE`)."""
    takes = OPTION_TABLE[kind]
    for name in execution.given():
        if name not in takes:
            why = REFUSALS.get((kind, name), "it does not take it")
            raise BadArgumentError(f"{EXECUTION_FLAGS[name]} does not apply to {KIND_LABELS[kind]}: {why}")
    for name in sampling.overrides():
        if name not in takes:
            why = REFUSALS.get((kind, "sampling"), "it does not take it")
            raise BadArgumentError(f"{SAMPLING_FLAGS[name]} does not apply to {KIND_LABELS[kind]}: {why}")


# ------------------------------------------------------------------------------------------------ the interface
@dataclass
class Generator:
    """One way of producing images.

    Attributes:
        name: row label ("teacher", "dd-1step", "code-8", "skip-2").
        kind: "teacher" | "dd" | "dd-teacher-involved" | "code" | "baseline" (or a test's own).
        generate_tokens: (labels [B] int64, seed) → output: token ids [B, L] int64, or for DD students the code
            vectors [B, L, C] fp32 (`output == "embeddings"`).
        decode: output → images [B, 3, H, W] in [0, 1] (the kind's one decode rule).
        counted: {role: module} whose every call is one network forward pass (its output head: one call per
            forward); the first input's leading dimension is the number of rows (CFG doubles it).
        settings: what the rows should record (sampling settings, step counts, model names, execution).
        x_value: the method's knob for plots (DD steps, CoDe draft steps N; None for the teacher).
        output: "tokens" or "embeddings" (what `generate_tokens` returns).
        to_tokens: output → token ids [B, L] int64 (None: the output already is).
        networks: {role: module} of every network whose weights make the images (transformers, students,
            tokenizer decoders): `weight_dtypes()` reads the dtype they really hold.
        num_classes: classes the labels may take (None: unknown).
        description: one line for people ("var-d16", "2-step DD student x of var-d16", "CoDe a + b, N=4").
    """

    name: str
    kind: str
    generate_tokens: Callable[[torch.Tensor, int], torch.Tensor]
    decode: Callable[[torch.Tensor], torch.Tensor]
    counted: dict[str, nn.Module]
    settings: dict = field(default_factory=dict)
    x_value: int | None = None
    output: str = "tokens"
    to_tokens: Callable[[torch.Tensor], torch.Tensor] | None = None
    networks: dict[str, nn.Module] = field(default_factory=dict)
    num_classes: int | None = None
    description: str = ""

    def tokens(self, output: torch.Tensor) -> torch.Tensor:
        """Token ids [B, L] int64 of an output of `generate_tokens`."""
        return output if self.to_tokens is None else self.to_tokens(output)

    def weight_dtypes(self) -> dict[str, str]:
        """{role: dtype} of each network: the dtype that holds most of its matrix (Linear / Conv) weights, read from
        the modules themselves (what runs, not what was asked for)."""
        return {role: matrix_dtype(m) for role, m in self.networks.items()}


BenchMethod = Generator  # the name `ardistill.bench` used first


def matrix_dtype(module: nn.Module) -> str:
    """The dtype holding most Linear / Conv2d weight elements of `module` ("float32", "bfloat16", ...)."""
    sizes: dict[torch.dtype, int] = {}
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            sizes[m.weight.dtype] = sizes.get(m.weight.dtype, 0) + m.weight.numel()
    if not sizes:
        sizes = {p.dtype: p.numel() for p in module.parameters()}
    return str(max(sizes, key=sizes.get)).removeprefix("torch.") if sizes else "none"


def output_head(network: nn.Module) -> nn.Module:
    """The logits projection of a transformer (VAR: `head`, LlamaGen: `output`): called once per forward pass,
    whichever entry point (full forward, cached step) the sampler uses. A network may name its own once-per-forward
    module (`forward_pass_module`: a DD2 network's backbone, whose head runs on flattened positions)."""
    declared = getattr(network, "forward_pass_module", None)
    if isinstance(declared, nn.Module):
        return declared
    for attr in ("head", "output", "lm_head"):
        module = getattr(network, attr, None)
        if isinstance(module, nn.Module):
            return module
    return network


def networks_of(obj: object) -> dict[str, nn.Module]:
    """The output heads of the transformer-like modules an object holds (teacher: `transformer` / `gpt`; a
    student: `model`, ...): the modules to count forward passes on."""
    found = {}
    for attr in ("transformer", "gpt", "network", "model", "student"):
        module = getattr(obj, attr, None)
        if isinstance(module, nn.Module) and all(output_head(module) is not m for m in found.values()):
            found[attr] = output_head(module)  # one role per module (a teacher's `network` is its transformer / gpt)
    if not found and isinstance(obj, nn.Module):
        found["network"] = output_head(obj)
    return found


def teacher_networks(teacher, prefix: str = "") -> dict[str, nn.Module]:
    """{role: module} of a teacher's transformer and tokenizer decoder (for `weight_dtypes`)."""
    out = {}
    for attr in ("transformer", "gpt"):
        if isinstance(getattr(teacher, attr, None), nn.Module):
            out[prefix + attr] = getattr(teacher, attr)
    for attr in ("vae", "vq"):
        decoder = getattr(getattr(teacher, attr, None), "decoder", None)
        if isinstance(decoder, nn.Module):
            out[prefix + "decoder"] = decoder
    return out


def _execution_settings(teacher) -> dict:
    options = getattr(teacher, "options", None)
    if options is None:
        return {}
    return {"dtype": str(options.dtype).removeprefix("torch."), "fast": bool(options.fast), "compile": options.compile}


# --------------------------------------------------------------------------- generators from loaded models
def teacher_generator(teacher, *, sampling: SamplingOptions | dict | None = None, name: str = "teacher") -> Generator:
    """The teacher's reference sampler (its default settings, overridden by `sampling`) and its tokenizer."""
    overrides = SamplingOptions.of(sampling).overrides()

    def generate(labels: torch.Tensor, seed: int) -> torch.Tensor:
        return teacher.sample(labels, seed=seed, **overrides)

    settings = {"model": teacher.name, "sampling": {**teacher.default_sampling.to_dict(), **overrides},
                "execution": _execution_settings(teacher)}
    return Generator(name, "teacher", generate, teacher.decode, networks_of(teacher), settings,
                     networks=teacher_networks(teacher), num_classes=teacher.num_classes, description=teacher.name)


def _student_decode(student) -> Callable[[torch.Tensor], torch.Tensor]:
    teacher = student.teacher
    return teacher.decode_embeddings


def _student_tokens(student) -> Callable[[torch.Tensor], torch.Tensor]:
    from ardistill.methods.dd.student import nearest_codes

    return lambda e: nearest_codes(e, student.codebook)


def _student_networks(student) -> dict[str, nn.Module]:
    out = {"student": student.model} if isinstance(getattr(student, "model", None), nn.Module) else {}
    teacher = getattr(student, "teacher", None)
    return {**out, **{k: v for k, v in teacher_networks(teacher, "teacher.").items() if k == "teacher.decoder"}} if teacher else out


def dd_generators(student, *, steps: Sequence[int] = (1, 2), label: str = "", row: str | None = None) -> list[Generator]:
    """A loaded DD student (`ardistill.load_student`): one generator per step count, named `{row}-{K}step` (`row`
    default: the method, `dd` / `dd2`; a shipped student benched beside a run's own is named by its model name).
    Output: the code vectors [B, L, C] (`return_embeddings=True`), decoded with the teacher's `decode_embeddings`."""
    counted = networks_of(student)
    if not counted:
        raise ArdistillError(f"{label or student}: the DD student exposes no network module to count forward passes on")
    teacher = student.teacher
    method = getattr(student, "method", "dd")  # "dd" | "dd2": names the rows dd-1step / dd2-1step
    out = []
    for k in steps:
        def generate(labels: torch.Tensor, seed: int, _k=int(k)) -> torch.Tensor:
            return student.sample(labels, steps=_k, seed=seed, return_embeddings=True)

        settings = {"student": label or getattr(student, "name", "student"), "steps": int(k), "teacher": teacher.name,
                    "decode": "continuous code vectors (teacher.decode_embeddings)",
                    "execution": {"dtype": str(getattr(student, "dtype", torch.float32)).removeprefix("torch."),
                                  "compile": getattr(student, "_ardistill_compile", None)}}
        if method != "dd":
            settings["method"] = method
        if int(k) > 1 and method == "dd2":  # the teacher makes the last k − 1 AR steps (spec §6), so it is counted
            counted_k = {**counted, **{f"teacher.{r}": m for r, m in networks_of(teacher).items()}}
            settings["teacher_steps"] = int(k) - 1
            settings["sampling"] = dict(student.family.settings)
        else:
            counted_k = counted
        out.append(Generator(f"{row or method}-{k}step", "dd", generate, _student_decode(student), counted_k, settings, x_value=int(k),
                             output="embeddings", to_tokens=_student_tokens(student), networks=_student_networks(student),
                             num_classes=teacher.num_classes,
                             description=f"{k}-step {method.upper()} student {getattr(student, 'name', label)} of {teacher.name}"))
    return out


def dd_teacher_involved_generator(student, *, teacher_start: int, split: int | None = None,
                                  sampling: SamplingOptions | dict | None = None, label: str = "") -> Generator:
    """Teacher-involved DD sampling (`Student.sample_teacher_involved`): a DD step at 0 (if teacher_start > 0), the
    teacher's own sampler on AR steps teacher_start … t₂ − 1 with `sampling`, a DD step at t₂ with `split`
    (default: the larger of the student's split and t₂). Output: code vectors [B, L, C], decoded as `dd_generators`."""
    overrides = SamplingOptions.of(sampling).overrides()
    if getattr(student, "method", "dd") != "dd":
        raise BadArgumentError(f"{label or student.name} is a DD2 student: its teacher-involved sampling is --steps K "
                               "(one generator pass, then the teacher's last K − 1 AR steps), not --teacher-start")
    t_list = tuple(student.config.t_list)
    if len(t_list) < 2:
        raise BadArgumentError(f"{label or student.name} has no second split point; teacher-involved sampling needs one")
    split = max(int(student.config.split), int(t_list[1])) if split is None else int(split)
    teacher = student.teacher

    def generate(labels: torch.Tensor, seed: int) -> torch.Tensor:
        return student.sample_teacher_involved(labels, teacher_start=int(teacher_start), split=split, seed=seed,
                                               return_embeddings=True, **overrides)

    counted = {**networks_of(student), **{f"teacher.{r}": m for r, m in networks_of(teacher).items()}}
    settings = {"student": label or student.name, "teacher": teacher.name, "teacher_start": int(teacher_start), "split": split,
                "sampling": {**teacher.default_sampling.to_dict(), **overrides},
                "decode": "continuous code vectors (teacher.decode_embeddings)",
                "execution": {**_execution_settings(teacher), "student_dtype": str(student.dtype).removeprefix("torch.")}}
    nets = {**_student_networks(student), **teacher_networks(teacher, "teacher.")}
    return Generator(f"dd-ti{int(teacher_start)}", "dd-teacher-involved", generate, _student_decode(student), counted, settings,
                     output="embeddings", to_tokens=_student_tokens(student), networks=nets, num_classes=teacher.num_classes,
                     description=f"teacher-involved DD student {student.name} of {teacher.name} (teacher from AR step "
                                 f"{int(teacher_start)} to {t_list[1]}, split {split})")


def code_generators(pair, *, draft_steps: Sequence[int], sampling: SamplingOptions | dict | None = None, drafter=None,
                    refiner=None) -> list[Generator]:
    """A CoDe pair (`ardistill.CoDe(drafter, refiner)`): one generator per drafter step count N, named `code-{N}`.
    drafter / refiner: the pair's teachers (default: `pair.drafter`, `pair.refiner`)."""
    drafter, refiner = drafter or pair.drafter, refiner or pair.refiner
    counted = {f"drafter.{r}": m for r, m in networks_of(drafter).items()}
    counted.update({f"refiner.{r}": m for r, m in networks_of(refiner).items()})
    overrides = SamplingOptions.of(sampling).overrides()
    checked = getattr(pair, "check_draft_steps", lambda n: int(n))
    nets = {**teacher_networks(drafter, "drafter."), **teacher_networks(refiner, "refiner.")}
    out = []
    for n in draft_steps:
        n = checked(n)

        def generate(labels: torch.Tensor, seed: int, _n=int(n)) -> torch.Tensor:
            return pair.sample(labels, draft_steps=_n, seed=seed, **overrides)

        settings = {"drafter": drafter.name, "refiner": refiner.name, "draft_steps": int(n), "sampling": overrides,
                    "execution": _execution_settings(drafter)}
        out.append(Generator(f"code-{n}", "code", generate, getattr(pair, "decode", drafter.decode), counted, settings,
                             x_value=int(n), networks=nets, num_classes=drafter.num_classes,
                             description=f"CoDe {drafter.name} + {refiner.name}, N={n}"))
    return out


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


def baseline_generators(teacher, *, names: Sequence[str], marginals=None, marginal_samples_per_class: int = 100,
                        seed: int = 0, sampling: SamplingOptions | dict | None = None) -> list[Generator]:
    """The naive few-step baselines of `ardistill.methods.dd.baselines`: `skip-K` (K AR steps cut; the teacher's
    steps run with `sampling`) and `onestep` (every token independent from the class-conditional marginals of the
    teacher's samples, no network pass).

    marginals: a `TokenMarginals`; default: estimated from `marginal_samples_per_class` teacher samples per class."""
    from ardistill.methods.dd.baselines import TokenMarginals, skip_sample

    parsed = parse_baselines(teacher, names)
    overrides = SamplingOptions.of(sampling).overrides()
    if overrides and any(k is None for _, k in parsed):
        check_options("onestep", ExecutionOptions(), SamplingOptions.of(overrides))
    if baselines_needing_marginals(teacher, names) and marginals is None:
        marginals = TokenMarginals.from_teacher(teacher, per_class=marginal_samples_per_class, seed=seed + 7919)
    counted = networks_of(teacher)
    out = []
    for name, k in parsed:
        if k is None:
            def generate(labels: torch.Tensor, seed: int) -> torch.Tensor:
                return marginals.sample(labels, generator=torch.Generator().manual_seed(int(seed)))
        else:
            def generate(labels: torch.Tensor, seed: int, _k=k) -> torch.Tensor:
                return skip_sample(teacher, labels, skip=_k, marginals=marginals, seed=seed, **overrides)
        settings = {"teacher": teacher.name, "baseline": name, "skipped_steps": k, "execution": _execution_settings(teacher)}
        if k is not None:
            settings["sampling"] = {**teacher.default_sampling.to_dict(), **overrides}
        nets = teacher_networks(teacher) if k is not None else {r: m for r, m in teacher_networks(teacher).items() if r == "decoder"}
        out.append(Generator(name, "baseline", generate, teacher.decode, counted, settings, networks=nets,
                             num_classes=teacher.num_classes, description=f"{name} baseline of {teacher.name}"))
    return out


# -------------------------------------------------------------------------------------------------- builder
def load_code_pair(drafter: str | None, refiner: str | None, *, finetuned: str | os.PathLike | None = None, weights_dir=None,
                   device="cpu", random_init: bool = False, dtype=None, fast: bool = False, compile=None):
    """(drafter, refiner) VAR teachers by name (or from a fine-tuning folder's code.json), fine-tuned weights applied,
    both with the same execution options."""
    from ardistill.api import load_teacher
    from ardistill.methods.code.finetune import apply_finetuned, read_finetune_card

    if finetuned is not None:
        card = read_finetune_card(finetuned)
        drafter, refiner = drafter or card["drafter"], refiner or card["refiner"]
        random_init = random_init or bool(card.get("random_init"))
    if drafter is None or refiner is None:
        raise ArdistillError("CoDe needs both --drafter NAME and --refiner NAME (or --finetuned DIR)")
    kw = dict(weights_dir=weights_dir, device=device, random_init=random_init, dtype=parse_dtype(dtype), fast=fast, compile=compile)
    d = load_teacher(drafter, seed=1, **kw)
    r = load_teacher(refiner, seed=2, **kw)
    if random_init:
        r.vae = d.vae  # random tokenizers differ per seed; a CoDe pair shares one by definition
    if finetuned is not None:
        apply_finetuned(finetuned, d, r)
    return d, r


class GeneratorBuilder:
    """Builds every kind of generator with one set of options.

    >>> b = GeneratorBuilder(execution=ExecutionOptions(device="cuda", dtype="bf16"), sampling=SamplingOptions(cfg=1.5))
    >>> gen = b.teacher("var-d16")
    >>> images = gen.decode(gen.generate_tokens(torch.tensor([207, 360]), 0))  # [2, 3, 256, 256]

    Execution options apply where the table below says, and a kind that does not take an option refuses it in one
    line (BadArgumentError; the CLI exits 2). Teachers are loaded once per (name, init seed) and shared.

    | kind | dtype | fast | compile | cfg / top_k / top_p / temperature |
    |---|---|---|---|---|
    | teacher | transformer + decoder | sampling loop | per-step forward | its sampler |
    | dd (1/2-step) | student compute dtype + teacher decoder | refused | the student's forward | refused |
    | dd teacher-involved | as dd, and the teacher | the teacher's steps | student forward + teacher steps | the teacher's steps |
    | code | both models | both | both | the pair's sampler |
    | skip-K | teacher | teacher's steps | teacher's steps | the teacher's steps and the parallel step |
    | onestep | decoder (and the teacher estimating the marginals) | refused | refused | refused |
    """

    def __init__(self, *, execution: ExecutionOptions | None = None, sampling: SamplingOptions | dict | None = None,
                 weights_dir: str | os.PathLike | None = None, random_init: bool = False):
        from ardistill.devices import resolve_device

        execution = execution or ExecutionOptions()
        device = resolve_device(execution.device)
        self.execution = ExecutionOptions(device=device, dtype=execution.resolved_dtype(), fast=bool(execution.fast),
                                          compile=execution.compile_mode())
        self.sampling = SamplingOptions.of(sampling)
        self.weights_dir, self.random_init = weights_dir, random_init
        self._teachers: dict[tuple, object] = {}

    @property
    def device(self) -> torch.device:
        return self.execution.device

    def check(self, kind: str) -> None:
        check_options(kind, self.execution, self.sampling)

    # -------------------------------------------------------------------------------------------- loading
    def load_teacher(self, name_or_teacher, *, vae=None, seed: int = 0):
        """A teacher by name with the execution options (loaded once), or a loaded one checked against them."""
        if not isinstance(name_or_teacher, (str, os.PathLike)):
            self._check_loaded(name_or_teacher)
            return name_or_teacher
        from ardistill.api import load_teacher

        key = (str(name_or_teacher), str(vae), seed)
        if key not in self._teachers:
            e = self.execution
            self._teachers[key] = load_teacher(name_or_teacher, vae=vae, weights_dir=self.weights_dir, device=e.device,
                                               dtype=e.dtype, random_init=self.random_init, seed=seed, fast=e.fast, compile=e.compile)
        return self._teachers[key]

    def _check_loaded(self, teacher) -> None:
        """A teacher loaded elsewhere must run as asked: same dtype, fast loops and compile mode."""
        options = getattr(teacher, "options", None)
        if options is None:
            return
        e = self.execution
        want_fast = e.fast or e.compile is not None or e.dtype != torch.float32  # make_fast_options' rule
        for what, have, want in (("dtype", options.dtype, e.dtype), ("fast", options.fast, want_fast), ("compile", options.compile, e.compile)):
            if have != want:
                raise BadArgumentError(f"{teacher.name} was loaded with {what}={have}, but the generators were asked for "
                                       f"{what}={want}; load it with the same options")

    def load_student(self, student_ref, *, teacher=None):
        """A DD student (folder, release name or file) on `teacher` (a name or a loaded teacher; default: the student's
        own), in the execution dtype; with a compile mode its forward is compiled."""
        import ardistill

        load = getattr(ardistill, "load_student", None)
        if load is None:
            raise ArdistillError("--student needs the DD package (ardistill.load_student), which is not installed in this version")
        if teacher is None:
            from ardistill.api import find_student_source

            teacher = find_student_source(student_ref, weights_dir=self.weights_dir).config.teacher
        teacher = self.load_teacher(teacher)
        student = load(student_ref, teacher=teacher, weights_dir=self.weights_dir, device=self.device, dtype=self.execution.dtype)
        if self.execution.compile is not None and isinstance(getattr(student, "model", None), nn.Module):
            compile_student_(student, self.execution.compile)
        return student

    # ------------------------------------------------------------------------------------------- builders
    def teacher(self, teacher, *, name: str = "teacher", vae=None) -> Generator:
        self.check("teacher")
        return teacher_generator(self.load_teacher(teacher, vae=vae), sampling=self.sampling, name=name)

    def dd(self, student_ref, *, teacher=None, steps: Sequence[int] = (1,), row: str | None = None) -> list[Generator]:
        """1/2-step DD students: one generator per step count (a bad count is refused before any sampling); `row`
        names the rows `{row}-{K}step` (default: the method)."""
        self.check("dd")
        student = self.load_student(student_ref, teacher=teacher)
        for k in steps:
            if hasattr(student, "schedule"):
                student.schedule(int(k))
        return dd_generators(student, steps=steps, label=str(student_ref), row=row)

    def dd_teacher_involved(self, student_ref, *, teacher_start: int, split: int | None = None, teacher=None) -> Generator:
        self.check("dd-teacher-involved")
        student = self.load_student(student_ref, teacher=teacher)
        return dd_teacher_involved_generator(student, teacher_start=teacher_start, split=split, sampling=self.sampling,
                                             label=str(student_ref))

    def code(self, drafter, refiner, *, draft_steps: Sequence[int], finetuned=None) -> list[Generator]:
        """CoDe pairs by name (or loaded teachers, or a fine-tuning folder), both models with the execution options."""
        self.check("code")
        import ardistill

        if finetuned is not None or isinstance(drafter, (str, os.PathLike, type(None))):
            e = self.execution
            d, r = load_code_pair(drafter, refiner, finetuned=finetuned, weights_dir=self.weights_dir, device=e.device,
                                  random_init=self.random_init, dtype=e.dtype, fast=e.fast, compile=e.compile)
        else:
            d, r = self.load_teacher(drafter), self.load_teacher(refiner)
        return code_generators(ardistill.CoDe(d, r), draft_steps=draft_steps, sampling=self.sampling)

    def baselines(self, teacher, names: Sequence[str], *, marginals=None, marginal_samples_per_class: int = 100,
                  seed: int = 0) -> list[Generator]:
        teacher = self.load_teacher(teacher)
        for name, k in parse_baselines(teacher, names):
            self.check("onestep" if k is None else "skip")
        return baseline_generators(teacher, names=names, marginals=marginals, marginal_samples_per_class=marginal_samples_per_class,
                                   seed=seed, sampling=self.sampling)


def compile_student_(student, mode: str) -> None:
    """torch.compile the DD student's forward (static shapes, one graph per batch shape; kept on the module), in place."""
    model = student.model
    eager = type(model).forward.__get__(model)
    model.forward = compiled(model, "dd-student", eager, mode)
    student._ardistill_compile = mode


__all__ = ["Generator", "BenchMethod", "GeneratorBuilder", "ExecutionOptions", "SamplingOptions", "OPTION_TABLE", "check_options",
           "teacher_generator", "dd_generators", "dd_teacher_involved_generator", "code_generators", "baseline_generators",
           "parse_baselines", "baselines_needing_marginals", "load_code_pair", "networks_of", "output_head", "matrix_dtype",
           "compile_student_"]
