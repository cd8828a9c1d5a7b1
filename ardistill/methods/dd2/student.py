"""The DD2 student: a one-step generator bound to its teacher — sampling in 1 step or with the teacher finishing the
last AR steps (spec §6), saving to and loading from a student folder (`ardistill.load_student` reads it).

Folder layout (as a DD student's): `student.json` (the card: `format: ardistill-dd2-student`, the teacher and its
architecture, the network's shape, the code scale, the teacher sampling settings that were distilled, training facts)
and `student.safetensors` (the generator's weights, the EMA when training kept one).

Shapes: B batch, L teacher tokens, C code dimension. Noise ε `[B, L, C]` ~ N(0, I) (network space: code vectors ×
`code_scale`); outputs: tokens `[B, L]` int64 (nearest codes) or the continuous vectors `[B, L, C]` in the teacher's
code space (`return_embeddings=True`), which `teacher.decode_embeddings` turns into images.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ardistill.configs import config_from_dict, config_to_dict
from ardistill.errors import ArdistillError, BadArgumentError
from ardistill.io import atomic_save_safetensors, atomic_write_json, load_state_dict_file, load_strict
from ardistill.methods.dd2.family import family_adapter
from ardistill.models.dd.checkpoint import build_student
from ardistill.models.dd2.from_dd import DDStudentGenerator
from ardistill.sampling.fast import autocast, cast_matrices_, parse_dtype
from ardistill.teachers.base import check_labels

DD2_FORMAT = "ardistill-dd2-student"
STUDENT_WEIGHTS = "student.safetensors"
STUDENT_CARD = "student.json"


@dataclass(frozen=True)
class DD2StudentConfig:
    """What a DD2 student is besides its weights (the card's typed part)."""

    family: str  # the teacher's family ("var" | "llamagen")
    teacher: str  # the teacher's registered name
    code_scale: float  # network space = code vectors × code_scale
    head_width: int
    head_depth: int
    sampling: dict[str, Any] = field(default_factory=dict)  # the teacher settings distilled (cfg, top_k, ...)
    embedding_hidden: int = 0  # LlamaGen: the continuous input embedding's hidden width (0: none, VAR)
    generator_t: float = 1.0  # the generator's input noise level (docs/dd2.md decision 23; cards before it: 1)
    generator_prefix_scale: float = 1.0  # its backbone reads generator_prefix_scale·ε
    # decision 24: "dd2-net" (the GTS-tuned network) or "dd-student" (a DD student network, `DDStudentGenerator`,
    # reading out `generator_output` at `generator_temperature`; head_width / head_depth then describe nothing)
    generator_arch: str = "dd2-net"
    generator_output: str = "expected"
    generator_temperature: float = 1.0


class DD2Student:
    """A one-step DD2 generator on a loaded teacher.

    `sample(labels, steps=1)`: one generator pass. `steps=K ≥ 2`: the generator's first `num_steps − K + 1` AR steps
    (VAR: scales) are kept as the nearest codes and the teacher samples the last K − 1 AR steps from them with the
    distilled settings (spec §6: a quality / steps trade-off).
    """

    method = "dd2"

    def __init__(self, model: torch.nn.Module, teacher, config: DD2StudentConfig, *, name: str = "student",
                 dtype: torch.dtype = torch.float32, card: dict | None = None):
        if teacher.family != config.family:
            raise ArdistillError(f"{name} is a {config.family} DD2 student; teacher {teacher.name} is {teacher.family}")
        self.family = family_adapter(teacher, code_scale=config.code_scale, **_adapter_sampling(config.sampling))
        self.model = model.eval()
        self.dtype = dtype
        if dtype != torch.float32:
            cast_matrices_(self.model, dtype)
        self.teacher, self.config, self.name = teacher, config, name
        self.card = card or {}
        self.tokens_per_image = teacher.tokens_per_image
        self.num_classes = teacher.num_classes
        self.num_steps = teacher.num_steps

    @classmethod
    def untrained(cls, teacher, *, head_width: int = 256, head_depth: int = 3, seed: int = 0,
                  code_scale: float | None = None, sampling: dict | None = None, name: str = "untrained") -> "DD2Student":
        """A student before any training: the generator's backbone a copy of the teacher's, a fresh head drawn under
        `seed` (its output layer zero: the generator is the identity q = ε until trained). For speed benchmarks at
        real sizes and for tests."""
        family = family_adapter(teacher, code_scale=code_scale, **(sampling or {}))
        model = family.generator_from(family.new_network(head_width=head_width, head_depth=head_depth, seed=seed))
        config = DD2StudentConfig(family=teacher.family, teacher=teacher.name, code_scale=family.code_scale,
                                  head_width=head_width, head_depth=head_depth, sampling=dict(family.settings),
                                  embedding_hidden=family.embedding_hidden)
        return cls(model, teacher, config, name=name)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def codebook(self) -> torch.Tensor:
        """The teacher's code vectors `[V, C]` fp32 (its own space)."""
        return self.teacher.codebook.detach().float()

    @property
    def code_dim(self) -> int:
        return self.codebook.shape[1]

    def schedule(self, steps: int) -> int:
        """AR steps the generator's output keeps for a `steps`-step run (the teacher makes the rest); a bad count is
        a one-line error."""
        if isinstance(steps, bool) or int(steps) != steps or not 1 <= steps <= self.num_steps:
            raise BadArgumentError(f"{self.name} samples in 1 … {self.num_steps} steps (1 generator pass, then the "
                                   f"teacher's last AR steps), got --steps {steps}")
        return self.num_steps - int(steps) + 1

    def noise(self, batch: int, seed: int | None) -> torch.Tensor:
        """ε `[B, L, C]` fp32 from a CPU generator seeded with `seed` (0 when None): the same on every device."""
        g = torch.Generator(device="cpu").manual_seed(0 if seed is None else int(seed))
        return torch.randn(batch, self.tokens_per_image, self.code_dim, generator=g)

    @torch.no_grad()
    def generate(self, labels: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """One generator pass: labels `[B]`, ε `[B, L, C]` → continuous tokens `[B, L, C]` fp32 in the teacher's
        code space."""
        with autocast(self.device, self.dtype):
            q = self.model(noise, labels)
        return q.float() / self.family.code_scale

    @torch.no_grad()
    def sample(self, labels, *, steps: int = 1, noise: torch.Tensor | None = None, seed: int | None = None,
               return_embeddings: bool = False) -> torch.Tensor:
        """Tokens `[B, L]` (or with `return_embeddings` the continuous vectors `[B, L, C]`); deterministic given
        `noise`, else ε is drawn from `seed` (which also seeds the teacher's draws when steps ≥ 2)."""
        keep = self.schedule(steps)
        labels = check_labels(labels, self.num_classes, device=self.device)
        if noise is None:
            noise = self.noise(labels.shape[0], seed)
        if noise.dim() != 3 or tuple(noise.shape) != (labels.shape[0], self.tokens_per_image, self.code_dim):
            raise BadArgumentError(f"noise must have shape [{labels.shape[0]}, {self.tokens_per_image}, {self.code_dim}], "
                                   f"got {list(noise.shape)}")
        q = self.generate(labels, noise.to(self.device, torch.float32))
        tokens = self.family.nearest_codes(q * self.family.code_scale)
        if keep < self.num_steps:
            n = self.teacher.step_sizes[:keep]
            prefix = tokens[:, : sum(n)]
            with self.teacher.start_steps(labels, seed=seed, prefix=prefix, **self.family.settings) as run:
                tokens = run.run(stop=self.num_steps)
            q = torch.cat((q[:, : sum(n)], self.codebook[tokens[:, sum(n):]]), dim=1)
        return q if return_embeddings else tokens

    # ------------------------------------------------------------------------------------------------- saving
    def save(self, out_dir: str | os.PathLike, extra: dict | None = None) -> Path:
        """Write `student.safetensors` (weights) + `student.json` (card) atomically; returns the folder."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_save_safetensors({k: v.detach().float().contiguous() for k, v in self.model.state_dict().items()},
                                out / STUDENT_WEIGHTS)
        atomic_write_json(out / STUDENT_CARD, {"format": DD2_FORMAT, "method": "dd2", **config_to_dict(self.config),
                                               "teacher_config": config_to_dict(self.teacher.network.config),
                                               **(extra or {})})
        return out


def _adapter_sampling(sampling: dict) -> dict:
    """The card's sampling settings as adapter keyword arguments (cfg, top_k, top_p, temperature)."""
    return {k: sampling[k] for k in ("cfg", "top_k", "top_p", "temperature") if k in sampling}


# ------------------------------------------------------------------------------------------------------ loading
def is_dd2_student_dir(path: str | os.PathLike) -> bool:
    """True when `path` is a folder whose card says it holds a DD2 student."""
    card = Path(path) / STUDENT_CARD
    if not card.is_file():
        return False
    try:
        return json.loads(card.read_text()).get("format") == DD2_FORMAT
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def read_dd2_card(path: str | os.PathLike) -> tuple[DD2StudentConfig, dict]:
    """(typed config, the whole card) of a DD2 student folder; a bad card is a one-line error naming the file."""
    card_path = Path(path) / STUDENT_CARD
    try:
        card = json.loads(card_path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArdistillError(f"{card_path}: not a readable student card ({e})") from None
    names = set(DD2StudentConfig.__dataclass_fields__)
    config = config_from_dict(DD2StudentConfig, {k: v for k, v in card.items() if k in names}, where=str(card_path))
    return config, card


def build_generator(teacher, config: DD2StudentConfig) -> torch.nn.Module:
    """The generator a card describes, with fresh weights (to be loaded): the DD2 network (`generator_arch`
    "dd2-net") or a DD student network read out by `DDStudentGenerator` ("dd-student"). A bad value: ValueError."""
    family = family_adapter(teacher, code_scale=config.code_scale, **_adapter_sampling(config.sampling))
    if config.generator_arch == "dd-student":
        student = build_student(teacher.family, teacher.network.config, device=teacher.device, empty=True)
        return DDStudentGenerator(student, teacher.codebook, family.code_scale, output=config.generator_output,
                                  temperature=config.generator_temperature)
    if config.generator_arch != "dd2-net":
        raise ValueError(f"generator_arch is dd2-net or dd-student, got {config.generator_arch!r}")
    net = family.new_network(head_width=config.head_width, head_depth=config.head_depth,
                             embedding_hidden=config.embedding_hidden)
    return family.generator_from(net, noise_level=config.generator_t, prefix_scale=config.generator_prefix_scale)


def load_dd2_student(path: str | os.PathLike, *, teacher, device: str | torch.device | None = None,
                     dtype: torch.dtype | str | None = None) -> DD2Student:
    """The DD2 student in folder `path` on a loaded `teacher` (its architecture is checked against the card's)."""
    path = Path(path)
    config, card = read_dd2_card(path)
    arch = teacher.network.config
    if card.get("teacher_config") is not None and config_from_dict(type(arch), card["teacher_config"], where=str(path / STUDENT_CARD)) != arch:
        raise ArdistillError(f"{path.name} was trained for {config.teacher}; teacher {teacher.name} has a different architecture")
    try:
        model = build_generator(teacher, config)
    except ValueError as e:
        raise ArdistillError(f"{path / STUDENT_CARD}: {e}") from None
    weights = path / STUDENT_WEIGHTS
    if not weights.is_file():
        raise ArdistillError(f"{path}: no {STUDENT_WEIGHTS} (a training run that has not finished? resume it)")
    load_strict(model, load_state_dict_file(weights), what=str(weights))
    model.to(device or teacher.device)
    return DD2Student(model, teacher, config, name=path.name, card=card,
                      dtype=parse_dtype(dtype) if dtype is not None else getattr(teacher, "dtype", torch.float32))


__all__ = ["DD2Student", "DD2StudentConfig", "DD2_FORMAT", "build_generator", "is_dd2_student_dir", "read_dd2_card", "load_dd2_student"]
