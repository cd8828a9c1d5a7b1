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

`LlamaGenStepRun` is LlamaGen's step sampler (`ardistill.sampling.steps`): one AR step = one token; a run may start
from a given prefix of image tokens, fed in the same prefill after the class token.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from ardistill.models.llamagen.gpt import LlamaGenGPT
from ardistill.errors import BadArgumentError
from ardistill.sampling.fast import FastOptions, compiled
from ardistill.sampling.steps import StepRun, make_generator


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


class LlamaGenStepRun(StepRun):
    """A LlamaGen sampling run between tokens. B images; the model batch is 2B while CFG is on (cfg > 1).

    The prefill (class token + an optional given prefix [B, T]) runs at start and gives the logits of token T; every
    later step feeds the previous token (decode step i = T, T + 1, … in the official counter) to both CFG halves.
    With cfg_interval > −1 guidance stops for good once the decode counter passes it (the batch stays doubled).
    """

    def __init__(self, gpt: LlamaGenGPT, labels: torch.Tensor, *, cfg: float = 1.0, cfg_interval: int = -1,
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, seed: int | None = None,
                 prefix: torch.Tensor | None = None, options: FastOptions | None = None):
        self.gpt = gpt
        device = gpt.tok_embeddings.weight.device
        self.labels = labels.to(device=device, dtype=torch.long)
        self.num_steps = gpt.config.block_size
        self.step_sizes = (1,) * self.num_steps
        self.generator = make_generator(device, seed)
        self.cfg, self.cfg_interval, self.cfg_active = float(cfg), int(cfg_interval), True
        self.temperature, self.top_k, self.top_p = float(temperature), int(top_k), float(top_p)
        self._decode = _decode_step(gpt, options)
        self._fast = options is not None and not options.reference
        self._positions = torch.arange(gpt.max_positions, device=device, dtype=torch.int) if self._fast else None
        self._closed = False
        self.token_list: list[torch.Tensor] = []  # one [B, 1] int64 per finished step
        if prefix is not None and prefix.shape[1] > 0:
            if prefix.dim() != 2 or prefix.shape[0] != self.batch_size or prefix.shape[1] > self.num_steps:
                raise BadArgumentError(f"prefix must have shape [{self.batch_size}, ≤ {self.num_steps}], got {list(prefix.shape)}")
            self.token_list.extend(prefix.to(device=device, dtype=torch.long).split(1, dim=1))
        self.step = len(self.token_list)
        known = self.tokens() if self.token_list else None
        cond = torch.cat([self.labels, torch.full_like(self.labels, gpt.num_classes)]) if self.guided else self.labels
        if self.guided and known is not None:
            known = torch.cat([known, known])
        gpt.setup_caches(max_batch_size=cond.shape[0], max_seq_length=gpt.max_positions)
        self._pending = None
        if not self.done:
            input_pos = torch.arange(0, gpt.cls_token_num + self.step, device=device)
            logits = gpt.forward_cached(input_pos, labels=cond, tokens=known)
            self._pending = apply_cfg(logits, self.cfg) if self.guided else logits

    @property
    def guided(self) -> bool:
        return self.cfg > 1.0

    def _step_logits(self) -> torch.Tensor:
        if self._pending is not None:
            logits, self._pending = self._pending, None
        else:
            i = self.step - 1  # the official decode-step counter
            if self.cfg_interval > -1 and i > self.cfg_interval:
                self.cfg_active = False
            x = self.token_list[-1]
            pos = self.gpt.cls_token_num + i
            input_pos = self._positions[pos : pos + 1] if self._fast else torch.tensor([pos], device=x.device, dtype=torch.int)
            if self.guided:
                logits = self._decode(input_pos, torch.cat([x, x]), pos)
                logits = apply_cfg(logits, self.cfg) if self.cfg_active else torch.split(logits, len(logits) // 2)[0]
            else:
                logits = self._decode(input_pos, x, pos)
        return next_token_logits(logits, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p).unsqueeze(1)

    def _official_draw(self, logits: torch.Tensor) -> torch.Tensor:
        probs = F.softmax(logits[:, 0], dim=-1)
        return torch.multinomial(probs, num_samples=1, generator=self.generator)

    def _commit(self, tokens: torch.Tensor) -> None:
        self.token_list.append(tokens.view(-1, 1))
        self.step += 1

    def tokens(self) -> torch.Tensor:
        if not self.token_list:
            return self.labels.new_zeros(self.batch_size, 0)
        return torch.cat(self.token_list, dim=1)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.gpt.clear_caches()


@torch.no_grad()
def sample_llamagen(gpt: LlamaGenGPT, labels: torch.Tensor, *, cfg: float = 1.0, cfg_interval: int = -1, temperature: float = 1.0,
                    top_k: int = 0, top_p: float = 1.0, seed: int | None = None, options: FastOptions | None = None) -> torch.Tensor:
    """Class labels [B] → tokens [B, L] int64 (raster order), the official `generate` stream for `seed`
    (options: the execution; the fp32 fast path gives the same tokens)."""
    with LlamaGenStepRun(gpt, labels, cfg=cfg, cfg_interval=cfg_interval, temperature=temperature, top_k=top_k, top_p=top_p,
                         seed=seed, options=options) as run:
        return run.run()


__all__ = ["filter_top_k_top_p_", "sample_next_token", "next_token_logits", "apply_cfg", "LlamaGenStepRun", "sample_llamagen"]
