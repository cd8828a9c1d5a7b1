"""DD trajectory datasets: the teacher's own samples, each token chosen by the flow map from that position's noise.

A dataset is a `ShardedDataset` folder (see `ardistill.shards`). Every shard holds, for its global sample ids:

    "tokens"  [n, L] int16 (int32 when V > 32767)   token ids in the teacher's order (VAR: scales coarse → fine)
    "labels"  [n] int64                              class ids = trajectory_labels(seed, index, num_classes)
    "index"   [n] int64                              global sample ids

The noise is not stored: ε = trajectory_noise(seed, index, L, C) regenerates it bit-exactly. meta.json records the
teacher (name, family, SHA-256 of its weights), its shapes, the sampling settings, the flow-map settings and the seed;
reopening a folder with anything different is a one-line error.

Determinism: a sample's noise and label depend only on (seed, index); the flow map is per position; the shards are
fixed by (num, shard_size) and each is made by the same batches whichever process owns it, so the dataset does not
depend on the number of processes. Batch size changes only the teacher's fp32 arithmetic (GEMM blocking), which can
move a token only when its noise lies within rounding error of a region boundary (measured: identical shards).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ardistill import distributed
from ardistill.errors import BadArgumentError
from ardistill.io import sha256_tensors
from ardistill.methods.dd.flow import FlowMapConfig, flow_map_tokens
from ardistill.methods.dd.noise import trajectory_labels, trajectory_noise
from ardistill.shards import ShardedDataset

DATASET_KIND = "dd-trajectories"
DATASET_VERSION = 1


# ------------------------------------------------------------------------------------------------------ settings
def resolve_sampling(teacher, **overrides) -> dict:
    """The teacher's sampling settings with overrides (cfg, top_k, top_p, temperature, cfg_interval), validated by the
    teacher, as recorded in meta.json."""
    return teacher.resolve_sampling(**overrides)


def teacher_weight_hash(teacher) -> str:
    """SHA-256 (`ardistill.io.sha256_tensors`) over the state dicts of every module of the teacher, keys prefixed
    with the attribute name (VAR: transformer., vae.; LlamaGen: gpt., vq.); transient KV caches excluded."""
    tensors = {}
    for attr, module in sorted(vars(teacher).items()):
        if isinstance(module, torch.nn.Module):
            tensors.update({f"{attr}.{k}": v for k, v in module.state_dict().items() if "kv_cache" not in k})
    return sha256_tensors(tensors)


def code_dim(teacher) -> int:
    return int(teacher.codebook.shape[1])


def tokens_dtype(vocab_size: int) -> torch.dtype:
    return torch.int16 if vocab_size <= 32767 else torch.int32


def trajectory_meta(teacher, sampling: dict, flow: FlowMapConfig, seed: int, weight_hash: str | None = None) -> dict:
    """What a trajectory dataset is: everything its content depends on (num and shard_size are kept by the shards)."""
    return {
        "kind": DATASET_KIND,
        "version": DATASET_VERSION,
        "teacher": teacher.name,
        "family": teacher.family,
        "weight_sha256": weight_hash or teacher_weight_hash(teacher),
        "tokens_per_image": int(teacher.tokens_per_image),
        "code_dim": code_dim(teacher),
        "vocab_size": int(teacher.vocab_size),
        "num_classes": int(teacher.num_classes),
        "tokens_dtype": str(tokens_dtype(teacher.vocab_size)).removeprefix("torch."),
        "sampling": sampling,
        "flow": flow.to_dict(),
        "seed": int(seed),
        "noise": "trajectory_noise(seed, index, tokens_per_image, code_dim): fp32 N(0, I) on the CPU",
        "labels": "trajectory_labels(seed, index, num_classes): uniform",
    }


# ------------------------------------------------------------------------------------------------------ one batch
class FlowTokenChooser:
    """The `choose_tokens` hook of the samplers: tokens from the flow map of each position's sampling logits.

    noise: [B, L, C] of the batch (on the teacher's device); codebook: [V, C] as the student sees it.
    `seconds` accumulates the time spent in the flow map.
    """

    def __init__(self, noise: torch.Tensor, codebook: torch.Tensor, flow: FlowMapConfig):
        self.noise, self.codebook, self.flow = noise, codebook, flow
        self.seconds = 0.0

    def __call__(self, logits: torch.Tensor, step: int, positions: range) -> torch.Tensor:
        B, l, V = logits.shape
        eps = self.noise[:, positions.start:positions.stop].reshape(B * l, -1)
        _sync(logits.device)
        t0 = time.perf_counter()
        idx = flow_map_tokens(logits.reshape(B * l, V).float(), eps, self.codebook, self.flow).view(B, l)
        _sync(logits.device)
        self.seconds += time.perf_counter() - t0
        return idx


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def teacher_flow_tokens(teacher, labels: torch.Tensor, noise: torch.Tensor, sampling: dict, chooser) -> torch.Tensor:
    """Run the teacher's step sampler with `chooser` as its token choice: labels [B], noise [B, L, C] → tokens [B, L]."""
    with teacher.start_steps(labels, **sampling) as run:
        return run.run(choose=chooser)


# ------------------------------------------------------------------------------------------------------ datasets
@dataclass
class TrajectoryRun:
    """What one call did: shards written by this process, samples, seconds (total and inside the flow map)."""

    root: Path
    shards_written: list[int]
    samples: int
    seconds: float
    flow_seconds: float
    finalized: bool

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0


def generate_trajectories(
    teacher,
    out_dir: str | os.PathLike,
    *,
    num: int,
    seed: int = 0,
    shard_size: int = 1024,
    batch_size: int = 16,
    cfg: float | None = None,
    top_k=None,
    top_p: float | None = None,
    temperature=None,
    cfg_interval: int | None = None,
    flow: FlowMapConfig = FlowMapConfig(),
    rank: int | None = None,
    world: int | None = None,
    progress: bool = True,
) -> TrajectoryRun:
    """Make (or finish) the trajectory dataset of samples [0, num) in `out_dir`; this process makes the shards
    `ShardPlan.for_rank(rank, world)` that are not done yet. The manifest is written once every shard exists.

    Under torchrun (`ardistill.distributed` initialised, rank/world not given) rank 0 lists every shard still to
    make and the ranks split that list round-robin, so a resume with any world size spreads the missing work evenly;
    then a barrier, and rank 0 writes the manifest and verifies every shard.
    Sampling settings default to `teacher.default_sampling`. Safe to kill at any moment and run again.
    """
    collective = rank is None and world is None and distributed.world() > 1
    rank = distributed.rank() if rank is None else rank
    world = distributed.world() if world is None else world
    if batch_size < 1:
        raise BadArgumentError(f"batch size must be ≥ 1, got {batch_size}")
    if not (0 <= rank < world):
        raise BadArgumentError(f"need 0 ≤ rank < world, got rank {rank} of {world}")
    if seed < 0:
        raise BadArgumentError(f"seed must be ≥ 0, got {seed}")
    flow.validate()
    sampling = resolve_sampling(teacher, cfg=cfg, top_k=top_k, top_p=top_p, temperature=temperature, cfg_interval=cfg_interval)
    ds = ShardedDataset.create(out_dir, trajectory_meta(teacher, sampling, flow, seed), num, shard_size)
    todo = distributed.broadcast_object(ds.pending() if distributed.is_main() else None)[rank::world] if collective \
        else ds.pending(rank, world)
    codebook = teacher.codebook.detach().float()
    L, C, device = teacher.tokens_per_image, code_dim(teacher), teacher.device
    out_dtype = tokens_dtype(teacher.vocab_size)
    total = sum(ds.plan.range(i)[1] - ds.plan.range(i)[0] for i in todo)
    samples, flow_seconds, t_start = 0, 0.0, time.perf_counter()
    with _progress(progress and (not collective or distributed.is_main()), total, f"trajectories {teacher.name}") as advance:
        for shard in todo:
            index = torch.arange(*ds.plan.range(shard), dtype=torch.int64)
            labels = trajectory_labels(seed, index, teacher.num_classes)
            parts = []
            for b in range(0, len(index), batch_size):
                chooser = FlowTokenChooser(trajectory_noise(seed, index[b:b + batch_size], L, C).to(device), codebook, flow)
                tokens = teacher_flow_tokens(teacher, labels[b:b + batch_size].to(device), chooser.noise, sampling, chooser)
                parts.append(tokens.to("cpu", out_dtype))
                flow_seconds += chooser.seconds
                samples += tokens.shape[0]
                advance(tokens.shape[0])
            ds.write_shard(shard, {"tokens": torch.cat(parts), "labels": labels, "index": index})
    seconds = time.perf_counter() - t_start
    if collective:
        distributed.barrier()
        finalized = distributed.broadcast_object(_finalize(ds) if distributed.is_main() else None)
    else:
        finalized = _finalize(ds)
    return TrajectoryRun(ds.root, todo, samples, seconds, flow_seconds, finalized)


def _finalize(ds: ShardedDataset) -> bool:
    """Write the manifest if every shard is done (re-hashed), verify, clean leftovers; False if shards are missing."""
    if ds.pending(0, 1):
        return False
    ds.finalize()  # identical content from every process that gets here, written atomically
    problems = ds.verify()
    if problems:
        raise BadArgumentError(f"{ds.root}: {problems[0]} (run the job again to remake it)")
    # Temporary files of shard writes killed midway; with every shard done, nobody is writing one now.
    for stale in ds.root.glob(".shard-*.tmp"):
        stale.unlink(missing_ok=True)
    return True


@contextlib.contextmanager
def _progress(enabled: bool, total: int, description: str):
    if not enabled or total == 0:
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("samples"),
                  TimeRemainingColumn(), transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def open_trajectories(root: str | os.PathLike) -> ShardedDataset:
    """Open a trajectory dataset for reading (`.meta`, `.read_shard(i)`, `.load_all()`); one-line error otherwise."""
    ds = ShardedDataset.open(root)
    if ds.meta.get("kind") != DATASET_KIND:
        raise BadArgumentError(f"{root} is not a DD trajectory dataset (kind {ds.meta.get('kind')!r})")
    return ds


def verify_trajectories(root: str | os.PathLike) -> list[str]:
    """Problems of a trajectory folder, one line each (empty = intact): missing or corrupted shards, no manifest."""
    return open_trajectories(root).verify()


__all__ = ["generate_trajectories", "verify_trajectories", "open_trajectories", "resolve_sampling", "teacher_weight_hash",
           "trajectory_meta", "teacher_flow_tokens", "FlowTokenChooser", "TrajectoryRun", "tokens_dtype"]
