"""The family-generic part of a DD2 adapter (`DD2Family`): what GTS, the alternating updates, the student and the
evaluation need from a loaded teacher, written once over the teacher's public interface (`codebook`,
`sampling_probs`, `resolve_sampling`, `sample`, `decode`, `decode_embeddings`). A family subclass supplies only its
networks (`_network`: the teacher's backbone, reading continuous code vectors, + a head) and, where its teacher reads
token ids, the continuous adaptation that precedes GTS (`needs_adaptation`, see `ardistill.methods.dd2.llamagen`).

Shapes: B batch, L tokens, C code dimension, V codebook size. Tokens `[B, L]` int64; labels `[B]` int64; continuous
tokens `[B, L, C]` in network space (code vectors × `code_scale`); probabilities `[B, L, V]` fp32 (zeros where
filtered out).
"""

from __future__ import annotations

import abc

import torch

from ardistill.models.dd2.net import DD2Generator, DD2Guidance, DD2Net, as_role


class DD2Family(abc.ABC):
    """DD2 adapter for a loaded teacher.

    Args:
        teacher: the teacher (frozen; read, never trained).
        code_scale: network-space scale of the code vectors; None → 1 / (std of the codebook's entries) (decision 12,
            docs/dd2.md).
        cfg, top_k, top_p, temperature: the teacher's sampling settings whose distribution DD2 distils (None → the
            teacher's `default_sampling`).
    """

    needs_adaptation = False  # True: the teacher reads token ids; its embedding is adapted to code vectors first

    def __init__(self, teacher, *, code_scale: float | None = None, cfg: float | None = None, top_k=None,
                 top_p: float | None = None, temperature=None):
        self.teacher = teacher
        # {cfg, top_k, top_p, temperature}: the teacher's defaults with these overrides, validated by the teacher
        self.settings = teacher.resolve_sampling(cfg=cfg, top_k=top_k, top_p=top_p, temperature=temperature)
        raw = teacher.codebook.detach().float()
        self.code_scale = float(code_scale) if code_scale is not None else float(1.0 / raw.std())
        self.codebook = raw * self.code_scale  # [V, C] network space
        self.num_classes = teacher.num_classes
        self.tokens_per_image = teacher.tokens_per_image
        self.code_dim = raw.shape[1]
        self.device = teacher.device

    # ------------------------------------------------------------------------------------------ token spaces
    def clean(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token indices `[B, L]` → their code vectors in network space `[B, L, C]`."""
        return self.codebook[tokens.to(self.device)]

    def nearest_codes(self, q: torch.Tensor) -> torch.Tensor:
        """Continuous tokens `[B, L, C]` (network space) → nearest codebook indices `[B, L]` int64."""
        B, L, C = q.shape
        flat = q.detach().reshape(B * L, C).float()
        d = (flat * flat).sum(1, keepdim=True) - 2 * flat @ self.codebook.T + (self.codebook * self.codebook).sum(1)[None]
        return d.argmin(-1).view(B, L)

    # ------------------------------------------------------------------------------------ teacher's conditionals
    def sampling_probs(self, labels: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The teacher-forced per-position distribution the reference sampler draws from, `[B, L, V]` fp32, at this
        adapter's settings (`teacher.sampling_probs`: CFG, top-k / top-p, temperature); row i depends on the tokens
        of earlier AR steps only."""
        return self.teacher.sampling_probs(labels.to(self.device), tokens.to(self.device), **self.settings)

    def teacher_probs(self, prefix: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """DD2's `TeacherProbs` with labels: the teacher's distribution at every position on the nearest codes of the
        (detached) continuous prefix `[B, L, C]` → `[B, L, V]`."""
        return self.sampling_probs(labels, self.nearest_codes(prefix))

    @torch.no_grad()
    def sample_teacher(self, labels: torch.Tensor, seed: int) -> torch.Tensor:
        """Tokens `[B, L]` from the teacher's reference sampler at this adapter's settings."""
        return self.teacher.sample(labels, seed=seed, **self.settings)

    # ---------------------------------------------------------------------------------------------- networks
    @abc.abstractmethod
    def _network(self, *, head_width: int, head_depth: int, embedding_hidden: int) -> DD2Net:
        """The family's backbone (a copy of the teacher's network reading code vectors) + a fresh head."""

    @property
    def embedding_hidden(self) -> int:
        """The hidden width of the continuous input embedding the networks carry (0: the family reads codes as they
        are); recorded in a student's card so that its folder rebuilds the same structure."""
        return 0

    def new_network(self, *, head_width: int = 256, head_depth: int = 3, seed: int = 0, embedding_hidden: int | None = None) -> DD2Net:
        """A fresh backbone + head (the backbone a copy of the teacher's network, the new parts drawn under `seed`).
        `embedding_hidden`: the input embedding's width when rebuilding a saved network (None: this adapter's)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = self._network(head_width=head_width, head_depth=head_depth,
                                embedding_hidden=self.embedding_hidden if embedding_hidden is None else embedding_hidden)
        return net.to(self.device)

    def generator_from(self, net: DD2Net, *, noise_level: float = 1.0, prefix_scale: float | None = None) -> DD2Generator:
        """G_θ initialised from `net` (a copy): forward(noise, labels) → tokens in one pass, reading the noise at
        `noise_level` with its backbone on `prefix_scale`·ε (`DD2Net.set_generator_input`; decision 23)."""
        return as_role(net, DD2Generator).set_generator_input(noise_level, prefix_scale)

    def guidance_from(self, net: DD2Net) -> DD2Guidance:
        """ψ initialised from `net` (a copy): forward(x, t, prefix, labels) → x̂0."""
        return as_role(net, DD2Guidance)

    @torch.no_grad()
    def euler_sample(self, net: DD2Net, labels: torch.Tensor, *, steps: int = 10, generator: torch.Generator | None = None) -> torch.Tensor:
        """The tuned model as an AR sampler: per AR step, one backbone pass over the tokens so far, then `steps` Euler
        steps of the flow from t = 1 to 0 with the head's velocity (x ← x̂0 + (t'/t)(x − x̂0)). → `[B, L, C]`."""
        B, L, C = labels.shape[0], self.tokens_per_image, self.code_dim
        q = torch.zeros(B, L, C, device=self.device)
        labels = labels.to(self.device)
        for b, e in net.step_slices:
            f = net.features(labels, q)[:, b:e]
            x = torch.randn(B, e - b, C, generator=generator).to(self.device)
            for k in range(steps):
                t_now, t_next = 1 - k / steps, 1 - (k + 1) / steps
                x0 = net.denoise(x, torch.full((B, e - b), t_now, device=self.device), f)
                x = x0 + (t_next / t_now) * (x - x0)
            q = q.clone()
            q[:, b:e] = x
        return q

    # ---------------------------------------------------------------------------------------------- decoding
    @torch.no_grad()
    def decode_continuous(self, q: torch.Tensor) -> torch.Tensor:
        """Continuous tokens `[B, L, C]` (network space) → images `[B, 3, H, W]` in [0, 1] (`decode_embeddings`)."""
        return self.teacher.decode_embeddings(q / self.code_scale)

    @torch.no_grad()
    def decode_nearest(self, q: torch.Tensor) -> torch.Tensor:
        """Continuous tokens → their nearest codes → images `[B, 3, H, W]` in [0, 1]."""
        return self.teacher.decode(self.nearest_codes(q))


__all__ = ["DD2Family"]
