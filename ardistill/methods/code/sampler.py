"""Collaborative Decoding (CoDe) sampling: a large VAR drafts scales [0, N), a small VAR refines [N, K).

Semantics of the official czg1225/CoDe sampler (`autoregressive_infer_cfg_draft` / `_refine`, spec §5.2–5.3):

- The drafter runs the reference VAR sampler on scales 0..N−1 with its own generator seeded with `seed`.
- The refiner re-seeds **its own** generator with the same `seed`, re-embeds the drafter's 32-d next-scale inputs
  (scales 1..N) with its own word/level/position embeddings and runs one block-causal prefill over scales 0..N
  (P = Σ_{s≤N} pn_s positions) that fills its KV cache and gives the logits of scale N (CFG on that slice only).
- RNG quirk: before the kept draw of scale N it makes N *discarded* draws, one per drafted scale a < N, on the
  refiner's un-guided conditional logits of that scale (top-k[a], temperature[a]); they only advance the generator.
- Scales N+1..K−1 are ordinary cached steps of the refiner.

Identities (tested token for token): N = K is the drafter alone. N = 0 is the refiner alone: the prefill then covers
scale 0 only (no mask needed, so none is passed) and there are no discarded draws, which is exactly the refiner's
own reference run. The official code only accepts 1 ≤ N ≤ K−1; both ends are our extension.
"""

from __future__ import annotations


import torch

from ardistill.errors import BadArgumentError
from ardistill.models.var.transformer import KVCache
from ardistill.sampling.fast import autocast
from ardistill.sampling.var import (
    PerScale, VARSamplingState, apply_cfg, guidance_at_scale, make_generator, per_scale, run_var_scales, sample_from_logits,
    start_var_sampling,
)
from ardistill.teachers.base import check_labels, check_sampling, merge_sampling
from ardistill.teachers.var import VARTeacher


def check_same_tokenizer(drafter: VARTeacher, refiner: VARTeacher) -> None:
    """The two models must share the tokenizer: same scales, same codebook and the same φ convolutions."""
    if tuple(drafter.patch_nums) != tuple(refiner.patch_nums):
        raise BadArgumentError(f"drafter and refiner have different scales: {list(drafter.patch_nums)} vs {list(refiner.patch_nums)}")
    if drafter.num_classes != refiner.num_classes:
        raise BadArgumentError(f"drafter and refiner have different class counts: {drafter.num_classes} vs {refiner.num_classes}")
    qd, qr = drafter.vae.quantize.state_dict(), refiner.vae.quantize.state_dict()
    for key in qd:
        if key.endswith("ema_vocab_hit_SV"):
            continue  # training statistics only
        if key not in qr or qd[key].shape != qr[key].shape or not torch.equal(qd[key].cpu(), qr[key].cpu()):
            raise BadArgumentError(f"drafter {drafter.name} and refiner {refiner.name} do not share the tokenizer "
                                   f"(quantizer tensor {key} differs); CoDe needs one tokenizer for both")


@torch.no_grad()
def refine_from_draft(refiner, vae, state: VARSamplingState, *, seed: int | None, cfg: float, top_k: list, top_p: float,
                      temperature: list) -> VARSamplingState:
    """Hand a drafted state (scales [0, N) done, N = state.scale) to `refiner` (a VARTransformer) and sample scale N
    with the official prefill and discarded draws. Returns the refiner's state, ready for `run_var_scales`."""
    N = state.scale
    B, Cvae, SN = state.batch_size, vae.quantize.Cvae, len(refiner.patch_nums)
    device = refiner.head.weight.device
    generator = make_generator(device, seed)
    labels = state.labels.to(device)
    cond = refiner.class_emb(torch.cat((labels, torch.full_like(labels, refiner.num_classes)), dim=0))  # [2B, C]
    lvl_pos = refiner.level_position_embedding()
    first_l = refiner.first_l
    P = refiner.scale_slices[N][1]
    x = refiner.start_input(cond, lvl_pos)  # [2B, first_l, C]
    if N > 0:
        feats = torch.cat(state.next_features, dim=1).to(device)  # [B, P − first_l, Cvae]: inputs of scales 1..N
        drafted = (refiner.word_embed(feats) + lvl_pos[:, first_l:P]).repeat(2, 1, 1)
        x = torch.cat((x, drafted), dim=1)  # [2B, P, C]
    dtype = torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else refiner.head.weight.dtype
    refiner.setup_kv_cache(2 * B, dtype=dtype, device=device)
    # N = 0: a single scale attends to itself fully, the mask is all zeros; None is the refiner-alone code path.
    attn_bias = refiner.attn_bias_for_masking[:, :, :P, :P].to(x.dtype) if N > 0 else None
    logits = refiner.forward_step(x, cond, cache_pos=0, attn_bias=attn_bias)  # [2B, P, V]
    begin, end = refiner.scale_slices[N]
    guided = apply_cfg(logits[:, begin:end], guidance_at_scale(cfg, N, SN))  # [B, pn_N², V]
    for a in range(N):  # the official discarded draws: they only advance the generator
        b0, b1 = refiner.scale_slices[a]
        sample_from_logits(logits[:B, b0:b1], top_k=int(top_k[a]), top_p=top_p, temperature=temperature[a], generator=generator)
    idx = sample_from_logits(guided, top_k=int(top_k[N]), top_p=top_p, temperature=temperature[N], generator=generator)
    pn = refiner.patch_nums[N]
    h = vae.quantize.embedding(idx).transpose_(1, 2).reshape(B, Cvae, pn, pn)
    f_hat, nxt = vae.quantize.next_autoregressive_input(N, state.f_hat.to(device), h)
    out = VARSamplingState(labels=labels, f_hat=f_hat, generator=generator, scale=N + 1,
                           tokens=[t.to(device) for t in state.tokens] + [idx],
                           next_features=[t.to(device) for t in state.next_features],
                           cond=cond, lvl_pos=lvl_pos, cache_pos=P)
    if N != SN - 1:
        nxt = nxt.view(B, Cvae, -1).transpose(1, 2)
        out.next_features.append(nxt)
        out.next_input = refiner.scale_input(nxt, N + 1, lvl_pos).repeat(2, 1, 1)
    return out


