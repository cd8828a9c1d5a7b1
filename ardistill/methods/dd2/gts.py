"""DD2's initialisation (spec §3): AR-diffusion tuning with the Ground-Truth-Score (GTS) loss, family-generic.

The teacher's classification head is replaced by the MLP head; on teacher samples, at every position i and a random
t, the head's clean-token prediction is fitted to the teacher's closed-form one,

    L_GTS = mean over positions, draws of ‖ x̂0_net(q_i^t, t, f_i) − x̂0_T(q_i^t, t; p_i) ‖²,   q_i^t = (1 − t)·q_i + t·ε,

where p_i is the teacher's sampling distribution at position i on the sample's own prefix (one teacher-forced pass
gives every position's p) and x̂0_T its posterior mean (`score.clean_token_prediction`). In x̂0 terms, as every DD2
loss here (decision 1); matching x̂0 matches the score s = ((1 − t)·x̂0 − x)/t². The exact posterior mean is the
minimiser of plain denoising too, but as a target it has no sampling noise from the clean token.

Phases (the paper, VAR): the head alone (backbone frozen), then the whole model. The tuned model initialises both the
generator and the guidance network.

A family adapter supplies: `clean(tokens)`, `sampling_probs(labels, tokens)`, `sample_teacher(labels, seed)`,
`codebook` (network space), `num_classes`, `tokens_per_image`, `code_dim`, `device` (see `var.VARFamily`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from ardistill.methods.dd2.losses import sample_t
from ardistill.methods.dd2.score import clean_token_prediction, log_probs_from_probs


@dataclass
class TeacherPool:
    """Teacher samples with their per-position sampling distributions: labels `[N]`, tokens `[N, L]`, probs
    `[N, L, V]` fp32."""

    labels: torch.Tensor
    tokens: torch.Tensor
    probs: torch.Tensor


@torch.no_grad()
def make_teacher_pool(family, num: int, *, seed: int = 0, batch_size: int = 64, keep_probs: bool = True,
                      progress: bool = False) -> TeacherPool:
    """`num` class-balanced teacher samples (label = index % classes, seed of the batch at index i: seed·1_000_003 + i)
    and their teacher-forced sampling distributions (`keep_probs=False`: probs left empty, `[0]`)."""
    from rich.progress import Progress

    labels = torch.arange(num) % max(1, family.num_classes)
    tokens, probs = [], []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("teacher pool", total=num)
        for start in range(0, num, batch_size):
            lab = labels[start:start + batch_size]
            tok = family.sample_teacher(lab, seed * 1_000_003 + start)
            tokens.append(tok.cpu())
            if keep_probs:
                probs.append(family.sampling_probs(lab, tok).cpu())
            bar.update(task, advance=len(lab))
    return TeacherPool(labels, torch.cat(tokens), torch.cat(probs) if keep_probs else torch.zeros(0))


def gts_targets(family, probs: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The teacher's clean-token prediction x̂0_T `[N, L, C]` at noisy tokens x `[N, L, C]`, t `[N, L]`, from its
    per-position sampling distributions probs `[N, L, V]` (zeros allowed)."""
    return clean_token_prediction(log_probs_from_probs(probs), family.codebook, x, t)


def gts_loss(net, family, labels: torch.Tensor, tokens: torch.Tensor, probs: torch.Tensor, *, t: torch.Tensor,
             noise: torch.Tensor, backbone_grad: bool = True) -> tuple[torch.Tensor, dict]:
    """L_GTS on a batch: labels `[B]`, tokens `[B, L]`, probs `[B, L, V]`; t `[m·B, L]`, noise `[m·B, L, C]` (draw r of
    sample b is row r·B + b). The backbone runs once per sample (without gradient when `backbone_grad` is False)."""
    B = tokens.shape[0]
    m = noise.shape[0] // B
    clean = family.clean(tokens)
    with torch.set_grad_enabled(torch.is_grad_enabled() and backbone_grad):
        f = net.features(labels, clean)
    clean_m = clean.repeat(m, 1, 1)
    x = (1 - t)[..., None] * clean_m + t[..., None] * noise
    with torch.no_grad():
        target = gts_targets(family, probs.repeat(m, 1, 1), x, t)
    pred = net.denoise(x, t, f.repeat(m, 1, 1))
    loss = ((pred - target) ** 2).sum(-1).mean()
    return loss, {"gts": float(loss.detach())}


@dataclass
class GTSConfig:
    batch_size: int = 32
    head_steps: int = 300  # phase 1: the head alone
    full_steps: int = 200  # phase 2: the whole model
    noise_draws: int = 4  # t / ε draws per sample and position
    lr_head: float = 1e-3
    lr_full: float = 2e-4
    warmup_steps: int = 20  # per phase
    t_loc: float = 0.0
    t_scale: float = 1.0
    t_min: float = 0.02
    t_max: float = 0.98
    betas: tuple[float, float] = (0.9, 0.95)
    seed: int = 0


@dataclass
class GTSResult:
    history: list[dict] = field(default_factory=list)  # {"phase", "step", "gts", "seconds"}
    seconds: float = 0.0


def train_gts(net, family, pool: TeacherPool, cfg: GTSConfig = GTSConfig(), *, log_every: int = 25,
              time_budget: float | None = None, log=print) -> GTSResult:
    """Tune `net` in place on `pool` (head, then everything); all draws from one CPU generator seeded by cfg.seed."""
    rng = torch.Generator().manual_seed(cfg.seed)
    dev = family.device
    L, C = family.tokens_per_image, family.code_dim
    result = GTSResult()
    t0 = time.perf_counter()
    for phase, steps, lr, params in (("head", cfg.head_steps, cfg.lr_head, list(net.head.parameters())),
                                     ("full", cfg.full_steps, cfg.lr_full, [p for p in net.parameters() if p.requires_grad])):
        if steps <= 0:
            continue
        opt = torch.optim.Adam(params, lr=lr, betas=cfg.betas)
        for k in range(steps):
            for group in opt.param_groups:
                group["lr"] = lr * min(1.0, (k + 1) / max(1, cfg.warmup_steps))
            idx = torch.randint(pool.tokens.shape[0], (cfg.batch_size,), generator=rng)
            m = cfg.noise_draws
            t = sample_t((m * cfg.batch_size, L), generator=rng, loc=cfg.t_loc, scale=cfg.t_scale, t_min=cfg.t_min,
                         t_max=cfg.t_max, device=dev)
            noise = torch.randn(m * cfg.batch_size, L, C, generator=rng).to(dev)
            loss, metrics = gts_loss(net, family, pool.labels[idx].to(dev), pool.tokens[idx].to(dev), pool.probs[idx].to(dev),
                                     t=t, noise=noise, backbone_grad=phase == "full")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if (k + 1) % log_every == 0 or k + 1 == steps:
                row = {"phase": phase, "step": k + 1, **metrics, "seconds": time.perf_counter() - t0}
                result.history.append(row)
                log(row)
            if time_budget is not None and time.perf_counter() - t0 > time_budget:
                break
    net.zero_grad(set_to_none=True)
    result.seconds = time.perf_counter() - t0
    return result


__all__ = ["TeacherPool", "make_teacher_pool", "gts_targets", "gts_loss", "GTSConfig", "GTSResult", "train_gts"]
