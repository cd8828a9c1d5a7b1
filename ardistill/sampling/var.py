"""The reference VAR sampler: official `VAR.autoregressive_infer_cfg` semantics and random-number use.

Per scale si (SN scales): one cached forward of both CFG halves ([cond; uncond], class `num_classes` = null),
guidance on logits with the linear ramp t = cfg·si/(SN−1), top-k (ties kept) then top-p filtering in place,
temperature (CoDe semantics: logits divided *after* filtering), then **one** `torch.multinomial` on the
[B·pn², V] probabilities drawn from a `torch.Generator` on the model's device seeded with `seed` (seed=None:
torch's global generator). Same seed and device type → the official token stream.

The run is split into `start_var_sampling` and `run_var_scales(..., stop_scale)` over a `VARSamplingState`, so a
caller can run scales [0, N) with one model and [N, SN) with another (Collaborative Decoding): the state keeps the
model-independent part (f_hat, tokens, the 32-d next-scale inputs) next to the model-specific part (class
embeddings, position table, embedded next input, KV-cache offset) that a second model rebuilds with a prefill.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from ardistill.errors import BadArgumentError
from ardistill.models.var.transformer import VARTransformer
from ardistill.models.var.vqvae import VQVAE
from ardistill.sampling.fast import FastOptions, compiled

PerScale = float | int | Sequence[float] | Sequence[int]
# (sampling logits [B, l, V] after CFG / top-k / top-p / temperature, AR step, token positions) → tokens [B, l] int64
ChooseTokens = Callable[[torch.Tensor, int, range], torch.Tensor]


def per_scale(value: PerScale, num_scales: int, name: str) -> list:
    """A scalar or a list with one value per scale → a list of `num_scales` values."""
    if isinstance(value, (int, float)):
        return [value] * num_scales
    values = list(value)
    if len(values) != num_scales:
        raise BadArgumentError(f"{name} has {len(values)} values; expected one per scale ({num_scales})")
    return values


def guidance_at_scale(cfg: float, si: int, num_scales: int) -> float:
    """The official CFG ramp t = cfg·si/(SN−1): no guidance at scale 0, the full `cfg` at the last scale."""
    return cfg * (si / max(num_scales - 1, 1))


def apply_cfg(logits: torch.Tensor, t: float) -> torch.Tensor:
    """[2B, l, V] with the conditional half first → guided [B, l, V] = (1 + t)·cond − t·uncond."""
    B = logits.shape[0] // 2
    return (1 + t) * logits[:B] - t * logits[B:]


@torch.no_grad()
def filter_top_k_top_p_(logits: torch.Tensor, top_k: int = 0, top_p: float = 0.0) -> torch.Tensor:
    """Mask logits [B, l, V] in place with −inf, official order and ties:

    top-k keeps every entry ≥ the k-th largest value (ties at the threshold survive, so possibly more than k);
    top-p sorts ascending, removes entries whose cumulative probability (of the top-k-masked logits) is ≤ 1 − p,
    and always keeps the largest. 0 disables either.
    """
    if top_k > 0:
        kth = logits.topk(top_k, largest=True, sorted=False, dim=-1)[0].amin(dim=-1, keepdim=True)
        logits.masked_fill_(logits < kth, -torch.inf)
    if top_p > 0:
        sorted_logits, sorted_idx = logits.sort(dim=-1, descending=False)
        remove = sorted_logits.softmax(dim=-1).cumsum_(dim=-1) <= (1 - top_p)
        remove[..., -1:] = False
        logits.masked_fill_(remove.scatter(sorted_idx.ndim - 1, sorted_idx, remove), -torch.inf)
    return logits


@torch.no_grad()
def sampling_logits(logits: torch.Tensor, *, top_k: int = 0, top_p: float = 0.0, temperature: float = 1.0) -> torch.Tensor:
    """Logits [B, l, V] (masked in place) → the logits [B, l, V] the multinomial draws from (−inf = excluded)."""
    filter_top_k_top_p_(logits, top_k, top_p)
    if temperature != 1:
        logits = logits / temperature
    return logits


@torch.no_grad()
def sample_from_logits(
    logits: torch.Tensor, *, top_k: int = 0, top_p: float = 0.0, temperature: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Logits [B, l, V] (masked in place) → token indices [B, l] with one multinomial draw per position."""
    B, l, V = logits.shape
    logits = sampling_logits(logits, top_k=top_k, top_p=top_p, temperature=temperature)
    probs = logits.softmax(dim=-1).view(-1, V)
    return torch.multinomial(probs, num_samples=1, replacement=True, generator=generator).view(B, l)


