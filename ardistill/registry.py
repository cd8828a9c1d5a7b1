"""One registry for every model name (official and built-in), in the torch-fidelity style: register by name,
look up by name, extend by registering.

A :class:`ModelSpec` maps a name such as ``var-d16`` to its family, its config and the weight files it needs.
Weight files are looked up in ``--weights-dir`` / ``$ARDISTILL_HOME`` (default ``~/.cache/ardistill``); built-in
models carry their weights inside the package. A family registers one loader (spec → Teacher) and one
checkpoint guesser (state dict → what it is) so that ``load_teacher`` and ``ardistill inspect`` need no
per-family special cases.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ardistill.errors import UnknownModelError, WeightsMissingError

PACKAGE_WEIGHTS = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class WeightFile:
    """One file a model needs: its role ("transformer", "tokenizer", ...), file name and where it is published."""

    role: str
    filename: str
    url: str = ""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # "var" | "llamagen" | ...
    config: Any  # the family's config dataclass
    files: tuple[WeightFile, ...]
    description: str = ""
    builtin: bool = False  # weights shipped inside the package (ardistill/weights/<name>/)
    tokens_per_image: int = 0
    image_size: int = 0
    params: int = 0  # transformer parameters (buffers excluded); 0 = unknown
    sampling_defaults: dict = field(default_factory=dict)
    kind: str = "teacher"

    def file(self, role: str) -> WeightFile:
        for f in self.files:
            if f.role == role:
                return f
        raise KeyError(f"{self.name} has no weight file with role {role!r}")


@dataclass(frozen=True)
class CheckpointGuess:
    """What a state dict looks like to a family: used by `ardistill inspect`."""

    family: str
    component: str  # e.g. "VAR transformer", "VQVAE tokenizer"
    config_name: str  # e.g. "depth 16, width 1024"
    build: Callable[[], torch.nn.Module]  # builds the expected module (on the meta device is fine)
    spec_name: str | None = None  # registered model whose transformer has exactly this config, if any


_MODELS: dict[str, ModelSpec] = {}
_LOADERS: dict[str, Callable[..., Any]] = {}
_GUESSERS: list[Callable[[dict], CheckpointGuess | None]] = []


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.name in _MODELS and _MODELS[spec.name] != spec:
        raise ValueError(f"model name {spec.name!r} registered twice")
    _MODELS[spec.name] = spec
    return spec


def register_family(family: str, loader: Callable[..., Any], guesser: Callable[[dict], CheckpointGuess | None] | None = None) -> None:
    _LOADERS[family] = loader
    if guesser is not None and guesser not in _GUESSERS:
        _GUESSERS.append(guesser)


def _ensure_zoo() -> None:
    # The zoo imports every family and registers its names; imported lazily to keep `import ardistill` light.
    import ardistill.zoo  # noqa: F401


def list_models() -> list[ModelSpec]:
    _ensure_zoo()
    return list(_MODELS.values())


def get_model_spec(name: str) -> ModelSpec:
    _ensure_zoo()
    if name in _MODELS:
        return _MODELS[name]
    close = difflib.get_close_matches(name, list(_MODELS), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(sorted(_MODELS))}"
    raise UnknownModelError(f"unknown model {name!r}{hint} (`ardistill models` lists them)")


def family_loader(family: str) -> Callable[..., Any]:
    _ensure_zoo()
    return _LOADERS[family]


def checkpoint_guessers() -> list[Callable[[dict], CheckpointGuess | None]]:
    _ensure_zoo()
    return list(_GUESSERS)


def weights_home(weights_dir: str | os.PathLike | None = None) -> Path:
    """Where official weight files are looked up: the argument, else $ARDISTILL_HOME, else ~/.cache/ardistill."""
    if weights_dir is not None:
        return Path(weights_dir).expanduser()
    env = os.environ.get("ARDISTILL_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ardistill"


def candidate_paths(spec: ModelSpec, wf: WeightFile, weights_dir: str | os.PathLike | None = None) -> list[Path]:
    """Paths tried for a weight file, in order: built-in package folder, then the weights home
    (the file name as published, then its `.safetensors` conversion)."""
    if spec.builtin:
        return [PACKAGE_WEIGHTS / spec.name / wf.filename]
    home = weights_home(weights_dir)
    stem = Path(wf.filename).stem
    return [home / wf.filename, home / f"{stem}.safetensors"]


def find_weight_file(spec: ModelSpec, role: str, weights_dir: str | os.PathLike | None = None) -> Path:
    wf = spec.file(role)
    paths = candidate_paths(spec, wf, weights_dir)
    for p in paths:
        if p.is_file():
            return p
    where = paths[0].parent
    src = f"; the official release publishes it at {wf.url}" if wf.url else ""
    raise WeightsMissingError(
        f"{spec.name}: {wf.filename} not found in {where} (set --weights-dir or $ARDISTILL_HOME){src}"
    )


def weights_present(spec: ModelSpec, weights_dir: str | os.PathLike | None = None) -> bool:
    return all(any(p.is_file() for p in candidate_paths(spec, wf, weights_dir)) for wf in spec.files)
