"""One registry for every model name (official and built-in), in the torch-fidelity style: register by name,
look up by name, extend by registering.

A :class:`ModelSpec` maps a name such as ``var-d16`` to its family, its config and the weight files it needs.
An official weight file is looked up in ``--weights-dir`` / ``$ARDISTILL_HOME`` (default ``~/.cache/ardistill``,
flat or in the release's layout) and in the Hugging Face cache, and downloaded from its pinned Hub revision on first
use (`ardistill.hub`): into the weights folder when one is given, else into the Hub cache. Built-in models carry
their weights inside the package and never download. A family registers one loader (spec → Teacher) and one
checkpoint guesser (state dict → what it is) so that ``load_teacher`` and ``ardistill inspect`` need no
per-family special cases.
"""

from __future__ import annotations

import difflib
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


from ardistill.errors import UnknownModelError, WeightsMissingError
from ardistill.hub import HubFile
from ardistill.models.checkpoint_guess import CheckpointGuess  # noqa: F401  (re-exported: its old home)

PACKAGE_WEIGHTS = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class WeightFile:
    """One file a model needs: its role ("transformer", "tokenizer", ...), its file name and, for official files,
    where it is published (`hub`: repository, path inside it, pinned revision)."""

    role: str
    filename: str
    hub: HubFile | None = None

    @property
    def url(self) -> str:
        return self.hub.url if self.hub is not None else ""


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


_MODELS: dict[str, ModelSpec] = {}
_LOADERS: dict[str, Callable[..., Any]] = {}
_GUESSERS: list[Callable[..., CheckpointGuess | None]] = []  # guesser(state_dict, known=specs)
# Functions that register names, run once before the first lookup. The registry knows no family: `ardistill.api`
# adds the zoo here (imported lazily to keep `import ardistill` light), so every import points down.
_CATALOGUES: list[Callable[[], None]] = []


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.name in _MODELS and _MODELS[spec.name] != spec:
        raise ValueError(f"model name {spec.name!r} registered twice")
    _MODELS[spec.name] = spec
    return spec


def register_family(family: str, loader: Callable[..., Any], guesser: Callable[..., CheckpointGuess | None] | None = None) -> None:
    """guesser(state_dict, known=registered specs) -> CheckpointGuess | None, see `checkpoint_guessers`."""
    _LOADERS[family] = loader
    if guesser is not None and guesser not in _GUESSERS:
        _GUESSERS.append(guesser)


def add_catalogue(register_names: Callable[[], None]) -> None:
    """Run `register_names` (once) before the next lookup by name: how a higher layer (the zoo) fills the registry."""
    _CATALOGUES.append(register_names)


_LOADING_CATALOGUES = False


def _load_catalogues() -> None:
    # A catalogue is dropped only once it has run: one that fails (a broken import) fails again at the next lookup
    # rather than leaving a half-filled registry. Lookups made while a catalogue runs see what is registered so far.
    global _LOADING_CATALOGUES
    if _LOADING_CATALOGUES:
        return
    _LOADING_CATALOGUES = True
    try:
        while _CATALOGUES:
            _CATALOGUES[0]()
            _CATALOGUES.pop(0)
    finally:
        _LOADING_CATALOGUES = False


def list_models() -> list[ModelSpec]:
    _load_catalogues()
    return list(_MODELS.values())


def is_builtin_model(name: str) -> bool:
    """True for a model the project trains and ships (the procedural world's toys: their evaluation has a reference)."""
    return any(s.name == name and s.builtin for s in list_models())


def get_model_spec(name: str) -> ModelSpec:
    _load_catalogues()
    if name in _MODELS:
        return _MODELS[name]
    close = difflib.get_close_matches(name, list(_MODELS), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(sorted(_MODELS))}"
    raise UnknownModelError(f"unknown model {name!r}{hint} (`ardistill models` lists them)")


def family_loader(family: str) -> Callable[..., Any]:
    _load_catalogues()
    return _LOADERS[family]


def checkpoint_guessers() -> list[Callable[[dict], CheckpointGuess | None]]:
    """Each family's guesser, matched against the models registered now: guesser(state_dict) -> guess or None."""
    _load_catalogues()
    known = tuple(_MODELS.values())
    return [functools.partial(g, known=known) for g in _GUESSERS]


