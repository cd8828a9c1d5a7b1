"""The reference LlamaGen sampler: official `autoregressive/models/generate.py` semantics and random-number use.

- CFG (only when cfg > 1.0): the batch is [cond; uncond] (null class = num_classes), guided logits are
  uncond + (cond − uncond)·cfg. The sampled token is fed to both halves.
- Prefill feeds the class token (position 0) and samples image token 0; every decode step i = 0, 1, … feeds the
  previous token at position i + 1. With cfg_interval > −1, guidance stops for good once i > cfg_interval (the batch
  stays doubled, the conditional half is used); the prefill is always guided.
- Per step: logits / max(temperature, 1e-5) → top-k (ties with the k-th value kept) → top-p (first token crossing
  the threshold kept), both in place with −inf → softmax → **one** `torch.multinomial(probs [B, V], 1)`.
- Random numbers come from a `torch.Generator` on the model's device seeded with `seed`: the same stream as the
  official `torch.manual_seed(seed)` immediately before `generate` (seed=None: torch's global generator).
- Decode steps run the math SDPA kernel (the official loop forces it); the prefill uses the default choice.

The run is split into `start_llamagen_sampling` and `run_llamagen_steps(..., stop)` so that a caller can stop after
any number of tokens (teacher-involved Distilled Decoding, Collaborative Decoding).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from ardistill.models.llamagen.gpt import LlamaGenGPT
from ardistill.sampling.fast import FastOptions, compiled

# (sampling logits [B, 1, V] after CFG / temperature / top-k / top-p, token index, its position) → tokens [B, 1] int64
ChooseTokens = Callable[[torch.Tensor, int, range], torch.Tensor]


@torch.no_grad()
def filter_top_k_top_p_(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Mask logits [B, V] in place with −inf (HF `top_k_top_p_filtering` as the official code uses it).

    top-k: remove entries strictly below the k-th largest (ties survive). top-p: sort descending, remove where the
    cumulative probability exceeds top_p, shifted right by one so the first crossing token stays. 0 / 1.0 = off.
    """
    if top_k > 0:
        k = min(max(top_k, 1), logits.size(-1))
        logits.masked_fill_(logits < torch.topk(logits, k)[0][..., -1, None], -float("inf"))
    if top_p < 1.0:
        sorted_logits, sorted_idx = torch.sort(logits, descending=True)
        remove = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1) > top_p
        remove[..., 1:] = remove[..., :-1].clone()
        remove[..., 0] = False
        logits.masked_fill_(remove.scatter(1, sorted_idx, remove), -float("inf"))
    return logits


@torch.no_grad()
def next_token_logits(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Logits [B, T, V] (the last position is used) → the logits [B, V] the multinomial draws from (−inf = excluded)."""
    logits = logits[:, -1, :] / max(temperature, 1e-5)
    if top_k > 0 or top_p < 1.0:
        logits = filter_top_k_top_p_(logits, top_k, top_p)
    return logits


@torch.no_grad()
def sample_next_token(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Logits [B, T, V] (the last position is used) → token ids [B, 1] int64, one multinomial draw per row."""
    logits = next_token_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p)
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)


def apply_cfg(logits: torch.Tensor, cfg: float) -> torch.Tensor:
    """[2B, T, V] with the conditional half first → uncond + (cond − uncond)·cfg, [B, T, V]."""
    cond, uncond = torch.split(logits, len(logits) // 2, dim=0)
    return uncond + (cond - uncond) * cfg


@dataclass
class LlamaGenSamplingState:
    """A run between tokens. B images; the model batch is 2B while CFG is on (cfg > 1)."""

    labels: torch.Tensor  # [B] int64
    generator: torch.Generator | None
    cfg: float
    cfg_interval: int = -1
    tokens: list[torch.Tensor] = field(default_factory=list)  # one [B, 1] int64 per sampled token
    cfg_active: bool = True  # turned off for good by cfg_interval

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

    @property
    def guided(self) -> bool:
        return self.cfg > 1.0

    def all_tokens(self) -> torch.Tensor:
        """[B, n] int64 of the tokens sampled so far."""
        return torch.cat(self.tokens, dim=1)


def choose_next_token(logits: torch.Tensor, state: LlamaGenSamplingState, *, temperature: float, top_k: int, top_p: float,
                      choose_tokens: ChooseTokens | None) -> torch.Tensor:
    """Logits [B, T, V] → the next token [B, 1]: the multinomial draw, or `choose_tokens(sampling logits [B, 1, V],
    token index, range(index, index + 1))` (Distilled Decoding; the generator is then not used)."""
    if choose_tokens is None:
        return sample_next_token(logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=state.generator)
    i = state.num_tokens
    masked = next_token_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p)
    return choose_tokens(masked.unsqueeze(1), i, range(i, i + 1)).view(-1, 1)


def make_generator(device: torch.device, seed: int | None) -> torch.Generator | None:
    if seed is None:
        return None
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


