"""Sharded, resumable, verifiable tensor datasets (DD trajectories, generated samples).

Layout of a dataset folder::

    DIR/meta.json                    what the data is (teacher, weight hash, settings, seed, num) — written first
    DIR/shard-00003.safetensors      tensors of global indices [3·S, 4·S), first dimension = sample
    DIR/shard-00003.json             {"index", "start", "stop", "sha256", "bytes"} — written after the shard
    DIR/manifest.json                all shards, written by `finalize()` once every shard is present

Shard boundaries depend only on (num, shard_size), never on batch size or the number of processes; each shard's
content must be a pure function of its global indices (the caller's job: per-sample generators keyed by index).
A shard counts as done when its sidecar exists and names the shard file's SHA-256, so a process killed at any
moment (even `kill -9`) loses at most the shards it was writing, and a rerun redoes exactly those.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import torch

from ardistill.errors import ArdistillError
from ardistill.io import atomic_save_safetensors, atomic_write_json, sha256_file

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ShardPlan:
    num: int
    shard_size: int

    @property
    def num_shards(self) -> int:
        return (self.num + self.shard_size - 1) // self.shard_size

    def range(self, index: int) -> tuple[int, int]:
        start = index * self.shard_size
        return start, min(start + self.shard_size, self.num)

    def for_rank(self, rank: int, world: int) -> list[int]:
        """Shards of one process: round-robin, so every rank gets a similar amount of work."""
        return list(range(rank, self.num_shards, world))


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


class ShardedDataset:
    """A folder of shards. Create with `ShardedDataset.create(dir, meta, num, shard_size)` (or reopen the same)."""

    def __init__(self, root: str | os.PathLike, meta: dict, plan: ShardPlan):
        self.root = Path(root)
        self.meta = meta
        self.plan = plan

    # ------------------------------------------------------------------ creation / reopening
    @classmethod
    def create(cls, root: str | os.PathLike, meta: Mapping, num: int, shard_size: int) -> "ShardedDataset":
        """Open `root` for writing; if it already holds a dataset, it must be the same one (same meta and plan)."""
        root = Path(root)
        if num < 1 or shard_size < 1:
            raise ArdistillError(f"need num ≥ 1 and shard size ≥ 1, got {num} and {shard_size}")
        want = {"format": FORMAT_VERSION, "num": num, "shard_size": shard_size, "meta": _jsonable(meta)}
        meta_path = root / "meta.json"
        if meta_path.is_file():
            have = json.loads(meta_path.read_text())
            if have != want:
                diff = [k for k in set(have.get("meta", {})) | set(want["meta"]) if have.get("meta", {}).get(k) != want["meta"].get(k)]
                for k in ("num", "shard_size"):
                    if have.get(k) != want[k]:
                        diff.append(k)
                raise ArdistillError(f"{root} already holds a different dataset (differs in: {', '.join(sorted(diff)) or 'format'}); "
                                     "resume with the same settings or choose another folder")
        else:
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ArdistillError(f"cannot create {root}: {e.strerror or e}") from None
            atomic_write_json(meta_path, want)
        return cls(root, dict(want["meta"]), ShardPlan(num, shard_size))

    @classmethod
    def open(cls, root: str | os.PathLike) -> "ShardedDataset":
        root = Path(root)
        meta_path = root / "meta.json"
        if not meta_path.is_file():
            raise ArdistillError(f"{root} is not a dataset folder (no meta.json)")
        have = json.loads(meta_path.read_text())
        if have.get("format") != FORMAT_VERSION:
            raise ArdistillError(f"{root}: unsupported dataset format {have.get('format')!r}")
        return cls(root, have["meta"], ShardPlan(have["num"], have["shard_size"]))

    # ------------------------------------------------------------------ writing
    def shard_path(self, index: int) -> Path:
        return self.root / f"{shard_name(index)}.safetensors"

    def sidecar_path(self, index: int) -> Path:
        return self.root / f"{shard_name(index)}.json"

    def is_done(self, index: int, *, check_hash: bool = False) -> bool:
        """The shard and its sidecar exist and agree in size (and, with `check_hash`, in SHA-256)."""
        side = self.sidecar_path(index)
        if not (side.is_file() and self.shard_path(index).is_file()):
            return False
        try:
            info = json.loads(side.read_text())
        except json.JSONDecodeError:
            return False
        if info.get("bytes") != self.shard_path(index).stat().st_size:
            return False
        return not check_hash or info.get("sha256") == sha256_file(self.shard_path(index))

    def pending(self, rank: int = 0, world: int = 1) -> list[int]:
        """Shards of this rank still to (re)make: missing, partly written, or corrupted since they were written
        (every done shard is re-hashed — cheap next to making it — so a resumed job repairs silent corruption)."""
        return [i for i in self.plan.for_rank(rank, world) if not self.is_done(i, check_hash=True)]

    def write_shard(self, index: int, tensors: Mapping[str, torch.Tensor]) -> None:
        start, stop = self.plan.range(index)
        for k, v in tensors.items():
            if v.shape[0] != stop - start:
                raise ValueError(f"shard {index}: tensor {k!r} has {v.shape[0]} rows, expected {stop - start}")
        path = self.shard_path(index)
        # No safetensors metadata: its key order is not deterministic, and shard bytes must be.
        atomic_save_safetensors(tensors, path)
        atomic_write_json(self.sidecar_path(index), {"index": index, "start": start, "stop": stop,
                                                     "sha256": sha256_file(path), "bytes": path.stat().st_size})

    def finalize(self) -> dict:
        """Write manifest.json (all shards with their SHA-256); every shard must be done."""
        missing = [i for i in range(self.plan.num_shards) if not self.is_done(i)]
        if missing:
            raise ArdistillError(f"{self.root}: {len(missing)} shards not written yet (first: {missing[0]}); run the job again to finish them")
        shards = [json.loads(self.sidecar_path(i).read_text()) | {"file": self.shard_path(i).name} for i in range(self.plan.num_shards)]
        manifest = {"format": FORMAT_VERSION, "num": self.plan.num, "shard_size": self.plan.shard_size, "meta": self.meta, "shards": shards}
        atomic_write_json(self.root / "manifest.json", manifest)
        return manifest

    # ------------------------------------------------------------------ reading / checking
    def read_shard(self, index: int) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        return load_file(str(self.shard_path(index)))

    def iter_shards(self) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        for i in range(self.plan.num_shards):
            yield i, self.read_shard(i)

    def load_all(self) -> dict[str, torch.Tensor]:
        parts = [t for _, t in self.iter_shards()]
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    def verify(self) -> list[str]:
        """Problems found (empty = intact): missing shards, wrong sizes, SHA-256 mismatches, manifest disagreement."""
        problems = []
        manifest_path = self.root / "manifest.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None
        if manifest is None:
            problems.append("manifest.json missing (dataset not finished: run the job again)")
        for i in range(self.plan.num_shards):
            path, side = self.shard_path(i), self.sidecar_path(i)
            if not path.is_file():
                problems.append(f"{path.name}: missing")
                continue
            expected = None
            if manifest is not None and i < len(manifest["shards"]):
                expected = manifest["shards"][i]["sha256"]
            elif side.is_file():
                expected = json.loads(side.read_text()).get("sha256")
            if expected is None:
                problems.append(f"{path.name}: no recorded SHA-256 (incomplete write)")
            elif sha256_file(path) != expected:
                problems.append(f"{path.name}: SHA-256 mismatch (corrupted)")
        return problems


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=str))