def weights_home(weights_dir: str | os.PathLike | None = None) -> Path:
    """Where official weight files are looked up: the argument, else $ARDISTILL_HOME, else ~/.cache/ardistill."""
    if weights_dir is not None:
        return Path(weights_dir).expanduser()
    env = os.environ.get("ARDISTILL_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ardistill"


def download_dir(weights_dir: str | os.PathLike | None = None) -> Path | None:
    """Where downloads go: the argument, else $ARDISTILL_HOME (in the release's layout), else None = the Hub cache."""
    if weights_dir is not None:
        return Path(weights_dir).expanduser()
    env = os.environ.get("ARDISTILL_HOME")
    return Path(env).expanduser() if env else None


def candidate_paths(spec: ModelSpec, wf: WeightFile, weights_dir: str | os.PathLike | None = None) -> list[Path]:
    """Local paths tried for a weight file, in order: the built-in package folder; else in the weights home the
    release's layout (`VAR-DD/var-d16.pth`), the file name alone, then its `.safetensors` conversion."""
    if spec.builtin:
        return [PACKAGE_WEIGHTS / spec.name / wf.filename]
    home = weights_home(weights_dir)
    stem = Path(wf.filename).stem
    paths = [home / wf.hub.filename] if wf.hub is not None and wf.hub.filename != wf.filename else []
    return paths + [home / wf.filename, home / f"{stem}.safetensors"]


def local_weight_file(spec: ModelSpec, wf: WeightFile, weights_dir: str | os.PathLike | None = None) -> Path | None:
    """The weight file on this machine (weights home, then the Hub cache when no folder is set), or None. No network."""
    for p in candidate_paths(spec, wf, weights_dir):
        if p.is_file():
            return p
    if wf.hub is not None and not spec.builtin and download_dir(weights_dir) is None:
        from ardistill.hub import local_path

        return local_path(wf.hub)
    return None


def download_command(spec: ModelSpec) -> str:
    return f"ardistill download {spec.name}"


def find_weight_file(spec: ModelSpec, role: str, weights_dir: str | os.PathLike | None = None, *,
                     offline: bool | None = None) -> Path:
    """The local path of a model's weight file, downloaded from its pinned Hub revision on first use (see the module
    docstring). offline: never download (default: $HF_HUB_OFFLINE). One-line WeightsMissingError when it cannot be had."""
    wf = spec.file(role)
    found = local_weight_file(spec, wf, weights_dir)
    if found is not None:
        return found
    if wf.hub is None or spec.builtin:
        where = candidate_paths(spec, wf, weights_dir)[0].parent
        src = "" if spec.builtin else " (set --weights-dir or $ARDISTILL_HOME)"
        raise WeightsMissingError(f"{spec.name}: {wf.filename} not found in {where}{src}")
    from ardistill.hub import download_file

    target = download_dir(weights_dir)
    try:
        return download_file(wf.hub, local_dir=target, offline=offline, command=download_command(spec))
    except WeightsMissingError as e:
        where = f"{weights_home(weights_dir)}" + ("" if target is not None else " or the Hugging Face cache")
        reason = getattr(e, "reason", str(e))
        raise WeightsMissingError(f"{spec.name}: {wf.filename} not found in {where} and not downloadable now ({reason}): "
                                  f"run `{download_command(spec)}` where the Hub is reachable (source: {wf.url})") from None


def weights_status(spec: ModelSpec, weights_dir: str | os.PathLike | None = None) -> list[tuple[WeightFile, Path | None]]:
    """(file, local path or None = will be downloaded on first use) for each of a model's weight files. No network."""
    return [(wf, local_weight_file(spec, wf, weights_dir)) for wf in spec.files]


def weights_present(spec: ModelSpec, weights_dir: str | os.PathLike | None = None) -> bool:
    return all(path is not None for _, path in weights_status(spec, weights_dir))


def download_model(name: str, weights_dir: str | os.PathLike | None = None, *, offline: bool | None = None,
                   with_teacher: bool = True) -> dict[str, list[Path]]:
    """Every weight file of a registered model, downloaded when missing: {model name: [local paths]}. A DD student
    brings its teacher's files too (it cannot sample without them) unless with_teacher=False. Built-in models: their
    package files (nothing is downloaded)."""
    spec = get_model_spec(name)
    out = {spec.name: [find_weight_file(spec, wf.role, weights_dir, offline=offline) for wf in spec.files]}
    teacher = getattr(spec.config, "teacher", None) if spec.kind == "student" else None
    if with_teacher and teacher:
        out.update(download_model(teacher, weights_dir, offline=offline, with_teacher=False))
    return out
