"""File IO that never loses work: atomic writes, hashing, safe checkpoint reading.

- Atomic writes go to a temporary file in the destination folder, are fsync'ed, then `os.replace`d over the
  target, so a reader (or a resumed job after `kill -9`) sees either the old file or the complete new one.
- Checkpoints are read with `torch.load(weights_only=True)` only; a file that needs arbitrary unpickling is
  refused. Safetensors files are read with `safetensors.torch.load_file`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

from ardistill.errors import ArdistillError, CheckpointError

StateDict = dict[str, torch.Tensor]

# Wrappers that training code puts around a state dict, in the order the official loaders try them.
NESTING_KEYS = ("model", "module", "state_dict")
# Prefixes added by DDP (`module.`) and torch.compile (`_orig_mod.`).
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path` atomically, on error it is removed."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except OSError as e:
        raise ArdistillError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
        _fsync_dir(parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_save_safetensors(
    tensors: Mapping[str, torch.Tensor], path: str | os.PathLike, metadata: Mapping[str, str] | None = None
) -> None:
    """Save tensors (made contiguous, on CPU) to a safetensors file atomically."""
    from safetensors.torch import save_file

    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(clean, str(tmp), metadata=dict(metadata) if metadata else None)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def ensure_writable(path: str | os.PathLike) -> Path:
    """Fail early, with one line, if `path` cannot be created (before hours of work are spent)."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ArdistillError(f"cannot create folder {parent}: {e.strerror or e}") from None
    if path.is_dir():
        raise ArdistillError(f"cannot write {path}: it is a folder")
    if not os.access(parent, os.W_OK):
        raise ArdistillError(f"cannot write {path}: folder {parent} is not writable")
    return path


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_tensors(tensors: Mapping[str, torch.Tensor]) -> str:
    """Hash of tensor names, dtypes, shapes and bytes, independent of file layout."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def checkpoint_format(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".safetensors":
        return "safetensors"
    if suffix in (".pth", ".pt", ".bin", ".ckpt"):
        return "torch"
    raise CheckpointError(f"{path}: unknown checkpoint format {suffix!r} (expected .pth, .pt or .safetensors)")


def read_checkpoint(path: str | os.PathLike) -> Any:
    """Read a checkpoint file without executing code: safetensors, or torch.load(weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    fmt = checkpoint_format(path)
    if fmt == "safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else "unsupported global"
        raise CheckpointError(
            f"{path}: refused — it needs full unpickling, which can run arbitrary code ({first}). "
            "Convert it once in a trusted environment: torch.save(torch.load(f, weights_only=False)['model'], out)"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({str(e).splitlines()[0]})") from None


def extract_state_dict(obj: Any, *, prefer: tuple[str, ...] = NESTING_KEYS, what: str = "checkpoint") -> StateDict:
    """Find the state dict in a checkpoint object and strip wrapper prefixes.

    A dict whose values are all tensors is taken as the state dict; otherwise the first of `prefer` that holds
    one is used. Leading `module.` / `_orig_mod.` prefixes are removed from every key.
    """
    if _is_state_dict(obj):
        sd = obj
    else:
        sd = None
        if isinstance(obj, Mapping):
            for key in prefer:
                if key in obj and _is_state_dict(obj[key]):
                    sd = obj[key]
                    break
        if sd is None:
            keys = list(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
            raise CheckpointError(f"{what}: no state dict found (top-level keys: {keys}; looked under {list(prefer)})")
    out: StateDict = {}
    for k, v in sd.items():
        changed = True
        while changed:
            changed = False
            for p in WRAPPER_PREFIXES:
                if k.startswith(p):
                    k, changed = k[len(p):], True
        out[k] = v
    return out


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def load_state_dict_file(path: str | os.PathLike, *, prefer: tuple[str, ...] = NESTING_KEYS) -> StateDict:
    return extract_state_dict(read_checkpoint(path), prefer=prefer, what=str(path))


def diff_state_dict(module_sd: Mapping[str, torch.Tensor], file_sd: Mapping[str, torch.Tensor]) -> dict[str, list]:
    """Compare key sets and shapes: {'missing': [...], 'unexpected': [...], 'shape': [(key, want, got)]}."""
    missing = [k for k in module_sd if k not in file_sd]
    unexpected = [k for k in file_sd if k not in module_sd]
    shape = [
        (k, tuple(module_sd[k].shape), tuple(file_sd[k].shape))
        for k in module_sd
        if k in file_sd and tuple(module_sd[k].shape) != tuple(file_sd[k].shape)
    ]
    return {"missing": missing, "unexpected": unexpected, "shape": shape}


def format_state_dict_diff(diff: Mapping[str, list], limit: int = 3) -> str:
    parts = []
    for name in ("missing", "unexpected"):
        if diff[name]:
            head = ", ".join(diff[name][:limit])
            more = f" (+{len(diff[name]) - limit} more)" if len(diff[name]) > limit else ""
            parts.append(f"{len(diff[name])} {name} keys: {head}{more}")
    if diff["shape"]:
        k, want, got = diff["shape"][0]
        more = f" (+{len(diff['shape']) - 1} more)" if len(diff["shape"]) > 1 else ""
        parts.append(f"{len(diff['shape'])} shape mismatches: {k} expects {list(want)}, file has {list(got)}{more}")
    return "; ".join(parts)


def load_strict(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], *, what: str) -> None:
    """`module.load_state_dict(strict=True)` with a one-line, readable error on any key or shape mismatch."""
    diff = diff_state_dict(module.state_dict(), state_dict)
    if diff["missing"] or diff["unexpected"] or diff["shape"]:
        raise CheckpointError(f"{what} does not match {type(module).__name__}: {format_state_dict_diff(diff)}")
    module.load_state_dict(state_dict, strict=True)