@dataclass
class VARSamplingState:
    """A sampling run between scales. Tensors: B images, C width of the model in use, Cvae = 32, h×w latent size."""

    labels: torch.Tensor  # [B] int64
    f_hat: torch.Tensor  # [B, Cvae, h, w] fp32: Σ φ(upsampled embedded maps) of the finished scales
    generator: torch.Generator | None
    scale: int = 0  # the next scale to sample
    tokens: list[torch.Tensor] = field(default_factory=list)  # per finished scale [B, pn²]
    next_features: list[torch.Tensor] = field(default_factory=list)  # per scale ≥ 1 reached: [B, pn², Cvae] inputs
    # Specific to the model that produced them:
    cond: torch.Tensor | None = None  # [2B, C] class embeddings of [labels; null]
    lvl_pos: torch.Tensor | None = None  # [1, L, C]
    next_input: torch.Tensor | None = None  # [2B, pn_scale², C] embedded input of `scale`
    cache_pos: int = 0  # positions already in that model's KV cache

    @property
    def batch_size(self) -> int:
        return self.labels.shape[0]

    def all_tokens(self) -> torch.Tensor:
        """Tokens of the finished scales, concatenated: [B, Σ pn²] int64."""
        return torch.cat(self.tokens, dim=1)


def make_generator(device: torch.device, seed: int | None) -> torch.Generator | None:
    if seed is None:
        return None
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def _cache_dtype(transformer: VARTransformer) -> torch.dtype:
    dev = transformer.head.weight.device.type
    if torch.is_autocast_enabled(dev):
        return torch.get_autocast_dtype(dev)
    return transformer.head.weight.dtype


@torch.no_grad()
def start_var_sampling(transformer: VARTransformer, vae: VQVAE, labels: torch.Tensor | None, *, seed: int | None = None,
                       batch_size: int | None = None) -> VARSamplingState:
    """Seed the generator, embed [labels; null] and prepare scale 0's input and the KV cache of `transformer`.

    labels None: `batch_size` uniform random classes drawn first from the seeded generator (official label_B=None).
    """
    device = transformer.head.weight.device
    generator = make_generator(device, seed)
    if labels is None:
        if batch_size is None:
            raise BadArgumentError("batch_size is needed when labels is None")
        uniform = torch.full((1, transformer.num_classes), 1.0 / transformer.num_classes, device=device)
        labels = torch.multinomial(uniform, num_samples=batch_size, replacement=True, generator=generator).reshape(batch_size)
    labels = labels.to(device=device, dtype=torch.long)
    B = labels.shape[0]
    cond = transformer.class_emb(torch.cat((labels, torch.full_like(labels, fill_value=transformer.num_classes)), dim=0))
    lvl_pos = transformer.level_position_embedding()
    hw = transformer.patch_nums[-1]
    transformer.setup_kv_cache(2 * B, dtype=_cache_dtype(transformer), device=device)
    return VARSamplingState(
        labels=labels,
        f_hat=cond.new_zeros(B, vae.quantize.Cvae, hw, hw),
        generator=generator,
        cond=cond,
        lvl_pos=lvl_pos,
        next_input=transformer.start_input(cond, lvl_pos),
    )


