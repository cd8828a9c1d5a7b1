"""A small, resumable training loop.

- Batches are a pure function of the step index (`get_batch(step)`), so a resumed run sees exactly the batches
  an uninterrupted run would have seen: resume is bit-exact on the same machine.
- AdamW, linear warm-up then cosine/linear decay, gradient clipping, gradient accumulation, optional EMA,
  optional autocast (bf16/fp16) where the device supports it.
- Checkpoints (`<out>/checkpoint.pt`) are written atomically every `ckpt_every` steps, at the end, and on
  Ctrl-C / SIGTERM; `resume=True` continues from the last one. A non-finite loss stops the run with the last
  good checkpoint kept and a one-line error.
- Under torchrun (`ardistill.distributed` initialised, world W > 1) it is data-parallel: every rank takes its 1/W
  slice of each global batch, gradients are averaged over ranks before clipping and the step (one all-reduce per
  optimiser step, as DDP with `no_sync` over the accumulation steps), rank 0 writes the checkpoints, and a
  checkpoint resumes on any W. The per-step data stays a pure function of the step, so the run does not depend on W
  up to floating-point noise. Gradients are all-reduced explicitly rather than through the DistributedDataParallel
  wrapper because the loss functions close over the bare module (and call its methods other than `forward`), which
  DDP's reducer would not see. A loss that is a mean over a per-batch count (tokens, noise positions) reports that
  count as `metrics["loss_weight"]`; the ranks' losses are then weighted so the step equals the single-process one.
"""

from __future__ import annotations

import hashlib
import json
import math
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import torch

from ardistill import distributed
from ardistill.errors import ArdistillError
from ardistill.io import atomic_torch_save


@dataclass
class TrainConfig:
    steps: int = 1000
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 0
    schedule: Literal["cosine", "linear", "constant"] = "cosine"  # after warm-up; decays to min_lr_ratio·lr
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0  # 0 = off
    grad_accum: int = 1
    ema_decay: float = 0.0  # 0 = no EMA
    ckpt_every: int = 500
    log_every: int = 10
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    seed: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d


class EMA:
    """Exponential moving average of a module's floating-point parameters and buffers."""

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        # Floating-point tensors only, and never ones holding ±inf (attention masks): their average would be NaN.
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()
                       if v.is_floating_point() and bool(torch.isfinite(v).all())}

    @torch.no_grad()
    def update(self, module: torch.nn.Module, step: int) -> None:
        # Warm-up of the decay (as in timm/diffusers): short runs are not dominated by the initial weights.
        d = min(self.decay, (1 + step) / (10 + step))
        for k, v in module.state_dict().items():
            if k in self.shadow:
                self.shadow[k].lerp_(v.detach(), 1 - d)

    def copy_to(self, module: torch.nn.Module) -> None:
        sd = module.state_dict()
        sd.update({k: v.clone() for k, v in self.shadow.items()})
        module.load_state_dict(sd)

    def state_dict(self) -> dict:
        return dict(self.shadow)

    def load_state_dict(self, sd: dict) -> None:
        for k, v in sd.items():
            self.shadow[k].copy_(v)


@dataclass
class TrainResult:
    step: int
    last_loss: float
    losses: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    evals: list[dict] = field(default_factory=list)


def lr_at(cfg: TrainConfig, step: int) -> float:
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    span = max(1, cfg.steps - cfg.warmup_steps)
    frac = min(1.0, (step - cfg.warmup_steps) / span)
    if cfg.schedule == "linear":
        scale = 1 - frac
    elif cfg.schedule == "cosine":
        scale = 0.5 * (1 + math.cos(math.pi * frac))
    else:
        raise ArdistillError(f"unknown lr schedule {cfg.schedule!r}; use cosine, linear or constant")
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * scale)


def batch_seed(*parts) -> int:
    """A 63-bit seed from any parts (a run's seed, a stream's name, the step, the micro-step): the seeds of batches
    that are pure functions of their step, independent across streams."""
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "little") & (2**63 - 1)


def _append_log(path: Path, record: dict) -> None:
    """Append one JSON line (a log, not state: resume reads the checkpoint, so a torn last line is harmless)."""
    with open(path, "a") as f:
        f.write(json.dumps(record, default=float) + "\n")


def _stop_on_nan(value: float, step: int, ckpt_path: Path) -> None:
    last = f"step {int(torch.load(ckpt_path, weights_only=True)['step'])}" if ckpt_path.is_file() else "none"
    raise ArdistillError(f"loss became {value} at step {step}; stopped. Last good checkpoint: {last} ({ckpt_path})")


def _autocast(device: torch.device, mode: str):
    if mode == "no":
        return torch.autocast(device.type, enabled=False)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[mode]
    return torch.autocast(device.type, dtype=dtype)


