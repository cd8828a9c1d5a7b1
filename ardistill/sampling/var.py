"""The reference VAR sampler: official `VAR.autoregressive_infer_cfg` semantics and random-number use.

Per scale si (SN scales): one cached forward of both CFG halves ([cond; uncond], class `num_classes` = null),
guidance on logits with the linear ramp t = cfg·si/(SN−1), top-k (ties kept) then top-p filtering in place,
temperature (CoDe semantics: logits divided *after* filtering), then **one** `torch.multinomial` on the
[B·pn², V] probabilities drawn from a `torch.Generator` on the model's device seeded with `seed` (seed=None:
torch's global generator). Same seed and device type → the official token stream.

`VARStepRun` is VAR's step sampler (`ardistill.sampling.steps`): one AR step = one scale. A run may start from a
given prefix of whole scales, which the model reads in one block-causal prefill (the official CoDe refiner's hand-off;
with `prefix_draws` also its discarded draws), so scales [0, N) can come from one model and [N, SN) from another.
"""

from __future__ import annotations

import contextlib
from typing import Sequence

import torch

from ardistill.errors import BadArgumentError
from ardistill.models.var.transformer import VARTransformer
from ardistill.models.var.vqvae import VQVAE
from ardistill.sampling.fast import FastOptions, compiled
from ardistill.sampling.steps import ChooseTokens, StepRun, make_generator

PerScale = float | int | Sequence[float] | Sequence[int]


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


def _autocast_context(device: torch.device, dtype: torch.dtype | None):
    if dtype in (None, torch.float32):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