def install_kv_cache(transformer, batch: int, length: int) -> None:
    """Pre-allocate KV caches [batch, H, length, hd] shorter than L; `setup_kv_cache` keeps them (same batch and
    dtype), so a drafter that stops early never allocates positions it will not use."""
    device = transformer.head.weight.device
    dtype = torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else transformer.head.weight.dtype
    for block in transformer.blocks:
        a = block.attn
        a.kv_cache = KVCache(batch, a.heads, length, a.head_dim, dtype, device)


class CoDe:
    """Collaborative Decoding with two VAR teachers that share one tokenizer.

    >>> code = ardistill.CoDe(ardistill.load_teacher("var-d30"), ardistill.load_teacher("var-d16"))
    >>> tokens = code.sample([207] * 4, draft_steps=8, cfg=1.5, top_k=600, top_p=0.96, temperature=1.0, seed=0)  # [4, 680]
    """

    def __init__(self, drafter: VARTeacher, refiner: VARTeacher):
        for role, t in (("drafter", drafter), ("refiner", refiner)):
            if getattr(t, "family", None) != "var":
                raise BadArgumentError(f"CoDe needs VAR models; the {role} {getattr(t, 'name', t)!r} is not one")
        check_same_tokenizer(drafter, refiner)
        self.drafter, self.refiner = drafter, refiner
        self.num_scales = drafter.num_scales
        self.tokens_per_image = drafter.tokens_per_image

    @property
    def device(self) -> torch.device:
        return self.drafter.device

    def _autocast(self, teacher: VARTeacher):
        return autocast(teacher.device, teacher.dtype)

    def check_draft_steps(self, draft_steps: int) -> int:
        if isinstance(draft_steps, bool) or int(draft_steps) != draft_steps or not 0 <= draft_steps <= self.num_scales:
            raise BadArgumentError(f"draft_steps must be an integer in [0, {self.num_scales}] (0 = refiner alone, "
                                   f"{self.num_scales} = drafter alone), got {draft_steps}")
        return int(draft_steps)

    @torch.no_grad()
    def sample(self, labels, *, draft_steps: int, cfg: float | None = None, top_k: PerScale | None = None,
               top_p: float | None = None, temperature: PerScale | None = None, seed: int | None = None) -> torch.Tensor:
        """Tokens [B, L] int64: scales [0, draft_steps) from the drafter, the rest from the refiner.

        top_k / temperature: one value or one per scale (absolute scale index); missing settings come from the
        drafter's defaults. Both models use a generator seeded with `seed` (the official CoDe semantics).
        """
        N = self.check_draft_steps(draft_steps)
        s = merge_sampling(self.drafter.default_sampling, cfg=cfg, top_k=top_k, top_p=top_p, temperature=temperature)
        SN = self.num_scales
        check_sampling(s, vocab_size=self.drafter.vocab_size, steps=SN)
        top_ks, temps = per_scale(s.top_k, SN, "top_k"), per_scale(s.temperature, SN, "temperature")
        kw = dict(cfg=float(s.cfg), top_k=top_ks, top_p=float(s.top_p), temperature=temps)
        labels = check_labels(labels, self.drafter.num_classes, device=self.drafter.device)
        d, r = self.drafter, self.refiner
        try:
            if N == 0:
                hw, Cvae = d.patch_nums[-1], d.vae.quantize.Cvae
                state = VARSamplingState(labels=labels, f_hat=torch.zeros(labels.shape[0], Cvae, hw, hw, device=d.device), generator=None)
            else:
                with self._autocast(d):
                    if N < SN:  # the drafter only ever holds scales [0, N) (the official cache grows to that length)
                        install_kv_cache(d.transformer, 2 * labels.shape[0], d.transformer.scale_slices[N - 1][1])
                    state = start_var_sampling(d.transformer, d.vae, labels, seed=seed)
                    run_var_scales(d.transformer, d.vae, state, stop_scale=N, options=getattr(d, "options", None), **kw)
            d.transformer.clear_kv_cache()  # free the drafter's cache before the refiner allocates its own
            if N < SN:
                with self._autocast(r):
                    state = refine_from_draft(r.transformer, r.vae, state, seed=seed, **kw)
                    run_var_scales(r.transformer, r.vae, state, options=getattr(r, "options", None), **kw)
        finally:
            d.transformer.clear_kv_cache()
            r.transformer.clear_kv_cache()
        return state.all_tokens()

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens [B, L] → images [B, 3, H, W] in [0, 1] with the shared tokenizer."""
        return self.drafter.decode(tokens)


__all__ = ["CoDe", "check_same_tokenizer", "refine_from_draft", "install_kv_cache"]