def rank_slice(batch: Any, rank: int, world: int) -> Any:
    """This rank's contiguous 1/world of a global batch: every tensor whose first dimension is the batch size
    (that of the first tensor found in `batch`, a tensor / tuple / list / dict) is sliced; the rest is passed on."""
    if world == 1:
        return batch
    size = _first_dim(batch)
    if size is None or size % world:
        raise ArdistillError(f"the global batch ({size} samples per micro-step) must be divisible by the world size {world}")
    start, stop = distributed.split_range(size, rank, world)

    def cut(x):
        if isinstance(x, torch.Tensor):
            return x[start:stop] if x.dim() and x.shape[0] == size else x
        if isinstance(x, dict):
            return {k: cut(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return type(x)(cut(v) for v in x)
        return x

    return cut(batch)


def _first_dim(batch: Any) -> int | None:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else None
    for v in batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else ():
        n = _first_dim(v)
        if n is not None:
            return n
    return None


def train_loop(
    *,
    model: torch.nn.Module,
    loss_fn: Callable[[Any, int], tuple[torch.Tensor, dict]],
    get_batch: Callable[[int, int], Any],
    cfg: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    params: list[torch.nn.Parameter] | None = None,
    eval_fn: Callable[[torch.nn.Module, int], dict] | None = None,
    eval_every: int = 0,
    progress: bool = True,
    description: str = "training",
    extra_state: dict | None = None,
    ema_module: torch.nn.Module | None = None,
    ema_step: Callable[[int], int | None] | None = None,
) -> TrainResult:
    """Train `model` for `cfg.steps` optimiser steps.

    Args:
        loss_fn: (batch, step) → (scalar loss, metrics dict of floats). Runs under autocast when enabled.
        get_batch: (step, micro_step) → batch; must be a pure function of its arguments (resume exactness).
        params: parameters to optimise (default: all that require grad).
        eval_fn: (model with EMA weights if any, step) → metrics, run every `eval_every` steps and at the end.
        extra_state: JSON-able facts stored in the checkpoint (recipe, teacher name, ...).
        ema_module: the part of `model` the EMA (cfg.ema_decay > 0) averages, evaluates and returns (default: all of
            it); DD2 averages its generator, not the guidance network trained beside it.
        ema_step: (optimiser steps done) → the EMA's own step count for its progressive rate, or None to skip the
            update after that step (default: every step, counted as optimiser steps); DD2 updates after generator
            steps only.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / "checkpoint.pt"
    log_path = out_dir / "train_log.jsonl"  # one JSON line per log step: follow an unattended run with `tail -f`
    device = next(model.parameters()).device
    params = params if params is not None else [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=cfg.betas,
    )
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.mixed_precision == "fp16")
    ema_module = model if ema_module is None else ema_module
    ema = EMA(ema_module, cfg.ema_decay) if cfg.ema_decay > 0 else None
    result = TrainResult(step=0, last_loss=float("nan"))
    start = 0
    prior_seconds = 0.0  # training time of the earlier segments of a resumed run (counted up to their checkpoints)
    rank, world = distributed.rank(), distributed.world()
    progress = progress and distributed.is_main()
    if resume and ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if ema is not None and state.get("ema"):
            ema.load_state_dict(state["ema"])
        start = int(state["step"])
        if "rng" in state:
            torch.set_rng_state(state["rng"].cpu())
        result.losses = [tuple(x) for x in state.get("losses", [])]
        result.evals = list(state.get("evals", []))
        prior_seconds = float(state.get("seconds", 0.0))
        # A finished run resumed takes no step: its result (and the student card written from it) keeps the loss
        # of its last step. Checkpoints from before "last_loss" was stored fall back to the last logged loss.
        result.last_loss = float(state.get("last_loss", result.losses[-1][1] if result.losses else float("nan")))
    elif ckpt_path.is_file() and not resume:
        raise ArdistillError(f"{ckpt_path} exists; pass --resume to continue it or choose another output folder")
    else:
        torch.manual_seed(cfg.seed + rank)  # rank 0 draws what a single process draws
    t0 = time.perf_counter()
    distributed.broadcast_module_(model)  # every rank starts from rank 0's weights, as DDP does

    def save(step: int) -> None:
        if distributed.is_main():
            _write(step)
        distributed.barrier()

    def _write(step: int) -> None:
        atomic_torch_save(
            {"model": model.state_dict(), "optimizer": opt.state_dict(), "ema": ema.state_dict() if ema else {},
             "step": step, "config": cfg.to_dict(), "losses": result.losses, "evals": result.evals,
             "last_loss": result.last_loss,
             "rng": torch.get_rng_state(), "extra": extra_state or {},
             "seconds": prior_seconds + time.perf_counter() - t0},
            ckpt_path,
        )

    def run_eval(step: int) -> None:
        if eval_fn is None:
            return
        if not distributed.is_main():  # rank 0 evaluates, the others receive its numbers
            result.evals.append(distributed.broadcast_object(None))
            return
        if ema is not None:
            backup = {k: v.clone() for k, v in ema_module.state_dict().items()}
            ema.copy_to(ema_module)
        model.eval()
        metrics = {"step": step, **eval_fn(model, step)}
        model.train()
        if ema is not None:
            ema_module.load_state_dict(backup)
        result.evals.append(distributed.broadcast_object(metrics))
        _append_log(log_path, {"eval": metrics, "time": time.time()})

    # Ctrl-C / SIGTERM: finish the current optimiser step, checkpoint, then stop (a second Ctrl-C stops at once).
    stop = {"signal": None}
    old_handlers: dict = {}

    def on_signal(signum, frame):
        if stop["signal"] is not None:
            raise KeyboardInterrupt
        stop["signal"] = signum

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            old_handlers[sig] = signal.signal(sig, on_signal)
        except ValueError:  # not in the main thread
            pass
    model.train()
    step = start
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[info]}")]
    try:
        with Progress(*columns, disable=not progress, transient=False) as bar:
            task = bar.add_task(description, total=cfg.steps, completed=start, info="")
            while step < cfg.steps:
                for g in opt.param_groups:
                    g["lr"] = lr_at(cfg, step)
                total, metrics_acc = 0.0, {}
                for micro in range(cfg.grad_accum):
                    batch = rank_slice(get_batch(step, micro), rank, world)
                    with _autocast(device, cfg.mixed_precision):
                        loss, metrics = loss_fn(batch, step)
                    metrics = dict(metrics)
                    weight = metrics.pop("loss_weight", None)
                    # Rank share of the global loss: w_r / Σw (weighted mean) or 1 / W (plain mean); × W since
                    # the gradients are averaged over ranks. 1 in a single process.
                    share = 1.0 / world if weight is None or world == 1 else \
                        float(weight) / float(distributed.all_reduce_sum(torch.tensor([float(weight)]))[0])
                    if world == 1 and not torch.isfinite(loss.detach()):
                        _stop_on_nan(loss.item(), step, ckpt_path)
                    scaled = loss / cfg.grad_accum if world == 1 else loss * (share * world / cfg.grad_accum)
                    scaler.scale(scaled).backward()
                    total += loss.item() * share / cfg.grad_accum
                    for k, v in metrics.items():
                        metrics_acc[k] = metrics_acc.get(k, 0.0) + float(v) / cfg.grad_accum / world
                if world > 1:  # one collective: global loss, stop request, metrics (means over ranks)
                    reduced = distributed.all_reduce_sum(torch.tensor([total, float(stop["signal"] is not None),
                                                                       *metrics_acc.values()], dtype=torch.float64))
                    total, stop_requested = float(reduced[0]), bool(reduced[1] > 0)
                    metrics_acc = dict(zip(metrics_acc, reduced[2:].tolist()))
                    if not math.isfinite(total):
                        _stop_on_nan(total, step, ckpt_path)
                    distributed.average_gradients(params)
                else:
                    stop_requested = stop["signal"] is not None
                if cfg.grad_clip > 0:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                scaler.step(opt)
                scaler.update()
                opt.zero_grad(set_to_none=True)
                step += 1
                ema_count = step if ema_step is None else ema_step(step)
                if ema is not None and ema_count is not None:
                    ema.update(ema_module, ema_count)
                result.last_loss = total
                if step % cfg.log_every == 0 or step == cfg.steps:
                    result.losses.append((step, total))
                    rate = (step - start) / max(1e-9, time.perf_counter() - t0)
                    extra = " ".join(f"{k} {v:.3g}" for k, v in list(metrics_acc.items())[:3])
                    bar.update(task, info=f"loss {total:.4f} {extra} {rate:.2f} it/s")
                    if distributed.is_main():
                        _append_log(log_path, {"step": step, "loss": total, **metrics_acc,
                                               "lr": opt.param_groups[0]["lr"], "it_per_s": rate,
                                               "time": time.time()})
                bar.update(task, completed=step)
                if eval_every and step % eval_every == 0 and step < cfg.steps:
                    run_eval(step)
                if step % cfg.ckpt_every == 0 or step == cfg.steps:
                    save(step)
                if stop_requested:
                    save(step)
                    raise KeyboardInterrupt
        if eval_fn is not None and (not result.evals or result.evals[-1]["step"] != step):
            run_eval(step)
            save(step)
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
    result.step = step
    result.seconds = prior_seconds + time.perf_counter() - t0
    if ema is not None:
        ema.copy_to(ema_module)
    return result
