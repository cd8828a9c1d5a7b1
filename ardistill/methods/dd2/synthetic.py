"""A synthetic AR teacher with a known joint, and small DD2 networks for it (spec §5).

DD2's Proposition 1: if every position's conditional score matches the teacher's on the generator's own prefix, the
joints match. This module makes that testable on CPU in seconds to minutes:

- `SyntheticARTeacher`: V codes in R² (a regular polygon, radius 1 by default), L positions, conditionals
  p(q_i | q_<i) defined for *every* prefix (also impossible ones, as a real AR teacher's are), each with only `allowed` of the V codes
  non-zero (Dirichlet weights), so the joint has allowed^L sequences of non-zero probability out of V^L.
- `NoiseToTokens`: the one-step generator, an MLP (or residual blocks) over the whole flattened noise sequence
  ε `[B, L, 2]` → q `[B, L, 2]` in one forward (q = ε − v_θ(ε), the velocity parameterisation of spec §2), no sampling loop.
- `PrefixGuidance`: the guidance network ψ(x, t, prefix) → x̂0, an MLP per position on (x, logit t, the position,
  one-hots of the nearest codes of the prefix q_<i).
- `train_synthetic`: DD2 alternating training (`DD2Trainer`) against the teacher scoring the generator's own prefix,
  or (`broken=True`) a prefix sampled from the teacher — which cannot teach the dependence between positions
  (measured: it stays at or above the independent-positions distance, docs/dd2.md).
- `joint_tv`: the total-variation distance of samples' nearest-code sequences to the exact joint.

Units: codes and tokens are points in R² (code dimension C = 2); TV is in [0, 1].
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ardistill.methods.dd2.alternating import DD2Config, DD2Trainer


class SyntheticARTeacher:
    """Exact AR teacher: `conditionals[i]` is `[V]*i + [V]` (probabilities of q_i for every prefix q_<i)."""

    def __init__(self, codebook: torch.Tensor, conditionals: list[torch.Tensor]):
        self.codebook = codebook  # [V, 2] float32
        self.conditionals = conditionals  # float64
        self.V, self.L = codebook.shape[0], len(conditionals)
        joint = conditionals[0]
        for i in range(1, self.L):
            joint = joint[..., None] * conditionals[i]
        self.joint = joint  # [V]*L, float64, sums to 1

    @classmethod
    def make(cls, num_codes: int = 6, length: int = 3, allowed: int = 4, concentration: float = 1.0, seed: int = 0,
             radius: float = 1.0) -> "SyntheticARTeacher":
        g = torch.Generator().manual_seed(seed)
        angles = torch.arange(num_codes, dtype=torch.float64) * (2 * math.pi / num_codes)
        codebook = (radius * torch.stack([angles.cos(), angles.sin()], dim=-1)).float()
        conditionals = []
        for i in range(length):
            rows = num_codes ** i
            weights = torch._standard_gamma(torch.full((rows, num_codes), concentration, dtype=torch.float64), generator=g)
            keep = torch.rand(rows, num_codes, generator=g).argsort(dim=-1)[:, :allowed]
            mask = torch.zeros(rows, num_codes, dtype=torch.float64).scatter_(1, keep, 1.0)
            probs = weights * mask
            conditionals.append((probs / probs.sum(-1, keepdim=True)).reshape([num_codes] * (i + 1)))
        return cls(codebook, conditionals)

    def nearest_codes(self, q: torch.Tensor) -> torch.Tensor:
        """`[..., 2]` → `[...]` int64 index of the nearest code."""
        return torch.cdist(q.reshape(-1, q.shape[-1]).float(), self.codebook).argmin(-1).reshape(q.shape[:-1])

    def conditional_probs_of_indices(self, idx: torch.Tensor) -> torch.Tensor:
        """`[B, L]` code indices → `[B, L, V]` float32: row i is p(· | idx_<i) (teacher-forced, causal)."""
        out = [self.conditionals[0].expand(idx.shape[0], self.V)]
        for i in range(1, self.L):
            flat = torch.zeros(idx.shape[0], dtype=torch.long)
            for j in range(i):
                flat = flat * self.V + idx[:, j]
            out.append(self.conditionals[i].reshape(-1, self.V)[flat])
        return torch.stack(out, dim=1).float()

    def conditional_probs(self, q: torch.Tensor) -> torch.Tensor:
        """The `TeacherProbs` callable: clean tokens `[B, L, 2]` → `[B, L, V]`, reading the nearest codes of q."""
        return self.conditional_probs_of_indices(self.nearest_codes(q)).to(q.device)

    def sample_indices(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """`[n, L]` exact ancestral samples."""
        flat = torch.multinomial(self.joint.reshape(-1), n, replacement=True, generator=generator)
        digits = []
        for _ in range(self.L):
            digits.append(flat % self.V)
            flat = flat // self.V
        return torch.stack(digits[::-1], dim=1)

    def sample_independent_indices(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """`[n, L]` each position drawn from its marginal, independently (the best a generator ignoring context can do)."""
        cols = []
        for i in range(self.L):
            others = tuple(j for j in range(self.L) if j != i)
            marginal = self.joint.sum(dim=others) if others else self.joint  # sum(dim=()) would sum everything
            cols.append(torch.multinomial(marginal, n, replacement=True, generator=generator))
        return torch.stack(cols, dim=1)

    def joint_tv(self, idx: torch.Tensor) -> float:
        """Total variation ½ Σ |empirical − exact| over the V^L sequences, for `[N, L]` indices."""
        flat = torch.zeros(idx.shape[0], dtype=torch.long)
        for j in range(self.L):
            flat = flat * self.V + idx[:, j].long()
        counts = torch.bincount(flat, minlength=self.V ** self.L).double()
        return 0.5 * float((counts / idx.shape[0] - self.joint.reshape(-1)).abs().sum())

    def zero_probability_mass(self, idx: torch.Tensor) -> float:
        """Fraction of `[N, L]` index sequences that the teacher never produces."""
        return float((self.joint[tuple(idx.long().T)] == 0).double().mean())


def _mlp(d_in: int, hidden: int, depth: int, d_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = d_in
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), nn.SiLU()]
        d = hidden
    layers.append(nn.Linear(d, d_out))
    return nn.Sequential(*layers)


class _ResidualMLP(nn.Module):
    """in → hidden, then `depth` pre-LayerNorm residual blocks h + W2·SiLU(W1·LN(h)), then LN → out."""

    def __init__(self, d_in: int, hidden: int, depth: int, d_out: int):
        super().__init__()
        self.inp = nn.Linear(d_in, hidden)
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.SiLU(),
                                                  nn.Linear(hidden, hidden)) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


class NoiseToTokens(nn.Module):
    """One-step generator: ε `[B, L, C]` → q = ε − v_θ(ε) `[B, L, C]`, one network over the whole flattened sequence:
    a plain MLP (`blocks="mlp"`, `depth` hidden layers) or `depth` pre-LayerNorm residual blocks (`"residual"`)."""

    def __init__(self, length: int, code_dim: int = 2, hidden: int = 128, depth: int = 3, blocks: str = "mlp"):
        super().__init__()
        if blocks not in ("mlp", "residual"):
            raise ValueError(f"blocks must be 'mlp' or 'residual', got {blocks!r}")
        make = _mlp if blocks == "mlp" else _ResidualMLP
        self.net = make(length * code_dim, hidden, depth, length * code_dim)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return noise - self.net(noise.flatten(1)).view_as(noise)


class PrefixGuidance(nn.Module):
    """ψ(x `[B, L, C]`, t `[B, L]`, prefix `[B, L, C]`) → x̂0 `[B, L, C]`, causal: position i sees the nearest codes of
    prefix_<i only (one-hots, zeros at and after i), its own noisy token x_i, logit(t_i) and its position.
    `output="velocity"`: the MLP predicts v = ε − q and x̂0 = x − t·v̂; `"clean"`: the MLP predicts x̂0 itself."""

    def __init__(self, codebook: torch.Tensor, length: int, hidden: int = 128, depth: int = 3, output: str = "velocity"):
        super().__init__()
        if output not in ("velocity", "clean"):
            raise ValueError(f"output must be 'velocity' or 'clean', got {output!r}")
        self.output = output
        self.register_buffer("codebook", codebook.clone(), persistent=False)
        V, C = codebook.shape
        self.L, self.V = length, V
        self.register_buffer("causal", torch.tril(torch.ones(length, length), diagonal=-1), persistent=False)  # [i, j]: j < i
        self.net = _mlp(C + 1 + length + length * V, hidden, depth, C)

    def forward(self, x: torch.Tensor, t: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        B, L, C = x.shape
        idx = torch.cdist(prefix.reshape(-1, C), self.codebook).argmin(-1).view(B, L)
        onehot = nn.functional.one_hot(idx, self.V).to(x.dtype)  # [B, L, V]
        seen = self.causal[None, :, :, None] * onehot[:, None, :, :]  # [B, i, j, V]
        pos = torch.eye(L, dtype=x.dtype, device=x.device).expand(B, L, L)
        feats = torch.cat([x, torch.logit(t)[..., None], pos, seen.reshape(B, L, L * self.V)], dim=-1)
        if self.output == "velocity":  # x̂0 = x − t·v̂: exact as t → 0 whatever the net's error
            return x - t[..., None] * self.net(feats)
        return self.net(feats)


@dataclass
class SyntheticRun:
    generator: NoiseToTokens  # EMA weights if the run used an EMA
    trainer: DD2Trainer
    history: list[dict] = field(default_factory=list)  # {"step", "tv", "zero_mass"} at each evaluation


def evaluate_generator(teacher: SyntheticARTeacher, generator: nn.Module, num: int = 200_000, seed: int = 1) -> dict:
    """TV of the generator's nearest-code joint to the exact one, and its mass on zero-probability sequences."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        q = generator(torch.randn(num, teacher.L, teacher.codebook.shape[1], generator=g))
    idx = teacher.nearest_codes(q)
    return {"tv": teacher.joint_tv(idx), "zero_mass": teacher.zero_probability_mass(idx)}


