"""The naive few-step baselines DD is compared with: what you get by cutting AR steps without learning a map.

Both make some tokens *independently* from per-token distributions, which cannot represent the joint distribution
of the tokens (the paper's argument for a deterministic noise → data map). [inferred] The DD paper names
"skip-k" and "onestep*" without code; the definitions here are ours (docs/dd.md):

- `skip-k` (VAR): the teacher runs its first K − k scales as usual; the last k scales come from **one** extra
  forward pass whose inputs are built from the tokens known so far (the next-scale inputs are the area-downsampled
  partial f_hat, as if the missing scales' residuals were zero), each token drawn independently from its own
  distribution with the teacher's CFG ramp / top-k / top-p / temperature. Steps: K − k + 1.
- `skip-k` (LlamaGen): the teacher decodes its first L − k tokens; the last k are drawn independently from the
  class-conditional per-position marginals (below). A next-token model has no distribution for a token two steps
  ahead, so the marginal is the best a parallel step can use. Steps: L − k.
- `onestep*` (both): every token drawn independently from the class-conditional per-position marginal
  p(q_i | y) of the teacher's own samples (estimated from `TokenMarginals`): the best any one-step model that
  samples tokens independently can do, with zero network passes (the star: no network is run).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ardistill.errors import BadArgumentError

# Fewest samples per class the marginals are estimated from. Below it they are little more than copies of those few
# samples: `onestep` would replay the teacher's own images instead of measuring independent per-token draws.
MIN_SAMPLES_PER_CLASS = 10


class TooFewSamplesError(BadArgumentError):
    """The token sequences given cannot estimate every class's marginals (a class is missing or too rare)."""


@dataclass
class TokenMarginals:
    """Class-conditional per-position token frequencies of a teacher: probs [num_classes, L, V] (rows sum to 1)."""

    probs: torch.Tensor

    @classmethod
    def from_tokens(cls, tokens: torch.Tensor, labels: torch.Tensor, num_classes: int, vocab_size: int,
                    smoothing: float = 0.0, min_per_class: int = 1) -> "TokenMarginals":
        """Empirical frequencies from token sequences [N, L] int64 with labels [N]; every class needs at least
        `min_per_class` sequences (else TooFewSamplesError naming the classes short of it)."""
        N, L = tokens.shape
        per_class = torch.bincount(labels.long(), minlength=num_classes)[:num_classes]
        short = (per_class < max(1, min_per_class)).nonzero().flatten().tolist()
        if short:
            shown = ", ".join(f"{c}: {int(per_class[c])}" for c in short[:5]) + (", ..." if len(short) > 5 else "")
            raise TooFewSamplesError(f"too few samples to estimate token marginals from: {N} sequences, need ≥ "
                                     f"{max(1, min_per_class)} of every class, have (class: count) {shown}")
        counts = torch.zeros(num_classes, L, vocab_size, dtype=torch.float64)
        index = (labels.long().view(N, 1) * L + torch.arange(L).view(1, L)) * vocab_size + tokens.long()
        counts.view(-1).index_add_(0, index.reshape(-1), torch.ones(N * L, dtype=torch.float64))
        counts += smoothing
        return cls((counts / counts.sum(-1, keepdim=True)).float())

    @classmethod
    def from_teacher(cls, teacher, *, per_class: int = 100, seed: int = 0, batch_size: int = 120) -> "TokenMarginals":
        """Sample `per_class` sequences of every class with the teacher's default settings, then count."""
        C = teacher.num_classes
        labels = torch.arange(C).repeat(per_class)
        tokens = torch.cat([teacher.sample(labels[i : i + batch_size], seed=seed * 1_000_003 + i).cpu()
                            for i in range(0, len(labels), batch_size)])
        vocab = teacher.codebook.shape[0]
        return cls.from_tokens(tokens, labels, C, vocab)

    @classmethod
    def from_trajectories(cls, root, teacher, *, min_per_class: int = MIN_SAMPLES_PER_CLASS) -> "TokenMarginals":
        """Frequencies of a DD trajectory dataset's tokens (the teacher's own samples at its trajectory settings);
        TooFewSamplesError when a class has fewer than `min_per_class` trajectories."""
        from ardistill.methods.dd.trajectories import open_trajectories

        data = open_trajectories(root).load_all()
        return cls.from_tokens(data["tokens"].long(), data["labels"], teacher.num_classes, teacher.codebook.shape[0],
                               min_per_class=min_per_class)

    def sample(self, labels: torch.Tensor, positions: slice | range | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Independent draws [B, n] int64 for `positions` (default: all) of each label's marginals."""
        probs = self.probs[labels.cpu().long()]
        if positions is not None:
            probs = probs[:, positions]
        B, n, V = probs.shape
        drawn = torch.multinomial(probs.reshape(B * n, V), 1, replacement=True, generator=generator)
        return drawn.view(B, n).to(labels.device)


def _cpu_generator(seed: int | None) -> torch.Generator | None:
    return None if seed is None else torch.Generator().manual_seed(int(seed))


@torch.no_grad()
def skip_sample(teacher, labels: torch.Tensor, *, skip: int, marginals: TokenMarginals | None = None,
                seed: int | None = None, **sampling) -> torch.Tensor:
    """skip-k: the teacher's step sampler runs its first S − k AR steps (seeded with `seed`); the last k steps come
    from the run's one-pass finish where the step sampler has one (VAR), else from the class-conditional `marginals`
    (drawn from a CPU generator seeded with seed + 1). Returns tokens [B, L] int64."""
    S = teacher.num_steps
    if isinstance(skip, bool) or int(skip) != skip or not 1 <= skip <= S:
        raise BadArgumentError(f"skip must be in 1..{S} (the number of AR steps), got {skip}")
    one_pass = "one_pass_finish" in teacher.step_features
    if not one_pass and marginals is None:
        raise BadArgumentError(f"skip-{skip} on {teacher.name} draws the skipped tokens from marginals; none were given")
    labels = labels.to(teacher.device).long()
    if not one_pass and skip == S:
        return marginals.sample(labels, generator=_cpu_generator(seed))
    overrides = {k: v for k, v in sampling.items() if v is not None}
    with teacher.start_steps(labels, seed=seed, stop=S - skip, **overrides) as run:
        run.run(stop=S - skip)
        if one_pass:
            return run.finish_in_one_pass()
        first = run.tokens()
    rest = marginals.sample(labels, range(first.shape[1], teacher.tokens_per_image),
                            generator=_cpu_generator(None if seed is None else seed + 1))
    return torch.cat([first, rest], dim=1)


__all__ = ["MIN_SAMPLES_PER_CLASS", "TooFewSamplesError", "TokenMarginals", "skip_sample"]