@torch.no_grad()
def start_llamagen_sampling(gpt: LlamaGenGPT, labels: torch.Tensor, *, cfg: float = 1.0, cfg_interval: int = -1,
                            temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, seed: int | None = None,
                            prefix: torch.Tensor | None = None, choose_tokens: ChooseTokens | None = None) -> LlamaGenSamplingState:
    """Seed the generator, set up fresh caches for the whole image, run the prefill and sample the next token.

    prefix: known image tokens [B, T] fed in the same prefill after the class token (teacher-involved sampling:
    the teacher continues a sequence another model started); the first sampled token is then token T.
    choose_tokens: replaces the multinomial draw (see `choose_next_token`).
    """
    device = gpt.tok_embeddings.weight.device
    labels = labels.to(device=device, dtype=torch.long)
    state = LlamaGenSamplingState(labels=labels, generator=make_generator(device, seed), cfg=float(cfg), cfg_interval=int(cfg_interval))
    if prefix is not None:
        state.tokens.extend(prefix.to(device=device, dtype=torch.long).split(1, dim=1))
    known = state.all_tokens() if state.tokens else None
    cond = torch.cat([labels, torch.full_like(labels, gpt.num_classes)]) if state.guided else labels
    if state.guided and known is not None:
        known = torch.cat([known, known])
    gpt.setup_caches(max_batch_size=cond.shape[0], max_seq_length=gpt.max_positions)
    input_pos = torch.arange(0, gpt.cls_token_num + state.num_tokens, device=device)
    logits = gpt.forward_cached(input_pos, labels=cond, tokens=known)
    if state.guided:
        logits = apply_cfg(logits, state.cfg)
    state.tokens.append(choose_next_token(logits, state, temperature=temperature, top_k=top_k, top_p=top_p, choose_tokens=choose_tokens))
    return state


def _decode_step(gpt: LlamaGenGPT, options: FastOptions | None) -> Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]:
    """(input_pos [1], tokens [B, 1], position) → logits [B, 1, V] for the execution `options` ask for."""
    if options is None or options.reference:
        def reference(input_pos, x, _pos):
            with sdpa_kernel([SDPBackend.MATH]):  # the official decode loop forces the math kernel
                return gpt.forward_cached(input_pos, tokens=x)
        return reference
    if options.compile is not None:  # static shapes (whole masked cache) → one graph, CUDA-graph capturable
        fn = compiled(gpt, "llamagen-decode", gpt.forward_cached, options.compile)
        return lambda input_pos, x, _pos: fn(input_pos, tokens=x)
    return lambda input_pos, x, pos: gpt.decode_step_fast(input_pos, x, pos + 1)


@torch.no_grad()
def run_llamagen_steps(gpt: LlamaGenGPT, state: LlamaGenSamplingState, *, temperature: float = 1.0, top_k: int = 0,
                       top_p: float = 1.0, stop: int | None = None, choose_tokens: ChooseTokens | None = None,
                       options: FastOptions | None = None) -> LlamaGenSamplingState:
    """Decode tokens [state.num_tokens, stop) (default: to L) with cached forwards; the state is updated in place.

    choose_tokens: replaces the multinomial draw (see `choose_next_token`). options: the execution (default: the
    reference; see `ardistill.sampling.fast`)."""
    stop = gpt.config.block_size if stop is None else stop
    device = state.labels.device
    step = _decode_step(gpt, options)
    fast = options is not None and not options.reference
    positions = torch.arange(gpt.max_positions, device=device, dtype=torch.int) if fast else None
    while state.num_tokens < stop:
        i = state.num_tokens - 1  # the official decode-step counter
        if state.cfg_interval > -1 and i > state.cfg_interval:
            state.cfg_active = False
        x = state.tokens[-1]
        pos = gpt.cls_token_num + i
        input_pos = positions[pos : pos + 1] if fast else torch.tensor([pos], device=device, dtype=torch.int)
        if state.guided:
            logits = step(input_pos, torch.cat([x, x]), pos)
            logits = apply_cfg(logits, state.cfg) if state.cfg_active else torch.split(logits, len(logits) // 2)[0]
        else:
            logits = step(input_pos, x, pos)
        nxt = choose_next_token(logits, state, temperature=temperature, top_k=top_k, top_p=top_p, choose_tokens=choose_tokens)
        state.tokens.append(nxt.view(-1, 1))
    return state


@torch.no_grad()
def sample_llamagen(gpt: LlamaGenGPT, labels: torch.Tensor, *, cfg: float = 1.0, cfg_interval: int = -1, temperature: float = 1.0,
                    top_k: int = 0, top_p: float = 1.0, seed: int | None = None, options: FastOptions | None = None) -> torch.Tensor:
    """Class labels [B] → tokens [B, L] int64 (raster order), the official `generate` stream for `seed`
    (options: the execution; the fp32 fast path gives the same tokens)."""
    kw = dict(temperature=temperature, top_k=top_k, top_p=top_p)
    try:
        state = start_llamagen_sampling(gpt, labels, cfg=cfg, cfg_interval=cfg_interval, seed=seed, **kw)
        run_llamagen_steps(gpt, state, options=options, **kw)
    finally:
        gpt.clear_caches()
    return state.all_tokens()


__all__ = ["filter_top_k_top_p_", "sample_next_token", "next_token_logits", "choose_next_token", "ChooseTokens", "apply_cfg", "LlamaGenSamplingState", "start_llamagen_sampling",
           "run_llamagen_steps", "sample_llamagen", "make_generator"]