def reference_tvs(teacher: SyntheticARTeacher, num: int = 200_000, seed: int = 1) -> dict:
    """TV at `num` samples of exact ancestral sampling (the sampling-noise floor) and of independent positions."""
    g = torch.Generator().manual_seed(seed)
    return {"exact": teacher.joint_tv(teacher.sample_indices(num, g)),
            "independent": teacher.joint_tv(teacher.sample_independent_indices(num, g))}


def train_synthetic(
    teacher: SyntheticARTeacher,
    steps: int,
    cfg: DD2Config = DD2Config(),
    *,
    broken: bool = False,
    hidden: int = 128,
    depth: int = 3,
    guidance_hidden: int | None = None,
    guidance_depth: int | None = None,
    eval_every: int = 0,
    eval_num: int = 50_000,
    use_ema: bool = True,
    on_eval=None,
    generator_blocks: str = "mlp",
) -> SyntheticRun:
    """Train a one-step generator on `teacher` with DD2 for `steps` generator updates (seeded by `cfg.seed`).

    `broken=True` feeds the teacher a prefix sampled from the teacher itself instead of the generator's own: the
    teacher's signal at position i then no longer belongs to the generator's prefix, and the dependence between
    positions cannot be learnt. The networks' initial weights are drawn from the global RNG seeded with `cfg.seed`.
    `hidden` × `depth` sizes the generator's MLP; `guidance_hidden` × `guidance_depth` the guidance network's (both
    default to the generator's); `generator_blocks` is "mlp" or "residual" (`NoiseToTokens`). `on_eval(row)` is called
    with each evaluation's {"step", "tv", "zero_mass"} as it is made (progress of a long run).
    """
    torch.manual_seed(cfg.seed)
    L = teacher.L
    generator = NoiseToTokens(L, teacher.codebook.shape[1], hidden, depth, blocks=generator_blocks)
    guidance = PrefixGuidance(teacher.codebook, L, guidance_hidden or hidden, guidance_depth or depth)
    if broken:
        prefix_rng = torch.Generator().manual_seed(cfg.seed + 1)

        def teacher_probs(q: torch.Tensor) -> torch.Tensor:
            return teacher.conditional_probs_of_indices(teacher.sample_indices(q.shape[0], prefix_rng))
    else:
        teacher_probs = teacher.conditional_probs
    trainer = DD2Trainer(generator, guidance, teacher_probs, teacher.codebook, (L, teacher.codebook.shape[1]), cfg)
    history = []
    for k in range(steps):
        trainer.train_step()
        if eval_every and (k + 1) % eval_every == 0:
            history.append({"step": k + 1, **evaluate_generator(teacher, _weights(trainer, use_ema), eval_num)})
            if on_eval is not None:
                on_eval(history[-1])
    return SyntheticRun(_weights(trainer, use_ema), trainer, history)


def _weights(trainer: DD2Trainer, use_ema: bool) -> nn.Module:
    """The generator with its EMA weights (a copy), or the trained weights themselves."""
    if not use_ema or trainer.ema is None:
        return trainer.generator
    averaged = copy.deepcopy(trainer.generator)
    trainer.ema.copy_to(averaged)
    return averaged
