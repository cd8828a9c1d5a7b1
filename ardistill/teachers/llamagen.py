"""LlamaGen teacher: the class-conditional GPT + the VQ-16 tokenizer + the reference sampler behind the Teacher protocol.

Tokens are [B, L] int64 in raster order (L = 256 at 256 px, 576 at 384 px). Images are [B, 3, H, W] in [0, 1]:
the decoder output x ≈ [−1, 1] is mapped with clamp((x + 1) / 2, 0, 1), as `save_image(normalize=True,
value_range=(−1, 1))` in the official demo.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ardistill.errors import BadArgumentError
from ardistill.models.llamagen.checkpoint import (empty_module, image_size_from_filename, load_llamagen_gpt, load_vq_model,
                                                  registered_llamagen_specs)
from ardistill.models.llamagen.config import GPTConfig
from ardistill.models.llamagen.gpt import LlamaGenGPT
from ardistill.models.llamagen.vq import VQModel
from ardistill.registry import ModelSpec, find_weight_file, list_models
from ardistill.sampling.fast import lower_precision_, make_fast_options
from ardistill.sampling.llamagen import LlamaGenStepRun, apply_cfg, filter_top_k_top_p_
from ardistill.teachers.base import PerScale, SamplingSettings, check_labels, check_sampling, merge_sampling


def _scalar(value: PerScale, name: str):
    if isinstance(value, (int, float)):
        return value
    values = list(value)
    if len(values) != 1:
        raise BadArgumentError(f"{name} must be one value for LlamaGen (per-step lists are a VAR feature), got {len(values)}")
    return values[0]


class LlamaGenTeacher:
    """An official LlamaGen c2i model (GPT + VQ tokenizer) with exact fp32 logits, sampling, decoding and encoding."""

    family = "llamagen"
    step_features = frozenset()  # see VARTeacher.step_features

    def __init__(self, name: str, gpt: LlamaGenGPT, vq: VQModel, *, default_sampling: SamplingSettings | None = None,
                 dtype: torch.dtype = torch.float32, fast: bool = False, compile: bool | str | None = None):
        self.name = name
        self.gpt = gpt.eval().requires_grad_(False)
        self.vq = vq.eval().requires_grad_(False)
        # The whole GPT in dtype (the official `--precision`: KV cache follows, RoPE and logits stay fp32); the
        # tokenizer decoder too (channels-last), the encoder and quantiser stay fp32.
        self.options = make_fast_options(fast=fast, compile=compile, dtype=dtype, device=self.device)
        self.dtype = self.options.dtype
        if self.dtype != torch.float32:
            self.gpt.to(self.dtype)
            lower_precision_(self.vq.decoder, self.dtype)
            lower_precision_(self.vq.post_quant_conv, self.dtype)
        cfg: GPTConfig = gpt.config
        if vq.config.codebook_size != cfg.vocab_size:
            raise BadArgumentError(f"tokenizer has {vq.config.codebook_size} codes but the GPT predicts {cfg.vocab_size}")
        self.num_classes = cfg.num_classes
        self.vocab_size = cfg.vocab_size
        self.tokens_per_image = cfg.block_size
        self.grid = (cfg.grid_size, cfg.grid_size)
        self.image_size = cfg.grid_size * vq.config.downsample
        self.default_sampling = default_sampling or SamplingSettings(cfg=2.0, top_k=0, top_p=1.0, temperature=1.0)

    # ---------------------------------------------------------------------------------------------- properties
    @property
    def codebook(self) -> torch.Tensor:
        """[V, 8] l2-normalised code vectors (what the decoder consumes)."""
        return self.vq.quantize.codebook()

    @property
    def device(self) -> torch.device:
        return self.gpt.output.weight.device

    @property
    def num_steps(self) -> int:
        """AR steps per image: the tokens."""
        return self.tokens_per_image

    @property
    def step_sizes(self) -> tuple[int, ...]:
        """Tokens per AR step: 1."""
        return (1,) * self.tokens_per_image

    @property
    def network(self) -> LlamaGenGPT:
        """The AR network (what a student is initialised from and what benchmarks count forward passes of)."""
        return self.gpt

    @property
    def tokenizer(self):
        """The image tokenizer (the VQ-16 model): encoder, quantiser and decoder."""
        return self.vq

    @property
    def quantizer(self):
        """The tokenizer's quantiser (its codebook): two models share a tokenizer iff these match."""
        return self.vq.quantize

    def num_parameters(self) -> int:
        """GPT parameters (tokenizer excluded): 110,888,448 for LlamaGen-B."""
        return sum(p.numel() for p in self.gpt.parameters())

    def _check_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = torch.as_tensor(tokens, device=self.device)
        if tokens.dim() != 2 or tokens.shape[1] != self.tokens_per_image:
            raise BadArgumentError(f"tokens must have shape [B, {self.tokens_per_image}], got {list(tokens.shape)}")
        if tokens.is_floating_point():
            raise BadArgumentError("tokens must be integer codebook indices")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.vocab_size):
            raise BadArgumentError(f"token ids must be in [0, {self.vocab_size}), got {int(tokens.min())}..{int(tokens.max())}")
        return tokens.long()

    def _to_unit_range(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().add(1).mul_(0.5).clamp_(0, 1)

    # ------------------------------------------------------------------------------------------------- protocol
    @torch.no_grad()
    def logits(self, labels: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits [B, L, V] fp32 in one causal pass over [class, tokens[:, :-1]], no CFG: position i
        predicts token i (the class token's output predicts token 0)."""
        tokens = self._check_tokens(tokens)
        labels = check_labels(labels, self.num_classes, device=self.device)
        if labels.shape[0] != tokens.shape[0]:
            raise BadArgumentError(f"{labels.shape[0]} labels for {tokens.shape[0]} token sequences")
        return self.gpt(labels, tokens[:, :-1])

    def resolve_sampling(self, *, cfg=None, top_k=None, top_p=None, temperature=None, cfg_interval=None) -> dict:
        """The default sampling settings with overrides, validated: scalars {cfg, top_k, top_p, temperature} plus
        cfg_interval (−1 = guidance at every step); top_p 0 means off and is recorded as 1.0 (the official 'off')."""
        s = merge_sampling(self.default_sampling, cfg=cfg, top_k=_scalar(top_k, "top_k") if top_k is not None else None,
                           top_p=top_p, temperature=_scalar(temperature, "temperature") if temperature is not None else None)
        for name in ("top_k", "temperature"):
            _scalar(getattr(s, name), name)
        check_sampling(s, vocab_size=self.vocab_size, steps=1)
        interval = -1 if cfg_interval is None else cfg_interval
        if isinstance(interval, bool) or int(interval) != interval or interval < -1:
            raise BadArgumentError(f"cfg_interval must be an integer ≥ -1 (-1 = guidance at every step), got {interval}")
        return {"cfg": float(s.cfg), "top_k": int(_scalar(s.top_k, "top_k")), "top_p": 1.0 if s.top_p in (0.0, 1.0) else float(s.top_p),
                "temperature": float(_scalar(s.temperature, "temperature")), "cfg_interval": int(interval)}

    @torch.no_grad()
    def start_steps(self, labels, *, seed: int | None = None, prefix: torch.Tensor | None = None, stop: int | None = None,
                    **sampling) -> LlamaGenStepRun:
        """A step sampler over this model (`ardistill.sampling.steps`): one AR step = one token.

        prefix: image tokens [B, T] fed in the prefill after the class token (the run starts at token T). stop: accepted
        for the protocol (the LlamaGen cache always spans the image). sampling: cfg, top_k, top_p, temperature,
        cfg_interval overrides of the defaults."""
        s = self.resolve_sampling(**sampling)
        labels = check_labels(labels, self.num_classes, device=self.device)
        return LlamaGenStepRun(self.gpt, labels, cfg=s["cfg"], cfg_interval=s["cfg_interval"], temperature=s["temperature"],
                               top_k=s["top_k"], top_p=s["top_p"], seed=seed, prefix=prefix, options=self.options)

    @torch.no_grad()
    def sampling_probs(self, labels, tokens: torch.Tensor, **sampling) -> torch.Tensor:
        """The distribution the sampler would draw each token from, given the tokens before it: [B, L, V] fp32, in one
        teacher-forced causal pass (both CFG halves when cfg > 1; cfg_interval, temperature, top-k, top-p as the
        sampler). `tokens` [B, L] may come from anywhere (a student's prefix)."""
        s = self.resolve_sampling(**sampling)
        tokens = self._check_tokens(tokens)
        labels = check_labels(labels, self.num_classes, device=self.device)
        B, L = tokens.shape
        if s["cfg"] > 1.0:
            both = self.gpt(torch.cat([labels, torch.full_like(labels, self.num_classes)]), torch.cat([tokens, tokens])[:, :-1]).float()
            logits = apply_cfg(both, s["cfg"])
            if s["cfg_interval"] > -1:  # token j ≥ 1 comes from decode step j − 1; guidance stops once it passes the interval
                off = torch.arange(L, device=logits.device) - 1 > s["cfg_interval"]
                logits[:, off] = both[:B, off]
        else:
            logits = self.gpt(labels, tokens[:, :-1]).float()
        logits = logits.reshape(B * L, -1) / max(s["temperature"], 1e-5)
        if s["top_k"] > 0 or s["top_p"] < 1.0:
            logits = filter_top_k_top_p_(logits, s["top_k"], s["top_p"])
        return logits.softmax(-1).view(B, L, -1)

    @torch.no_grad()
    def sample(
        self,
        labels: torch.Tensor,
        *,
        cfg: float | None = None,
        top_k: PerScale | None = None,
        top_p: float | None = None,
        temperature: PerScale | None = None,
        seed: int | None = None,
        cfg_interval: int = -1,
    ) -> torch.Tensor:
        """Tokens [B, L] int64 from the official sampler (see `ardistill.sampling.llamagen`). CFG applies only when
        cfg > 1; top_p 0 or 1 is off; cfg_interval ≥ 0 stops guidance after that many decode steps."""
        with self.start_steps(labels, seed=seed, cfg=cfg, top_k=top_k, top_p=top_p, temperature=temperature,
                              cfg_interval=cfg_interval) as run:
            return run.run()

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens [B, L] → images [B, 3, H, W] in [0, 1] (official `decode_code`)."""
        return self._to_unit_range(self.vq.decode_indices(self._check_tokens(tokens), self.grid))

    @torch.no_grad()
    def decode_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Continuous code vectors [B, L, 8] → images [B, 3, H, W] in [0, 1], decoded without re-quantisation (as the
        Distilled Decoding release decodes its outputs: reshape to the grid, channels first, `vq.decode`)."""
        C = self.vq.config.codebook_embed_dim
        if embeddings.dim() != 3 or tuple(embeddings.shape[1:]) != (self.tokens_per_image, C):
            raise BadArgumentError(f"embeddings must have shape [B, {self.tokens_per_image}, {C}], got {list(embeddings.shape)}")
        e = embeddings.to(self.device, torch.float32)
        codes = e.reshape(e.shape[0], *self.grid, C).permute(0, 3, 1, 2)
        return self._to_unit_range(self.vq.decode(codes))

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] in [0, 1] → tokens [B, L] (nearest l2-normalised code per latent position)."""
        if images.dim() != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (self.image_size, self.image_size):
            raise BadArgumentError(f"images must have shape [B, 3, {self.image_size}, {self.image_size}], got {list(images.shape)}")
        x = images.to(self.device, torch.float32)
        return self.vq.encode_indices(x.add(x).add_(-1))


# ------------------------------------------------------------------------------------------------------ loading
def _find_tokenizer(spec: ModelSpec, transformer_path: Path | None, weights_dir) -> Path:
    """The tokenizer next to an explicitly given GPT file, else the registered file in the weights folder."""
    if transformer_path is not None and not spec.builtin:
        wf = spec.file("tokenizer")
        for p in (transformer_path.parent / wf.filename, transformer_path.parent / f"{Path(wf.filename).stem}.safetensors"):
            if p.is_file():
                return p
    return find_weight_file(spec, "tokenizer", weights_dir)


def _spec_for_file(spec: ModelSpec, transformer_path: Path | None) -> ModelSpec:
    """The image size is not in the GPT weights: `c2i_B_384.pt` selects the 384 px model of the same architecture."""
    size = image_size_from_filename(transformer_path)
    if size is None or spec.image_size == size:
        return spec
    for other in registered_llamagen_specs(spec.config, list_models()):
        if other.image_size == size:
            return other
    return spec


def load_llamagen_teacher(
    spec: ModelSpec,
    *,
    transformer_path: str | os.PathLike | None = None,
    vae_path: str | os.PathLike | None = None,
    weights_dir: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    random_init: bool = False,
    seed: int = 0,
    fast: bool = False,
    compile: bool | str | None = None,
) -> LlamaGenTeacher:
    """Build a LlamaGenTeacher for a registered spec: from the official files (strict), or randomly initialised.

    dtype: the GPT's dtype (bf16/fp16 as the official `--precision`; the KV cache follows it, logits stay fp32);
    the tokenizer decoder follows it (the encoder and quantiser stay fp32). fast / compile: the execution
    (`ardistill.sampling.fast`). random_init: the official GPT initialisation (N(0, 0.02), zero head) drawn
    from a generator seeded with `seed`, and the tokenizer's PyTorch-default initialisation under the same seed.
    """
    device = torch.device(device)
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise BadArgumentError(f"unsupported dtype {dtype}; use float32, bfloat16 or float16")
    t_path = Path(transformer_path) if transformer_path is not None else None
    spec = _spec_for_file(spec, t_path)
    config: GPTConfig = spec.config
    if random_init:
        gpt = empty_module(lambda: LlamaGenGPT(config), device)
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)
        gpt.init_weights(generator)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            vq = VQModel(config.vq)
        vq = vq.to(device)
    else:
        t_path = t_path if t_path is not None else find_weight_file(spec, "transformer", weights_dir)
        v_path = Path(vae_path) if vae_path is not None else _find_tokenizer(spec, Path(transformer_path) if transformer_path else None, weights_dir)
        gpt = load_llamagen_gpt(t_path, config, device=device)
        vq = load_vq_model(v_path, config.vq, device=device)
    defaults = SamplingSettings(**spec.sampling_defaults) if spec.sampling_defaults else None
    return LlamaGenTeacher(spec.name, gpt, vq, default_sampling=defaults, dtype=dtype, fast=fast, compile=compile)


__all__ = ["LlamaGenTeacher", "load_llamagen_teacher"]
