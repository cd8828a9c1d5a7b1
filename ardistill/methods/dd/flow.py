"""The per-token flow map of Distilled Decoding.

For a categorical distribution p over codebook entries c_1..c_V (in R^d) and noise ε ~ N(0, I_d), the
rectified-flow path x_t = t·x_1 + (1 − t)·ε with x_1 ~ Σ_k p_k δ(c_k) has the closed-form denoiser

    D(x, t) = Σ_k w_k c_k,   w = softmax_k( log p_k + (t·⟨x, c_k⟩ − t²‖c_k‖²/2) / (1 − t)² )

(the ‖x‖² term cancels in the softmax), and velocity v = (D − x)/(1 − t). Integrating dx/dt = v from x(0) = ε
transports N(0, I) onto P exactly, so the token read off x(1) has distribution p — and it is a deterministic,
almost-everywhere continuous function of ε. Entries with p_k = 0 (top-k / top-p masking) get weight exactly 0
and are never produced.

Numerics: the field is singular at t = 1, so we integrate on a grid that ends at 1 − δ and is denser near the
end, with the "exact-Euler" denoiser update x' = x + (t' − t)·(D − x)/(1 − t) (stable at both ends), Heun's
second-order correction of it, or ("dpm2m") the second-order multistep data-prediction update of DPM-Solver++(2M)
on a grid uniform in the log-SNR λ = log(t / (1 − t)): one denoiser call per step like Euler, with the previous
step's denoiser as the second-order term. The posterior sharpens as e^{2λ}, so a λ-uniform grid spends its steps
where the weights move. The token is argmax_k w_k at the last grid point (equal, in every case we
measured, to the nearest codebook entry of the final x). See docs/dd-flow.md for the step-count study.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch

from ardistill.errors import BadArgumentError


@dataclass(frozen=True)
class FlowMapConfig:
    steps: int = 200  # ODE steps K
    solver: Literal["euler", "heun", "dpm2m"] = "euler"  # "euler" (exact-Euler denoiser update) | "heun" (2nd order) | "dpm2m" (2nd-order multistep in λ)
    t_end: float = 1e-4  # δ: integrate to t = 1 − δ
    grid: Literal["quadratic", "uniform", "logsnr"] = "quadratic"  # "quadratic" (denser near t = 1) | "uniform" | "logsnr" (uniform in λ; dpm2m always uses it)
    t_start: float = 1e-3  # logsnr grid only: first point after t = 0 (the first step, from t = 0, is exact-Euler)
    dtype: Literal["float32", "float64"] = "float64"  # ODE arithmetic; float64 keeps region boundaries exact on CPU and GPU

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        if self.steps < 1:
            raise BadArgumentError(f"flow map steps must be ≥ 1, got {self.steps}")
        if self.solver not in ("euler", "heun", "dpm2m"):
            raise BadArgumentError(f"unknown flow solver {self.solver!r}; use euler, heun or dpm2m")
        if self.grid not in ("quadratic", "uniform", "logsnr"):
            raise BadArgumentError(f"unknown time grid {self.grid!r}; use quadratic, uniform or logsnr")
        if not (0 < self.t_start < 0.5):
            raise BadArgumentError(f"t_start must be in (0, 0.5), got {self.t_start}")
        if not (0 < self.t_end < 0.1):
            raise BadArgumentError(f"t_end must be in (0, 0.1), got {self.t_end}")
        if self.dtype not in ("float32", "float64"):
            raise BadArgumentError(f"flow dtype must be float32 or float64, got {self.dtype}")


def time_grid(cfg: FlowMapConfig, device=None) -> torch.Tensor:
    """`[K + 1]` times from 0 to 1 − δ (float64)."""
    if cfg.grid == "logsnr" or cfg.solver == "dpm2m":
        # t = 0, then K points uniform in λ from λ(t_start) to λ(1 − δ).
        lam = lambda t: torch.tensor(t / (1 - t), dtype=torch.float64).log()  # noqa: E731
        lams = torch.linspace(float(lam(cfg.t_start)), float(lam(1 - cfg.t_end)), cfg.steps, dtype=torch.float64)
        return torch.cat([torch.zeros(1, dtype=torch.float64), torch.sigmoid(lams)]).to(device)
    s = torch.linspace(0, 1, cfg.steps + 1, dtype=torch.float64, device=device)
    if cfg.grid == "quadratic":
        s = 1 - (1 - s) ** 2
    return s * (1 - cfg.t_end)


def _weights_logits(x: torch.Tensor, t: float, log_p: torch.Tensor, codebook: torch.Tensor, code_sq: torch.Tensor) -> torch.Tensor:
    """Unnormalised log-weights `[N, V]` of the codes at time t for states x `[N, d]`."""
    scale = 1.0 / (1.0 - t) ** 2
    return log_p + (t * (x @ codebook.T) - (0.5 * t * t) * code_sq) * scale


def _denoise(x, t, log_p, codebook, code_sq):
    w = torch.softmax(_weights_logits(x, t, log_p, codebook, code_sq), dim=-1)
    return w @ codebook


@torch.no_grad()
def flow_map_tokens(
    log_probs: torch.Tensor,
    noise: torch.Tensor,
    codebook: torch.Tensor,
    cfg: FlowMapConfig = FlowMapConfig(),
) -> torch.Tensor:
    """Map noise to tokens through the flow of each position's distribution.

    Args:
        log_probs: `[N, V]` log-probabilities (any normalisation; −inf marks excluded tokens), one row per position.
        noise: `[N, d]` Gaussian noise, one vector per position.
        codebook: `[V, d]` code embeddings (as the teacher embeds tokens; LlamaGen: L2-normalised).
        cfg: solver settings.
    Returns:
        `[N]` int64 token indices, distributed as softmax(log_probs) when noise ~ N(0, I).
    """
    cfg.validate()
    if log_probs.dim() != 2 or noise.dim() != 2 or log_probs.shape[0] != noise.shape[0]:
        raise BadArgumentError(f"flow map expects log_probs [N, V] and noise [N, d]; got {list(log_probs.shape)} and {list(noise.shape)}")
    if codebook.shape != (log_probs.shape[1], noise.shape[1]):
        raise BadArgumentError(f"codebook must be [V, d] = [{log_probs.shape[1]}, {noise.shape[1]}], got {list(codebook.shape)}")
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    log_p = torch.log_softmax(log_probs.to(dtype), dim=-1)
    cb = codebook.to(dtype)
    code_sq = (cb * cb).sum(-1)
    x = noise.to(dtype).clone()
    ts = time_grid(cfg).tolist()
    if cfg.solver == "dpm2m":
        x = _dpm2m(x, ts, log_p, cb, code_sq)
        return _weights_logits(x, ts[-1], log_p, cb, code_sq).argmax(dim=-1)
    for t, t_next in zip(ts[:-1], ts[1:]):
        d = _denoise(x, t, log_p, cb, code_sq)
        v = (d - x) / (1 - t)
        if cfg.solver == "heun":
            x_pred = x + (t_next - t) * v
            d2 = _denoise(x_pred, t_next, log_p, cb, code_sq)
            v2 = (d2 - x_pred) / (1 - t_next)
            x = x + (t_next - t) * 0.5 * (v + v2)
        else:
            x = x + (t_next - t) * v
    return _weights_logits(x, ts[-1], log_p, cb, code_sq).argmax(dim=-1)


def _dpm2m(x: torch.Tensor, ts: list[float], log_p, cb, code_sq) -> torch.Tensor:
    """DPM-Solver++(2M) in data prediction for α_t = t, σ_t = 1 − t: x_{i+1} = (σ_{i+1}/σ_i)·x_i + (t_{i+1} −
    t_i σ_{i+1}/σ_i)·D̃, D̃ = (1 + 1/(2r))·D_i − 1/(2r)·D_{i−1}, r = h_{i−1}/h_i, h = Δλ. The first step (from t = 0,
    λ = −∞) and the second (no finite previous h) are first order (exact-Euler = DDIM)."""
    import math

    d_prev, h_prev = None, None
    for i, (t, t_next) in enumerate(zip(ts[:-1], ts[1:])):
        d = _denoise(x, t, log_p, cb, code_sq)
        ratio = (1 - t_next) / (1 - t)
        h = math.log(t_next / (1 - t_next)) - math.log(t / (1 - t)) if t > 0 else None
        if d_prev is not None and h is not None and h_prev is not None:
            r = h_prev / h
            d_use = (1 + 0.5 / r) * d - (0.5 / r) * d_prev
        else:
            d_use = d
        x = ratio * x + (t_next - t * ratio) * d_use
        d_prev, h_prev = d, h
    return x
