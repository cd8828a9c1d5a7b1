"""The Python API: `load_teacher` and friends. The CLI is a thin layer over these functions."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import torch

from ardistill.devices import resolve_device
from ardistill.errors import ArdistillError, CheckpointError
from ardistill.registry import add_catalogue, checkpoint_guessers, family_loader, get_model_spec, list_models
from ardistill.sampling.fast import parse_dtype
from ardistill.teachers.base import Teacher


def _register_zoo() -> None:
    import ardistill.zoo  # noqa: F401  (importing it registers every built-in and official name)


# Names are looked up through this layer (and those above it); the zoo fills the registry on the first lookup, lazily
# to keep `import ardistill` light. `import ardistill` imports this module, so `ardistill.registry` lookups see it.
add_catalogue(_register_zoo)
import ardistill.students  # noqa: E402,F401  (after the zoo: adds the built-in students' catalogue, which names teachers)


def load_teacher(
    name_or_path: str | os.PathLike,
    *,
    vae: str | os.PathLike | None = None,
    weights_dir: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str = torch.float32,
    random_init: bool = False,
    seed: int = 0,
    fast: bool = False,
    compile: bool | str | None = None,
) -> Teacher:
    """Load a teacher by registered name (``"var-d16"``, ``"llamagen-b"``, ...; official files are downloaded from the
    Hub on first use, see `download`) or from a checkpoint file (e.g. a release file ``.../c2i_B_256.pt``).

    Args:
        name_or_path: a registered name, or the path of a transformer checkpoint (.pth/.pt/.safetensors) whose
            config is recognised from its keys and shapes.
        vae: path of the tokenizer checkpoint; default: the registered file in the weights folder (for a path,
            the tokenizer file is also looked for next to the checkpoint).
        weights_dir: folder with official weight files, where missing ones are downloaded (default ``$ARDISTILL_HOME``;
            unset: looked up in ``~/.cache/ardistill`` and the Hugging Face cache, downloaded into the latter).
        device: ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"`` (CUDA, else MPS, else CPU); an
            unavailable device is a one-line error.
        random_init: build with the official initialisation scheme and no file (tests, benchmarks).
        seed: seed of the random initialisation.
        dtype: float32 (exact, default), bfloat16 or float16 (a string "fp32" / "bf16" / "fp16" works too): the
            transformer's matrices and the tokenizer decoder are stored and run in that dtype.
        fast: the fast sampling loops (fp32: same tokens as the reference at the same seed).
        compile: torch.compile the per-step forward: True / "auto" ("reduce-overhead" = CUDA graphs on a GPU,
            "default" on CPU) or a torch.compile mode. Implies fast.
    """
    spec, transformer_path = _resolve(name_or_path)
    if spec.kind != "teacher":
        raise ArdistillError(f"{spec.name} is a Distilled Decoding student, not a teacher: load it with load_student (CLI: --student)")
    loader = family_loader(spec.family)
    return loader(
        spec,
        transformer_path=transformer_path,
        vae_path=Path(vae) if vae is not None else None,
        weights_dir=weights_dir,
        device=resolve_device(device),
        dtype=parse_dtype(dtype),
        random_init=random_init,
        seed=seed,
        fast=fast,
        compile=compile,
    )


def _resolve(name_or_path: str | os.PathLike):
    s = str(name_or_path)
    looks_like_path = os.sep in s or s.endswith((".pth", ".pt", ".safetensors")) or Path(s).is_file()
    if not looks_like_path:
        return get_model_spec(s), None
    path = Path(s)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    from ardistill.io import load_state_dict_file

    sd = load_state_dict_file(path)
    for guess in checkpoint_guessers():
        g = guess(sd)
        if g is not None and g.spec_name:
            return get_model_spec(g.spec_name), path
    raise ArdistillError(f"{path}: not recognised as the transformer of any registered model (try `ardistill inspect {path}`)")


def load_evaluator(path: str | os.PathLike | None = None, *, device: str | torch.device = "cpu"):
    """The shipped evaluator of the procedural world (or the one in folder `path`).

    `.predict(images [B, 3, H, W] in [0, 1]) -> labels [B]`, `.features(images) -> [B, D]`,
    `.accuracy(images, labels) -> float`. device: as for `load_teacher` (default "cpu"; "auto" picks CUDA / MPS / CPU).
    """
    from ardistill.eval.evaluator import load_evaluator as _load

    return _load(path, device=resolve_device(device))


def download(names: str | list[str], *, weights_dir: str | os.PathLike | None = None,
             offline: bool | None = None) -> dict[str, list[Path]]:
    """Download the official weight files of registered models (what `load_teacher` / `load_student` would fetch on
    first use) and return {model name: [local paths]}. Files already present are not downloaded again.

    names: one name or a list ("var-d16", "dd-llamagen-b", ...); a DD student brings its teacher's files too.
    weights_dir: download into this folder in the release's layout (default: $ARDISTILL_HOME, else the Hugging Face
        cache). offline: only check that the files are present (default: $HF_HUB_OFFLINE).
    Files come from each repository's pinned revision (`ardistill.zoo.HUB_REVISIONS`), through huggingface_hub.
    """
    from ardistill.registry import download_model, get_model_spec

    names = [names] if isinstance(names, str) else list(names)
    for name in names:
        get_model_spec(name)  # every name is checked before anything is downloaded
    out: dict[str, list[Path]] = {}
    for name in names:
        out.update(download_model(name, weights_dir, offline=offline))
    return out


def load_student(name_or_path: str | os.PathLike, *, teacher=None, weights_dir: str | os.PathLike | None = None,
                 device: str | torch.device | None = None, dtype: torch.dtype | str | None = None):
    """A Distilled Decoding (DD or DD2) student: a built-in student's name (`dd2-var-toy-l`, `dd-llamagen-toy`, ...:
    `ardistill models --family dd2-var`), a folder made by `ardistill train` (student.json + student.safetensors), an
    official release name (`dd-var-d16`, `dd-llamagen-l`, ...; downloaded on first use) or an official release file
    (`.../VAR-DD/var-d16.pth`, `.../llamagen-B.pt`). `teacher`: a Teacher or a name (default: the
    student's own teacher). `.sample(labels, steps=1, noise=None, seed=None, return_embeddings=False)` → tokens [B, L].
    dtype: the student's compute dtype, "fp32" / "bf16" / "fp16" (default: the teacher's). device: default the
    teacher's; "auto" picks CUDA / MPS / CPU.
    """
    from ardistill.methods.dd.student import load_student as _load
    from ardistill.methods.dd2.student import is_dd2_student_dir, load_dd2_student

    if device is not None:
        device = resolve_device(device)
    name_or_path = _builtin_student_folder(name_or_path)
    teacher_name = str(teacher) if isinstance(teacher, (str, os.PathLike)) else getattr(teacher, "name", None)
    source = find_student_source(name_or_path, teacher_name=teacher_name, weights_dir=weights_dir)
    if teacher is None or isinstance(teacher, (str, os.PathLike)):  # names are resolved here, never in methods/
        teacher = load_teacher(teacher or source.config.teacher, weights_dir=weights_dir, device=device or "cpu",
                               dtype=parse_dtype(dtype))
    if is_dd2_student_dir(name_or_path):
        return load_dd2_student(name_or_path, teacher=teacher, device=device, dtype=dtype)
    return _load(source, teacher=teacher, weights_dir=weights_dir, device=device, dtype=dtype)


def _builtin_student_folder(name_or_path: str | os.PathLike) -> str | os.PathLike:
    """A built-in student's name → its folder inside the package; anything else (an existing path first) as given."""
    from ardistill.students import builtin_student_dir

    if isinstance(name_or_path, (str, os.PathLike)) and not Path(name_or_path).exists():
        folder = builtin_student_dir(name_or_path)
        if folder is not None:
            return folder
    return name_or_path


def find_student_source(name_or_path: str | os.PathLike, *, teacher_name: str | None = None,
                        weights_dir: str | os.PathLike | None = None):
    """What a student reference is before any teacher is loaded: an object whose `.config.teacher` names its teacher
    (a DD student's `StudentSource`, or a DD2 folder's card config)."""
    from ardistill.methods.dd.student import find_student
    from ardistill.methods.dd2.student import is_dd2_student_dir, read_dd2_card

    name_or_path = _builtin_student_folder(name_or_path)
    if is_dd2_student_dir(name_or_path):
        config, card = read_dd2_card(name_or_path)
        return SimpleNamespace(config=config, card=card, name=Path(name_or_path).name)
    return find_student(name_or_path, teacher_name=teacher_name, weights_dir=weights_dir)


__all__ = ["load_teacher", "list_models", "load_evaluator", "load_student", "find_student_source", "download"]