@torch.no_grad()
def run_var_scales(
    transformer: VARTransformer,
    vae: VQVAE,
    state: VARSamplingState,
    *,
    cfg: float = 1.5,
    top_k: PerScale = 0,
    top_p: float = 0.0,
    temperature: PerScale = 1.0,
    stop_scale: int | None = None,
    choose_tokens: ChooseTokens | None = None,
    options: FastOptions | None = None,
) -> VARSamplingState:
    """Sample scales [state.scale, stop_scale) (default: to the end) with cached forwards of `transformer`.

    top_k and temperature are one value or one per scale (indexed by the absolute scale index).
    choose_tokens: replaces the multinomial draw (the generator is then not used); it receives exactly the logits
    the draw would sample from, the scale index and the scale's global token positions (Distilled Decoding).
    The state is updated in place (f_hat too, as the official code does) and returned.
    options: with a compile mode, each scale's forward runs a compiled graph (one per scale shape); the caller
    enters the autocast context of a reduced dtype (see `sample_var`).
    """
    patch_nums = transformer.patch_nums
    SN = len(patch_nums)
    stop = SN if stop_scale is None else stop_scale
    top_ks = per_scale(top_k, SN, "top_k")
    temps = per_scale(temperature, SN, "temperature")
    B, Cvae = state.batch_size, vae.quantize.Cvae
    forward_step = transformer.forward_step
    if options is not None and options.compile is not None:
        forward_step = compiled(transformer, "var-step", transformer.forward_step, options.compile)
    for si in range(state.scale, stop):
        pn = patch_nums[si]
        logits = forward_step(state.next_input, state.cond, state.cache_pos)  # [2B, pn², V]
        state.cache_pos += pn * pn
        logits = apply_cfg(logits, guidance_at_scale(cfg, si, SN))
        if choose_tokens is None:
            idx = sample_from_logits(logits, top_k=int(top_ks[si]), top_p=top_p, temperature=temps[si], generator=state.generator)
        else:
            start = sum(p * p for p in patch_nums[:si])
            logits = sampling_logits(logits, top_k=int(top_ks[si]), top_p=top_p, temperature=temps[si])
            idx = choose_tokens(logits, si, range(start, start + pn * pn))
        state.tokens.append(idx)
        h = vae.quantize.embedding(idx).transpose_(1, 2).reshape(B, Cvae, pn, pn)
        state.f_hat, nxt = vae.quantize.next_autoregressive_input(si, state.f_hat, h)
        state.scale = si + 1
        if si != SN - 1:
            nxt = nxt.view(B, Cvae, -1).transpose(1, 2)  # [B, pn'², Cvae]
            state.next_features.append(nxt)
            # Both CFG halves get the same input; they differ through the class embedding and the cache.
            state.next_input = transformer.scale_input(nxt, si + 1, state.lvl_pos).repeat(2, 1, 1)
        else:
            state.next_input = None
    return state


@torch.no_grad()
def sample_var(
    transformer: VARTransformer,
    vae: VQVAE,
    labels: torch.Tensor | None,
    *,
    cfg: float = 1.5,
    top_k: PerScale = 0,
    top_p: float = 0.0,
    temperature: PerScale = 1.0,
    seed: int | None = None,
    autocast_dtype: torch.dtype | None = None,
    batch_size: int | None = None,
    options: FastOptions | None = None,
) -> torch.Tensor:
    """Class labels [B] (None: `batch_size` random classes from the same generator) → tokens [B, L] int64
    (all scales, coarse to fine), the official sampler's stream. autocast_dtype (or options.dtype): run under
    autocast in that dtype; options: the execution (see `ardistill.sampling.fast`)."""
    device = transformer.head.weight.device
    if autocast_dtype is None and options is not None:
        autocast_dtype = options.dtype
    ctx = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype not in (None, torch.float32) else contextlib.nullcontext()
    try:
        with ctx:
            state = start_var_sampling(transformer, vae, labels, seed=seed, batch_size=batch_size)
            run_var_scales(transformer, vae, state, cfg=cfg, top_k=top_k, top_p=top_p, temperature=temperature, options=options)
    finally:
        transformer.clear_kv_cache()
    return state.all_tokens()


__all__ = ["guidance_at_scale", "apply_cfg", "VARSamplingState", "start_var_sampling", "run_var_scales", "sample_var", "sample_from_logits", "sampling_logits", "filter_top_k_top_p_", "ChooseTokens"]
