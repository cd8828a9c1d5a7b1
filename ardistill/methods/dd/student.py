"""The DD student as a generator: 1-step, 2-step and teacher-involved sampling (microsoft/distilled_decoding
VAR/sample.py, combine_sample.py; LlamaGen eval_fewstep.py, eval_combine_sample.py), and `load_student`.

Shapes: B batch, L teacher tokens, C code dimension, V codebook size. A split point t counts AR steps given as data
(VAR: scales, LlamaGen: tokens); `data_tokens(t)` is the number of leading tokens that are data (VAR N(t), LlamaGen t).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ardistill.configs import config_from_dict, config_to_dict
from ardistill.errors import ArdistillError, BadArgumentError
from ardistill.models.dd.config import DDStudentConfig
from ardistill.sampling.fast import autocast, cast_matrices_, parse_dtype
from ardistill.teachers.base import check_labels

STUDENT_WEIGHTS = "student.safetensors"
STUDENT_CARD = "student.json"


def nearest_codes(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """x [B, L, C], codebook [V, C] → [B, L] int64 index of the nearest row (squared L2, as the release)."""
    cb = codebook.float()
    d = cb.square().sum(-1) - 2 * x.float() @ cb.T  # ‖x‖² is constant per row
    return d.argmin(-1)


def teacher_architecture(teacher):
    """The transformer config of a teacher (VARConfig / GPTConfig)."""
    return teacher.network.config


class Student:
    """A DD student bound to its teacher (for the codebook, decoding and teacher-involved sampling)."""

    def __init__(self, model: torch.nn.Module, teacher, config: DDStudentConfig, *, name: str = "student",
                 dtype: torch.dtype = torch.float32):
        if teacher.family != config.family:
            raise ArdistillError(f"{name} is a {config.family} student; teacher {teacher.name} is {teacher.family}")
        self.model = model.eval()
        # bf16/fp16: the student's matrices are stored in that dtype and run under autocast (word_embed also runs
        # outside autocast and stays fp32); outputs, the codebook and nearest-code lookups stay fp32.
        self.dtype = dtype
        if dtype != torch.float32:
            cast_matrices_(self.model, dtype, skip=("word_embed",))
        self.teacher = teacher
        self.config = config
        self.name = name
        self.tokens_per_image = teacher.tokens_per_image
        self.num_classes = teacher.num_classes

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def codebook(self) -> torch.Tensor:
        return self.teacher.codebook.detach().float()

    @property
    def code_dim(self) -> int:
        return self.codebook.shape[1]

    def data_tokens(self, t: int) -> int:
        return self.model.data_tokens[t]

    def schedule(self, steps: int) -> list[int]:
        """Split points of a `steps`-step run: [0] or [0, t_list[1]]."""
        if steps == 1:
            return [self.config.t_list[0]]
        if steps == 2 and len(self.config.t_list) >= 2:
            return list(self.config.t_list[:2])
        raise BadArgumentError(f"{self.name} samples in 1 or {2 if len(self.config.t_list) >= 2 else 1} steps, got --steps {steps}")

    def noise(self, batch: int, seed: int | None) -> torch.Tensor:
        """ε [B, L, C] fp32 drawn on the CPU from a generator seeded with `seed` (same on every device)."""
        g = torch.Generator(device="cpu")
        g.manual_seed(0 if seed is None else seed)
        return torch.randn(batch, self.tokens_per_image, self.code_dim, generator=g)

    # ------------------------------------------------------------------------------------------------ one step
    @torch.no_grad()
    def dd_step(self, labels: torch.Tensor, x: torch.Tensor, tokens: torch.Tensor, noise: torch.Tensor, t: int,
                split: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One DD step at split point t: keep the first data_tokens(t) positions of (x, tokens), noise for the rest,
        run the student; positions < data_tokens(split) become argmax codes, the rest the continuous output.
        Returns (embeddings [B, L, C], tokens [B, L]; continuous positions carry their nearest code)."""
        m, ms = self.data_tokens(t), self.data_tokens(split)
        x_t = torch.cat((x[:, :m], noise[:, m:]), dim=1)
        with autocast(self.device, self.dtype):
            cont, logits = self.model(labels, x_t, torch.full_like(labels, t))
        cont, logits = cont.float(), logits.float()
        greedy = logits.argmax(-1)
        out_tokens = torch.where(torch.arange(x.shape[1], device=x.device) < ms, greedy, nearest_codes(cont, self.codebook))
        out = torch.cat((self.codebook[greedy[:, :ms]], cont[:, ms:]), dim=1)
        out[:, :m], out_tokens[:, :m] = x_t[:, :m], tokens[:, :m]  # data positions are kept as given
        return out, out_tokens

    def _prepare(self, labels, noise, seed):
        labels = check_labels(labels, self.num_classes, device=self.device)
        if noise is None:
            noise = self.noise(labels.shape[0], seed)
        if noise.dim() != 3 or tuple(noise.shape) != (labels.shape[0], self.tokens_per_image, self.code_dim):
            raise BadArgumentError(f"noise must have shape [{labels.shape[0]}, {self.tokens_per_image}, {self.code_dim}], got {list(noise.shape)}")
        return labels, noise.to(self.device, torch.float32)

    @torch.no_grad()
    def sample(self, labels, *, steps: int = 1, noise: torch.Tensor | None = None, seed: int | None = None,
               return_embeddings: bool = False) -> torch.Tensor:
        """Tokens [B, L] in 1 or 2 student steps (deterministic given `noise` [B, L, C], else drawn from `seed`).
        return_embeddings: the continuous vectors [B, L, C] the release decodes (`teacher.decode_embeddings`)."""
        labels, noise = self._prepare(labels, noise, seed)
        x, tokens = noise, torch.zeros(noise.shape[:2], dtype=torch.long, device=self.device)
        for t in self.schedule(steps):
            x, tokens = self.dd_step(labels, x, tokens, noise, t, self.config.split)
        return x if return_embeddings else tokens

    @torch.no_grad()
    def sample_teacher_involved(self, labels, *, teacher_start: int, split: int, noise: torch.Tensor | None = None,
                                seed: int | None = None, return_embeddings: bool = False, **teacher_sampling) -> torch.Tensor:
        """DD step at 0 (if teacher_start > 0) → keep its first teacher_start AR steps → the teacher samples AR steps
        teacher_start … t_2 − 1 with its ordinary sampler (seeded with `seed`) → DD step at t_2 with `split`.
        Steps: [1 if teacher_start > 0] + (t_2 − teacher_start) + 1. teacher_sampling: cfg, top_k, top_p, temperature."""
        if len(self.config.t_list) < 2:
            raise BadArgumentError(f"{self.name} has no second split point; teacher-involved sampling needs one")
        t2 = self.config.t_list[1]
        if not (0 <= teacher_start <= t2) or split < t2:
            raise BadArgumentError(f"need 0 ≤ teacher_start ≤ {t2} and split ≥ {t2}, got {teacher_start} and {split}")
        labels, noise = self._prepare(labels, noise, seed)
        prefix = None
        if teacher_start > 0:
            _, tokens = self.dd_step(labels, noise, torch.zeros(noise.shape[:2], dtype=torch.long, device=self.device),
                                     noise, 0, self.config.split)
            prefix = tokens[:, : self.data_tokens(teacher_start)]
        tokens = self._teacher_continue(labels, prefix, teacher_start, t2, seed, teacher_sampling)
        full = torch.zeros(noise.shape[:2], dtype=torch.long, device=self.device)
        full[:, : tokens.shape[1]] = tokens
        x = torch.cat((self.codebook[tokens], noise[:, tokens.shape[1]:]), dim=1)
        x, out = self.dd_step(labels, x, full, noise, t2, split)
        return x if return_embeddings else out

    def _teacher_continue(self, labels, prefix, start: int, stop: int, seed, overrides: dict) -> torch.Tensor:
        """The teacher's tokens of AR steps [0, stop) with steps < start given by `prefix` (read in the teacher's
        prefill; its own draws start at step `start`, from a generator seeded with `seed`): [B, data_tokens(stop)]."""
        if stop == 0:
            return labels.new_zeros(labels.shape[0], 0)
        with self.teacher.start_steps(labels, seed=seed, prefix=prefix, stop=stop, **overrides) as run:
            return run.run(stop=stop)

    # ------------------------------------------------------------------------------------------------- saving
    def save(self, out_dir: str | os.PathLike, extra: dict | None = None) -> Path:
        """Write `student.safetensors` + `student.json` (config, teacher and its architecture, T list, split)."""
        from ardistill.io import atomic_save_safetensors, atomic_write_json

        out = Path(out_dir)
        atomic_save_safetensors({k: v for k, v in self.model.state_dict().items()}, out / STUDENT_WEIGHTS)
        atomic_write_json(out / STUDENT_CARD, {"format": "ardistill-dd-student", **self.config.to_dict(),
                                               "teacher_config": config_to_dict(teacher_architecture(self.teacher)),
                                               **(extra or {})})
        return out