class VARStepRun(StepRun):
    """A VAR sampling run between scales (B images, C model width, Cvae = 32, h×w the last scale's size).

    State: `f_hat` [B, Cvae, h, w] fp32 (Σ φ(upsampled embedded maps) of the finished scales, updated in place as the
    official code does), `scale_tokens` (one [B, pn²] per finished scale), the model-specific class embeddings of
    [labels; null] [2B, C], the position table and the embedded input of the next scale, and the KV-cache offset.

    Execution (`options`): the whole run executes under autocast in `options.dtype` (fp32: none), and with a compile
    mode each scale's forward runs a compiled graph (one per scale shape).
    """

    def __init__(self, transformer: VARTransformer, vae: VQVAE, labels: torch.Tensor | None, *, cfg: float = 1.5,
                 top_k: PerScale = 0, top_p: float = 0.0, temperature: PerScale = 1.0, seed: int | None = None,
                 batch_size: int | None = None, prefix: torch.Tensor | None = None, prefix_draws: bool = False,
                 stop: int | None = None, options: FastOptions | None = None):
        self.transformer, self.vae = transformer, vae
        self.patch_nums = tuple(transformer.patch_nums)
        self.num_steps = SN = len(self.patch_nums)
        self.step_sizes = tuple(pn * pn for pn in self.patch_nums)
        self.cfg, self.top_p = float(cfg), float(top_p)
        self.top_ks, self.temps = per_scale(top_k, SN, "top_k"), per_scale(temperature, SN, "temperature")
        self.options = options
        self.device = transformer.head.weight.device
        self.forward_step = transformer.forward_step
        if options is not None and options.compile is not None:
            self.forward_step = compiled(transformer, "var-step", transformer.forward_step, options.compile)
        self.step, self.cache_pos, self.scale_tokens = 0, 0, []
        self.next_features: list[torch.Tensor] = []  # per scale ≥ 1 reached: its 32-d input [B, pn², Cvae]
        self._pending: torch.Tensor | None = None  # guided logits of `step` computed by a prefill
        self._closed = False
        self.generator = make_generator(self.device, seed)
        with self._execution():
            self._start(labels, batch_size, prefix, prefix_draws, stop)

    # ----------------------------------------------------------------------------------------------- set-up
    def _execution(self):
        return _autocast_context(self.device, None if self.options is None else self.options.dtype)

    def _cache_dtype(self) -> torch.dtype:
        if torch.is_autocast_enabled(self.device.type):
            return torch.get_autocast_dtype(self.device.type)
        return self.transformer.head.weight.dtype

    def _start(self, labels, batch_size, prefix, prefix_draws, stop) -> None:
        T, quant = self.transformer, self.vae.quantize
        if labels is None:  # official label_B=None: uniform random classes drawn first from the seeded generator
            if batch_size is None:
                raise BadArgumentError("batch_size is needed when labels is None")
            uniform = torch.full((1, T.num_classes), 1.0 / T.num_classes, device=self.device)
            labels = torch.multinomial(uniform, num_samples=batch_size, replacement=True, generator=self.generator).reshape(batch_size)
        self.labels = labels.to(device=self.device, dtype=torch.long)
        B, hw = self.batch_size, self.patch_nums[-1]
        self.cond = T.class_emb(torch.cat((self.labels, torch.full_like(self.labels, T.num_classes)), dim=0))  # [2B, C]
        self.lvl_pos = T.level_position_embedding()
        self.f_hat = self.cond.new_zeros(B, quant.Cvae, hw, hw, dtype=torch.float32)
        N = self._prefix_scales(prefix)
        self.stop = stop = self.num_steps if stop is None else int(stop)
        if not 0 <= stop <= self.num_steps:
            raise BadArgumentError(f"stop must be in 0..{self.num_steps} (the scales), got {stop}")
        # A run that stops early only ever holds the positions it uses (as the official drafter's cache).
        T.setup_kv_cache(2 * B, dtype=self._cache_dtype(), device=self.device, length=T.scale_slices[max(stop, 1) - 1][1])
        self.next_input = T.start_input(self.cond, self.lvl_pos)  # [2B, first_l, C]
        if N == 0:
            return
        self.scale_tokens = list(torch.split(prefix.to(self.device, torch.long), self.step_sizes[:N], dim=1))
        for si, idx in enumerate(self.scale_tokens):  # f_hat and the inputs of scales 1..N, as sampling makes them
            self._accumulate(si, idx)
        self.step = N
        if N >= self.stop:  # nothing left to sample in this run
            return
        # One block-causal prefill over scales 0..N (P positions) fills the cache and gives scale N's logits.
        P = T.scale_slices[N][1]
        x = torch.cat((self.next_input, (T.word_embed(torch.cat(self.next_features, dim=1)) + self.lvl_pos[:, T.first_l:P]).repeat(2, 1, 1)), dim=1)
        logits = self.forward_step(x, self.cond, 0, T.attn_bias_for_masking[:, :, :P, :P].to(x.dtype))  # [2B, P, V]
        self.cache_pos = P
        begin, end = T.scale_slices[N]
        self._pending = apply_cfg(logits[:, begin:end], guidance_at_scale(self.cfg, N, self.num_steps))
        if prefix_draws:  # the official CoDe refiner: one discarded draw per given scale, on its un-guided logits
            for a in range(N):
                b0, b1 = T.scale_slices[a]
                sample_from_logits(logits[:B, b0:b1], top_k=int(self.top_ks[a]), top_p=self.top_p, temperature=self.temps[a],
                                   generator=self.generator)
        self.next_input = None

    def _prefix_scales(self, prefix: torch.Tensor | None) -> int:
        """The number of whole scales a prefix [B, n] covers (n must end on a scale boundary)."""
        if prefix is None or prefix.shape[1] == 0:
            return 0
        if prefix.dim() != 2 or prefix.shape[0] != self.batch_size:
            raise BadArgumentError(f"prefix must have shape [{self.batch_size}, n], got {list(prefix.shape)}")
        ends = [self.transformer.scale_slices[s][1] for s in range(self.num_steps)]
        if prefix.shape[1] not in ends:
            raise BadArgumentError(f"a VAR prefix must hold whole scales (a length in {ends}), got {prefix.shape[1]} tokens")
        return ends.index(prefix.shape[1]) + 1

    def _accumulate(self, si: int, idx: torch.Tensor) -> torch.Tensor | None:
        """Add scale si's tokens [B, pn²] to f_hat; return the next scale's 32-d input [B, pn'², Cvae] (None at the end)."""
        B, Cvae, pn = self.batch_size, self.vae.quantize.Cvae, self.patch_nums[si]
        h = self.vae.quantize.embedding(idx).transpose_(1, 2).reshape(B, Cvae, pn, pn)
        self.f_hat, nxt = self.vae.quantize.next_autoregressive_input(si, self.f_hat, h)
        if si == self.num_steps - 1:
            return None
        self.next_features.append(nxt.view(B, Cvae, -1).transpose(1, 2))
        return self.next_features[-1]

    # ------------------------------------------------------------------------------------------ StepRun hooks
    def _step_logits(self) -> torch.Tensor:
        si = self.step
        if si >= self.stop:
            raise BadArgumentError(f"this run was started with stop={self.stop}: its KV cache ends there")
        if self._pending is not None:
            logits, self._pending = self._pending, None
        else:
            logits = self.forward_step(self.next_input, self.cond, self.cache_pos)  # [2B, pn², V]
            self.cache_pos += self.step_sizes[si]
            logits = apply_cfg(logits, guidance_at_scale(self.cfg, si, self.num_steps))
        return sampling_logits(logits, top_k=int(self.top_ks[si]), top_p=self.top_p, temperature=self.temps[si])

    def _official_draw(self, logits: torch.Tensor) -> torch.Tensor:
        B, l, V = logits.shape
        probs = logits.softmax(dim=-1).view(-1, V)
        return torch.multinomial(probs, num_samples=1, replacement=True, generator=self.generator).view(B, l)

    def _commit(self, tokens: torch.Tensor) -> None:
        si = self.step
        self.scale_tokens.append(tokens)
        nxt = self._accumulate(si, tokens)
        self.step = si + 1
        # Both CFG halves get the same input; they differ through the class embedding and the cache.
        self.next_input = None if nxt is None else self.transformer.scale_input(nxt, si + 1, self.lvl_pos).repeat(2, 1, 1)

    @torch.no_grad()
    def advance(self, choose: ChooseTokens | None = None, *, return_logits: bool = False):
        with self._execution():
            return super().advance(choose, return_logits=return_logits)

    def tokens(self) -> torch.Tensor:
        if not self.scale_tokens:
            return self.labels.new_zeros(self.batch_size, 0)
        return torch.cat(self.scale_tokens, dim=1)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.transformer.clear_kv_cache()

    # --------------------------------------------------------------------------------------- VAR-only policy
    @torch.no_grad()
    def finish_in_one_pass(self) -> torch.Tensor:
        """The naive one-pass finish (the `skip-K` baseline): the inputs of every remaining scale are the current f_hat
        area-downsampled (no more tokens), both CFG halves run one teacher-forced forward, and each remaining scale is
        drawn from its own logits with the official draw. Returns all tokens [B, L]."""
        with self._execution():
            return self._finish_in_one_pass()

    def _finish_in_one_pass(self) -> torch.Tensor:
        T, B, Cvae = self.transformer, self.batch_size, self.vae.quantize.Cvae
        first = self.step
        feats = list(self.next_features)  # the exact inputs of scales 1 … first
        for si in range(len(feats) + 1, self.num_steps):  # the rest: the current f_hat, area-downsampled
            pn = self.patch_nums[si]
            feats.append(torch.nn.functional.interpolate(self.f_hat, size=(pn, pn), mode="area").view(B, Cvae, -1).transpose(1, 2))
        x = torch.cat(feats, dim=1)  # [B, L − first_l, Cvae]
        null = torch.full_like(self.labels, T.num_classes)
        logits = T(torch.cat([self.labels, null]), torch.cat([x, x]))  # [2B, L, V]: one forward of both CFG halves
        for si in range(first, self.num_steps):
            begin, end = T.scale_slices[si]
            lg = apply_cfg(logits[:, begin:end], guidance_at_scale(self.cfg, si, self.num_steps))
            lg = sampling_logits(lg, top_k=int(self.top_ks[si]), top_p=self.top_p, temperature=self.temps[si])
            self.scale_tokens.append(self._official_draw(lg))
        self.step = self.num_steps
        return self.tokens()


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
    if autocast_dtype is not None:
        options = FastOptions(fast=bool(options and options.fast), compile=options.compile if options else None, dtype=autocast_dtype)
    with VARStepRun(transformer, vae, labels, cfg=cfg, top_k=top_k, top_p=top_p, temperature=temperature, seed=seed,
                    batch_size=batch_size, options=options) as run:
        return run.run()


__all__ = ["guidance_at_scale", "apply_cfg", "VARStepRun", "sample_var", "sample_from_logits", "sampling_logits",
           "filter_top_k_top_p_", "per_scale"]
