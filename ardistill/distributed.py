"""Multi-process runs through the standard engine: `torchrun` + `torch.distributed` (NCCL on GPUs, gloo on CPU).

`init()` reads the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) and starts
the process group; without it (a plain `ardistill ...`) nothing happens and every helper here behaves as a world of
one process, so callers never branch on "distributed or not". The CLI calls `init()` once and `shutdown()` at exit.

Collective helpers must be called by every rank in the same order (that is how torch.distributed works).
"""

from __future__ import annotations

import datetime
import os
from typing import Any, Iterable

import torch
import torch.distributed as dist

from ardistill.errors import ArdistillError

TIMEOUT_ENV = "ARDISTILL_DIST_TIMEOUT_MIN"  # collective timeout; long, since ranks can wait for a slow rank's shards


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def init() -> None:
    """Start the process group from torchrun's environment (idempotent; a no-op when not launched by torchrun).

    Backend: nccl when CUDA is available (each rank on `cuda:LOCAL_RANK`, made the current device, so
    `--device cuda` means this rank's GPU), else gloo.
    """
    if is_initialized() or not launched_by_torchrun():
        return
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK") if k not in os.environ]
    if missing:
        raise ArdistillError(f"RANK/WORLD_SIZE are set but {', '.join(missing)} is not: launch with torchrun")
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    minutes = float(os.environ.get(TIMEOUT_ENV, "120"))
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=minutes))


def shutdown(*, synchronize: bool = True) -> None:
    """Leave the process group (no-op when there is none). `synchronize`: a barrier first, so no rank tears down its
    connections while another still uses them (gloo can abort then); pass False after an error, when the other
    ranks may never reach it."""
    if is_initialized():
        if synchronize and world() > 1:
            dist.barrier()
        dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world() -> int:
    return dist.get_world_size() if is_initialized() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if world() > 1:
        dist.barrier()


def comm_device() -> torch.device:
    """Where collective tensors must live: this rank's GPU under NCCL, else the CPU."""
    if is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Elementwise sum over ranks of a float tensor (returned on the tensor's own device)."""
    if world() == 1:
        return values
    buf = values.detach().to(comm_device(), torch.float64).clone()
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return buf.to(values.device, values.dtype)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """`obj` of rank `src` on every rank (picklable objects)."""
    if world() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj: Any, dst: int = 0) -> list | None:
    """[obj of rank 0, obj of rank 1, …] on rank `dst`; None elsewhere."""
    if world() == 1:
        return [obj]
    out = [None] * world() if rank() == dst else None
    dist.gather_object(obj, out, dst=dst)
    return out


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Mean of every parameter's `.grad` over ranks, in one flat buffer per dtype (what DDP's reducer computes).

    Parameters without a gradient on this rank take part with zeros, so every rank sends the same buffer layout;
    a parameter no rank used keeps `.grad = None`, as in one process (the optimiser then skips it: a zero gradient
    would still move it through Adam's momentum and weight decay).
    """
    if world() == 1:
        return
    params = [p for p in params]
    used = torch.tensor([float(p.grad is not None) for p in params], dtype=torch.float32, device=comm_device())
    dist.all_reduce(used, op=dist.ReduceOp.SUM)
    unused_everywhere = [p for p, u in zip(params, used.tolist()) if u == 0]
    params = [p for p, u in zip(params, used.tolist()) if u > 0]
    for p in unused_everywhere:
        p.grad = None
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    by_dtype: dict[torch.dtype, list[torch.nn.Parameter]] = {}
    for p in params:
        by_dtype.setdefault(p.grad.dtype, []).append(p)
    for group in by_dtype.values():
        flat = torch.cat([p.grad.reshape(-1) for p in group]).to(comm_device())
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat = flat.div_(world()).to(group[0].grad.device)
        offset = 0
        for p in group:
            n = p.grad.numel()
            p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
            offset += n


def broadcast_module_(module: torch.nn.Module, src: int = 0) -> None:
    """Copy rank `src`'s parameters and buffers into every rank's module (identical start, as DDP does)."""
    if world() == 1:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        buf = t.detach().to(comm_device()).clone()
        dist.broadcast(buf, src=src)
        with torch.no_grad():
            t.copy_(buf.to(t.device))


def split_range(n: int, part: int, parts: int) -> tuple[int, int]:
    """Contiguous, balanced [start, stop) of part `part` of `parts` over range(n) (first parts one longer)."""
    base, extra = divmod(n, parts)
    start = part * base + min(part, extra)
    return start, start + base + (1 if part < extra else 0)


__all__ = ["init", "shutdown", "rank", "world", "local_rank", "is_main", "barrier", "launched_by_torchrun", "is_initialized",
           "all_reduce_sum", "broadcast_object", "gather_objects", "average_gradients", "broadcast_module_", "split_range",
           "comm_device"]
