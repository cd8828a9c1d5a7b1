"""The per-family DD2 adapters, looked up by the teacher's family name (never by branching on it).

An adapter (`VARFamily`, `LlamaGenFamily`: subclasses of `adapter.DD2Family`, which implements everything below
but the networks) is everything the family-generic DD2 code (GTS tuning, the alternating trainer, the
student, evaluation) needs from a loaded teacher. Its interface (shapes: B batch, L tokens, C code dimension,
V codebook size; "network space" = code vectors × `code_scale`):

- attributes `teacher`, `settings` (the teacher's resolved sampling settings being distilled), `code_scale`,
  `codebook` `[V, C]` (network space), `num_classes`, `tokens_per_image`, `code_dim`, `device`;
- `clean(tokens [B, L]) → [B, L, C]`, `nearest_codes(q [B, L, C]) → [B, L]`;
- `sampling_probs(labels [B], tokens [B, L]) → [B, L, V]` (the teacher-forced distribution the reference sampler
  draws from), `teacher_probs(prefix [B, L, C], labels) → [B, L, V]` (the same on the nearest codes of a continuous
  prefix), `sample_teacher(labels, seed) → [B, L]`;
- `needs_adaptation`, `adapt(tokens, labels, settings, out_dir, resume=)` (LlamaGen: the continuous adaptation),
  `embedding_hidden`;
- `new_network(head_width=, head_depth=, seed=, embedding_hidden=) → DD2Net`, `generator_from(net)`, `guidance_from(net)`,
  `euler_sample(net, labels, steps=, generator=) → [B, L, C]`;
- `decode_continuous(q) / decode_nearest(q) → images [B, 3, H, W]` in [0, 1].
"""

from __future__ import annotations

from ardistill.errors import ArdistillError
from ardistill.methods.dd2.llamagen import LlamaGenFamily
from ardistill.methods.dd2.var import VARFamily

# teacher.family → adapter class; a new family registers here
FAMILY_ADAPTERS: dict[str, type] = {"var": VARFamily, "llamagen": LlamaGenFamily}


def family_adapter(teacher, **settings):
    """The DD2 adapter for a loaded teacher; `settings` go to the adapter (code_scale, cfg, top_k, top_p,
    temperature). A family without one is a one-line error."""
    adapter = FAMILY_ADAPTERS.get(teacher.family)
    if adapter is None:
        raise ArdistillError(f"DD2 is not available for {teacher.family} teachers yet "
                             f"(available: {', '.join(sorted(FAMILY_ADAPTERS))})")
    return adapter(teacher, **settings)


__all__ = ["FAMILY_ADAPTERS", "family_adapter"]
