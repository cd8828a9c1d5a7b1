"""Collaborative Decoding (CoDe) sampling: a large VAR drafts scales [0, N), a small VAR refines [N, K).

Semantics of the official czg1225/CoDe sampler (`autoregressive_infer_cfg_draft` / `_refine`, spec §5.2–5.3):

- The drafter runs the reference VAR sampler on scales 0..N−1 with its own generator seeded with `seed`.
- The refiner re-seeds **its own** generator with the same `seed`, re-embeds the drafter's 32-d next-scale inputs
  (scales 1..N) with its own word/level/position embeddings and runs one block-causal prefill over scales 0..N
  (P = Σ_{s≤N} pn_s positions) that fills its KV cache and gives the logits of scale N (CFG on that slice only).
- RNG quirk: before the kept draw of scale N it makes N *discarded* draws, one per drafted scale a < N, on the
  refiner's un-guided conditional logits of that scale (top-k[a], temperature[a]); they only advance the generator.
- Scales N+1..K−1 are ordinary cached steps of the refiner.

Both halves are runs of the teachers' step sampler (`teacher.start_steps`): the drafter's stops at N, the refiner's
starts from the drafted prefix (`prefix=`, `prefix_draws=True`); the sampler owns the prefill and the KV caches.

Identities (tested token for token): N = K is the drafter alone. N = 0 is the refiner alone: the prefill then covers
scale 0 only (no mask needed, so none is passed) and there are no discarded draws, which is exactly the refiner's
own reference run. The official code only accepts 1 ≤ N ≤ K−1; both ends are our extension.
"""

from __future__ import annotations

import torch

from ardistill.errors import BadArgumentError
from ardistill.teachers.base import PerScale, check_labels


def check_same_tokenizer(drafter, refiner) -> None:
    """The two models must share the tokenizer: same AR steps, same classes, same quantiser (codebook and φ)."""
    if tuple(drafter.step_sizes) != tuple(refiner.step_sizes):
        raise BadArgumentError(f"drafter and refiner have different AR steps (scales): {list(drafter.step_sizes)} vs {list(refiner.step_sizes)} tokens")
    if drafter.num_classes != refiner.num_classes:
        raise BadArgumentError(f"drafter and refiner have different class counts: {drafter.num_classes} vs {refiner.num_classes}")
    qd, qr = drafter.quantizer.state_dict(), refiner.quantizer.state_dict()
    for key in qd:
        if key.endswith("ema_vocab_hit_SV"):
            continue  # training statistics only
        if key not in qr or qd[key].shape != qr[key].shape or not torch.equal(qd[key].cpu(), qr[key].cpu()):
            raise BadArgumentError(f"drafter {drafter.name} and refiner {refiner.name} do not share the tokenizer "
                                   f"(quantizer tensor {key} differs); CoDe needs one tokenizer for both")


class CoDe:
    """Collaborative Decoding with two VAR teachers that share one tokenizer.

    >>> code = ardistill.CoDe(ardistill.load_teacher("var-d30"), ardistill.load_teacher("var-d16"))
    >>> tokens = code.sample([207] * 4, draft_steps=8, cfg=1.5, top_k=600, top_p=0.96, temperature=1.0, seed=0)  # [4, 680]
    """

    def __init__(self, drafter, refiner):
        for role, t in (("drafter", drafter), ("refiner", refiner)):
            # The hand-off is the official CoDe refiner's prefill with its discarded draws: a step-sampler capability.
            if "prefix_draws" not in getattr(t, "step_features", ()):
                raise BadArgumentError(f"CoDe needs VAR models (next-scale prediction); the {role} {getattr(t, 'name', t)!r} is not one")
        check_same_tokenizer(drafter, refiner)
        self.drafter, self.refiner = drafter, refiner
        self.num_scales = drafter.num_steps
        self.tokens_per_image = drafter.tokens_per_image

    @property
    def device(self) -> torch.device:
        return self.drafter.device

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
        kw = self.drafter.resolve_sampling(cfg=cfg, top_k=top_k, top_p=top_p, temperature=temperature)
        labels = check_labels(labels, self.drafter.num_classes, device=self.drafter.device)
        prefix = None
        if N > 0:  # the drafter only ever holds scales [0, N) (the official cache grows to that length)
            with self.drafter.start_steps(labels, seed=seed, stop=N, **kw) as run:
                prefix = run.run(stop=N)
        if N == self.num_scales:
            return prefix
        r = self.refiner
        with r.start_steps(labels.to(r.device), seed=seed, prefix=None if prefix is None else prefix.to(r.device),
                           prefix_draws=True, **kw) as run:
            return run.run()

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens [B, L] → images [B, 3, H, W] in [0, 1] with the shared tokenizer."""
        return self.drafter.decode(tokens)


__all__ = ["CoDe", "check_same_tokenizer"]