# ------------------------------------------------------------------------------------------------------ loading
def _same_architecture(teacher, card: dict) -> bool:
    cfg = teacher_architecture(teacher)
    return config_from_dict(type(cfg), card["teacher_config"], where=STUDENT_CARD) == cfg


def _release_spec_for_file(path: Path, teacher_name: str | None):
    """The registered official student a release file belongs to: by its published file name (`var-d16.pth`,
    `llamagen-B.pt`, their `.safetensors` conversions), else by the teacher it is loaded with."""
    from ardistill.registry import list_models

    students = [s for s in list_models() if s.kind == "student" and not s.builtin]
    for spec in students:
        if path.name == spec.file("student").filename or path.stem == Path(spec.file("student").filename).stem:
            return spec
    matches = [s for s in students if teacher_name and s.config.teacher == str(teacher_name)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(sorted(s.file("student").filename for s in students))
    raise ArdistillError(f"{path}: not a known DD release file name ({known}); pass teacher= (CLI: --teacher) to say "
                         "which teacher it was distilled from")


@dataclass(frozen=True)
class StudentSource:
    """Where a student's weights are and what it is, before any teacher is loaded."""

    config: DDStudentConfig  # config.teacher: the teacher it was made for
    card: dict | None  # student.json of a folder made by `ardistill train`; None for an official release
    official: bool  # weights in the release's layout
    name: str
    weights: Path


def find_student(name_or_path: str | os.PathLike, *, teacher_name: str | None = None,
                 weights_dir: str | os.PathLike | None = None) -> StudentSource:
    """A student folder (student.json + student.safetensors), an official release name (`dd-var-d16`, ...; downloaded
    on first use) or an official release file. teacher_name: says which release a file with an unknown name is."""
    from ardistill.registry import find_weight_file, get_model_spec

    path = Path(name_or_path)
    if path.is_dir():
        card_path = path / STUDENT_CARD
        if not card_path.is_file():
            raise ArdistillError(f"{path}: not a DD student folder (no {STUDENT_CARD}); train one with `ardistill train --recipe recipes/dd/...`")
        card = json.loads(card_path.read_text())
        if card.get("format", "ardistill-dd-student") != "ardistill-dd-student":
            raise ArdistillError(f"{path}: not a DD student folder (its card's format is {card['format']})")
        config = DDStudentConfig(family=card["family"], teacher=card["teacher"], t_list=tuple(card["t_list"]), split=int(card["split"]))
        return StudentSource(config, card, False, path.name, path / STUDENT_WEIGHTS)
    if path.is_file() or path.suffix in (".pth", ".pt", ".safetensors") or os.sep in str(name_or_path):
        # An official release file wherever it lies (Hub cache, `--weights-dir`, a manual download): the release's
        # file name says which student it is, else the teacher does.
        if not path.is_file():
            raise ArdistillError(f"{path}: no such file")
        spec = _release_spec_for_file(path, teacher_name)
        return StudentSource(spec.config, None, True, spec.name, path)
    spec = get_model_spec(str(name_or_path))
    if spec.kind == "student" and spec.builtin:  # shipped inside the package as a training folder
        return find_student(find_weight_file(spec, "student", weights_dir).parent)
    if spec.kind != "student":
        raise ArdistillError(f"{spec.name} is a teacher, not a DD student (students: `ardistill models --family dd-var` / dd-llamagen)")
    return StudentSource(spec.config, None, True, spec.name, find_weight_file(spec, "student", weights_dir))


def load_student(student: StudentSource | str | os.PathLike, *, teacher, weights_dir: str | os.PathLike | None = None,
                 device: str | torch.device | None = None, dtype: torch.dtype | str | None = None) -> Student:
    """The student `student` names (see `find_student`) on a loaded `teacher` (a Teacher; names are resolved by
    `ardistill.load_student`). dtype: the student's compute dtype (default: the teacher's)."""
    from ardistill.models.dd.checkpoint import load_official_student, load_student_file

    if teacher is None or isinstance(teacher, (str, os.PathLike)):
        raise BadArgumentError("methods.dd.student.load_student takes a loaded teacher; ardistill.load_student also takes a name")
    source = student if isinstance(student, StudentSource) else find_student(student, teacher_name=getattr(teacher, "name", None),
                                                                               weights_dir=weights_dir)
    config, card, official, name, weights = source.config, source.card, source.official, source.name, source.weights
    if card is not None and not _same_architecture(teacher, card):
        raise ArdistillError(f"{name} was trained for {card['teacher']}; teacher {teacher.name} has a different architecture")
    load = load_official_student if official else load_student_file
    model = load(weights, config.family, teacher_architecture(teacher), device=device or teacher.device)
    return Student(model, teacher, config, name=name, dtype=parse_dtype(dtype) if dtype is not None else getattr(teacher, "dtype", torch.float32))


__all__ = ["Student", "StudentSource", "find_student", "load_student", "nearest_codes", "teacher_architecture", "STUDENT_WEIGHTS", "STUDENT_CARD"]
