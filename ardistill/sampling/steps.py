"""The step sampler every method drives a teacher through: one AR step at a time, with a pluggable token chooser.

A family (VAR: one step = one scale; LlamaGen: one step = one token) implements `StepRun` next to its reference
sampler (`sampling/var.py`, `sampling/llamagen.py`), and its Teacher starts one with `teacher.start_steps(labels,
seed=, prefix=, **sampling)`. A method is then a few lines of policy over the run, as a diffusers scheduler is over
its model:

    with teacher.start_steps(labels, seed=0) as run:          # KV caches set up by the model, freed on exit
        while not run.done:
            tokens, logits = run.advance(choose, return_logits=True)

Token choosers have the signature `choose(logits [B, l, V], step index, positions range) -> tokens [B, l] | None`:
`logits` are exactly what the official multinomial would draw from (CFG, top-k / top-p and temperature applied,
−inf = excluded), `positions` the global token positions of the step. Returning None means "draw as the official
sampler does" (its multinomial, its random-number use on the run's generator), so a chooser can decide per step.
Built-in choosers: `None` (official draw), `argmax_tokens`, `given_tokens(tokens)`; the Distilled Decoding flow map
(`methods/dd/flow.py`) is one more.

The KV cache is owned by the model (`setup_kv_cache` / `setup_caches`) and released by `close()`; methods never
touch it.
"""

from __future__ import annotations

import abc
from typing import Callable

import torch

from ardistill.errors import BadArgumentError

ChooseTokens = Callable[[torch.Tensor, int, range], "torch.Tensor | None"]


def argmax_tokens(logits: torch.Tensor, index: int, positions: range) -> torch.Tensor:
    """The most likely token at every position: [B, l, V] → [B, l] int64 (greedy decoding)."""
    return logits.argmax(dim=-1)


def given_tokens(tokens: torch.Tensor, *, then: ChooseTokens | None = None) -> ChooseTokens:
    """A chooser that returns `tokens[:, positions]` for the positions `tokens` [B, n] covers and defers to `then`
    (None: the official draw) beyond them: forced decoding of a known prefix, or teacher forcing of a whole sequence."""
    n = tokens.shape[1]

    def choose(logits: torch.Tensor, index: int, positions: range) -> torch.Tensor | None:
        if positions.stop <= n:
            return tokens[:, positions.start:positions.stop].to(logits.device)
        if positions.start < n:
            raise BadArgumentError(f"given tokens end at position {n}, inside AR step {index} ({positions.start}..{positions.stop - 1})")
        return None if then is None else then(logits, index, positions)

    return choose


class StepRun(abc.ABC):
    """One sampling run of B images through a teacher, advanced one AR step at a time.

    Attributes (set by the family): `num_steps` AR steps per image, `step_sizes` tokens per step (VAR: pn², LlamaGen:
    1), `step` the next step index, `generator` the run's seeded `torch.Generator` (None: torch's global one),
    `labels` [B] int64.
    """

    num_steps: int
    step_sizes: tuple[int, ...]
    step: int
    generator: torch.Generator | None
    labels: torch.Tensor

    # -------------------------------------------------------------------------------------- family interface
    @abc.abstractmethod
    def _step_logits(self) -> torch.Tensor:
        """The sampling logits [B, l, V] of step `self.step` (one network forward unless already computed)."""

    @abc.abstractmethod
    def _official_draw(self, logits: torch.Tensor) -> torch.Tensor:
        """The family's official multinomial on sampling logits [B, l, V] with the run's generator → [B, l]."""

    @abc.abstractmethod
    def _commit(self, tokens: torch.Tensor) -> None:
        """Record step `self.step`'s tokens [B, l], prepare the next step's input and increment `self.step`."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the model's KV cache (idempotent)."""

    @abc.abstractmethod
    def tokens(self) -> torch.Tensor:
        """Tokens of the finished steps, concatenated: [B, Σ step sizes so far] int64."""

    # ------------------------------------------------------------------------------------------- the policy API
    @property
    def batch_size(self) -> int:
        return int(self.labels.shape[0])

    @property
    def done(self) -> bool:
        return self.step >= self.num_steps

    def positions(self, index: int) -> range:
        """Global token positions of AR step `index`."""
        start = sum(self.step_sizes[:index])
        return range(start, start + self.step_sizes[index])

    def tokens_before(self, index: int) -> int:
        """Tokens in AR steps [0, index): the length of the prefix step `index` conditions on."""
        return sum(self.step_sizes[:index])

    @torch.no_grad()
    def advance(self, choose: ChooseTokens | None = None, *, return_logits: bool = False):
        """Run AR step `self.step`: tokens [B, l] int64 (and, with return_logits, the sampling logits [B, l, V] the
        choice was made from). choose: see the module docstring; None = the official draw."""
        if getattr(self, "_broken", None):
            raise BadArgumentError(f"this run stopped at AR step {self.step} after an error ({self._broken}); start a new one")
        if self.done:
            raise BadArgumentError(f"the run is finished ({self.num_steps} AR steps)")
        index = self.step
        try:
            logits = self._step_logits()
            chosen = None if choose is None else choose(logits, index, self.positions(index))
            tokens = self._official_draw(logits) if chosen is None else chosen.to(device=logits.device, dtype=torch.long)
            if tuple(tokens.shape) != (self.batch_size, self.step_sizes[index]):
                raise BadArgumentError(f"a chooser returned tokens of shape {list(tokens.shape)} for AR step {index}; "
                                       f"expected [{self.batch_size}, {self.step_sizes[index]}]")
            self._commit(tokens)
        except Exception as e:  # the model's cache already holds this step: the run cannot go on consistently
            self._broken = str(e).splitlines()[0] if str(e) else type(e).__name__
            self.close()
            raise
        return (tokens, logits) if return_logits else tokens

    @torch.no_grad()
    def run(self, stop: int | None = None, choose: ChooseTokens | None = None) -> torch.Tensor:
        """Advance to AR step `stop` (default: the end) and return all tokens so far [B, n]."""
        stop = self.num_steps if stop is None else stop
        if not self.step <= stop <= self.num_steps:
            raise BadArgumentError(f"cannot run from AR step {self.step} to {stop} (the image has {self.num_steps})")
        while self.step < stop:
            self.advance(choose)
        return self.tokens()

    def __enter__(self) -> "StepRun":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make_generator(device: torch.device | str, seed: int | None) -> torch.Generator | None:
    """A `torch.Generator` on `device` seeded with `seed` (the official code's stream); None: torch's global one."""
    if seed is None:
        return None
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


__all__ = ["StepRun", "ChooseTokens", "argmax_tokens", "given_tokens", "make_generator"]
