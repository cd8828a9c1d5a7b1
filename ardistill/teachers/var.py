"""VAR teacher: the VAR transformer + the multi-scale VQVAE + the reference sampler behind the Teacher protocol.

Tokens are [B, L] int64 with the scales concatenated coarse → fine (L = 680 at 256 px), raster order inside a
scale. Images are [B, 3, H, W] in [0, 1].
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ardistill.errors import BadArgumentError
from ardistill.models.var.checkpoint import empty_module, load_var_transformer, load_vqvae
from ardistill.models.var.config import VARConfig
from ardistill.models.var.transformer import VARTransformer
from ardistill.models.var.vqvae import VQVAE
from ardistill.registry import ModelSpec, find_weight_file
from ardistill.sampling.fast import autocast, cast_matrices_, lower_precision_, make_fast_options
from ardistill.sampling.var import VARStepRun, apply_cfg, guidance_at_scale, per_scale, sampling_logits
from ardistill.teachers.base import PerScale, SamplingSettings, check_labels, check_sampling, merge_sampling


class VARTeacher:
    """An official VAR model (transformer + tokenizer) with exact fp32 logits, sampling, decoding and encoding."""

    family = "var"
    # What its step sampler can do beyond the common protocol (methods ask for capabilities, never for a family):
    # "prefix_draws": the official CoDe hand-off; "one_pass_finish": the naive skip-K finish in one forward.
    step_features = frozenset({"prefix_draws", "one_pass_finish"})

    def __init__(self, name: str, transformer: VARTransformer, vae: VQVAE, *, default_sampling: SamplingSettings | None = None,
                 dtype: torch.dtype = torch.float32, fast: bool = False, compile: bool | str | None = None):
        self.name = name
        self.transformer = transformer.eval().requires_grad_(False)
        self.vae = vae.eval().requires_grad_(False)
        # fp32: exact. bf16/fp16: the transformer's matrices and the tokenizer decoder are stored in that dtype and
        # run under autocast (as the official demos' autocast, without re-casting fp32 weights at every call).
        self.options = make_fast_options(fast=fast, compile=compile, dtype=dtype, device=self.device)
        self.dtype = self.options.dtype
        if self.dtype != torch.float32:
            cast_matrices_(self.transformer, self.dtype, skip=("word_embed",))  # word_embed also runs outside autocast
            lower_precision_(self.vae.decoder, self.dtype)
            lower_precision_(self.vae.post_quant_conv, self.dtype)
        cfg: VARConfig = transformer.config
        self.patch_nums = tuple(cfg.patch_nums)
        if tuple(vae.patch_nums) != self.patch_nums:
            raise BadArgumentError(f"tokenizer patch_nums {list(vae.patch_nums)} differ from the transformer's {list(self.patch_nums)}")
        self.num_classes = cfg.num_classes
        self.vocab_size = cfg.vocab_size
        self.tokens_per_image = cfg.seq_len
        self.image_size = self.patch_nums[-1] * vae.config.downsample
        self.default_sampling = default_sampling or SamplingSettings(cfg=1.5, top_k=900, top_p=0.96, temperature=1.0)

    # ---------------------------------------------------------------------------------------------- properties
    @property
    def codebook(self) -> torch.Tensor:
        """[V, Cvae] code vectors (the VQVAE embedding; the transformer consumes them through word_embed)."""
        return self.vae.quantize.embedding.weight

    @property
    def device(self) -> torch.device:
        return self.transformer.head.weight.device

    @property
    def num_scales(self) -> int:
        return len(self.patch_nums)

    @property
    def num_steps(self) -> int:
        """AR steps per image: the scales."""
        return len(self.patch_nums)

    @property
    def step_sizes(self) -> tuple[int, ...]:
        """Tokens per AR step: pn² per scale."""
        return tuple(pn * pn for pn in self.patch_nums)

    @property
    def network(self) -> VARTransformer:
        """The AR network (what a student is initialised from and what benchmarks count forward passes of)."""
        return self.transformer

    @property
    def tokenizer(self):
        """The image tokenizer (the multi-scale VQVAE): encoder, quantiser and decoder."""
        return self.vae

    @property
    def quantizer(self):
        """The tokenizer's quantiser (codebook and φ convolutions): two models share a tokenizer iff these match."""
        return self.vae.quantize

    def num_parameters(self) -> int:
        """Transformer parameters (buffers and tokenizer excluded): 310,283,520 for VAR-d16."""
        return sum(p.numel() for p in self.transformer.parameters())

    def _autocast(self):
        return autocast(self.device, self.dtype)

    def split_scales(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """[B, L] → per-scale [B, pn²] views."""
        return list(torch.split(tokens, [pn * pn for pn in self.patch_nums], dim=1))

    def _check_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = torch.as_tensor(tokens, device=self.device)
        if tokens.dim() != 2 or tokens.shape[1] != self.tokens_per_image:
            raise BadArgumentError(f"tokens must have shape [B, {self.tokens_per_image}], got {list(tokens.shape)}")
        if tokens.is_floating_point():
            raise BadArgumentError("tokens must be integer codebook indices")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.vocab_size):
            raise BadArgumentError(f"token ids must be in [0, {self.vocab_size}), got {int(tokens.min())}..{int(tokens.max())}")
        return tokens.long()

    # ------------------------------------------------------------------------------------------------- protocol
    @torch.no_grad()
    def logits(self, labels: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits [B, L, V] fp32, one forward pass, no CFG and no label dropout: position i
        (scale s) predicts token i from the class and all tokens of scales < s."""
        tokens = self._check_tokens(tokens)
        labels = check_labels(labels, self.num_classes, device=self.device)
        if labels.shape[0] != tokens.shape[0]:
            raise BadArgumentError(f"{labels.shape[0]} labels for {tokens.shape[0]} token sequences")
        x = self.vae.quantize.idx_to_var_input(self.split_scales(tokens))
        with self._autocast():
            return self.transformer(labels, x).float()

    def resolve_sampling(self, *, cfg=None, top_k=None, top_p=None, temperature=None, cfg_interval=None) -> dict:
        """The default sampling settings with overrides, validated: {cfg, top_k, top_p, temperature} (top_k and
        temperature may be per-scale lists). cfg_interval is a LlamaGen setting and refused."""
        if cfg_interval not in (None, -1):
            raise BadArgumentError("cfg_interval is a LlamaGen setting; VAR ramps its guidance over the scales")
        s = merge_sampling(self.default_sampling, cfg=cfg, top_k=top_k, top_p=top_p, temperature=temperature)
        check_sampling(s, vocab_size=self.vocab_size, steps=self.num_scales)
        return s.to_dict()

    @torch.no_grad()
    def start_steps(self, labels, *, seed: int | None = None, prefix: torch.Tensor | None = None, prefix_draws: bool = False,
                    stop: int | None = None, **sampling) -> VARStepRun:
        """A step sampler over this model (`ardistill.sampling.steps`): one AR step = one scale.

        prefix: tokens [B, n] of whole scales 0..N−1 read in one prefill (the run starts at scale N); prefix_draws:
        the official CoDe refiner's discarded draws for them. stop: the last step the run will reach (a shorter KV
        cache). sampling: cfg, top_k, top_p, temperature overrides of the defaults."""
        s = self.resolve_sampling(**sampling)
        labels = check_labels(labels, self.num_classes, device=self.device)
        return VARStepRun(self.transformer, self.vae, labels, cfg=float(s["cfg"]), top_k=s["top_k"], top_p=float(s["top_p"]),
                          temperature=s["temperature"], seed=seed, prefix=prefix, prefix_draws=prefix_draws, stop=stop,
                          options=self.options)

    @torch.no_grad()
    def sampling_probs(self, labels, tokens: torch.Tensor, **sampling) -> torch.Tensor:
        """The distribution the sampler would draw each token from, given the tokens before it: [B, L, V] fp32, in one
        teacher-forced forward of both CFG halves (per-scale CFG ramp, top-k, top-p, temperature as the sampler).
        `tokens` [B, L] may come from anywhere (a student's prefix); position i depends only on scales before its own."""
        s = self.resolve_sampling(**sampling)
        tokens = self._check_tokens(tokens)
        labels = check_labels(labels, self.num_classes, device=self.device)
        x = self.vae.quantize.idx_to_var_input(self.split_scales(tokens))
        null = torch.full_like(labels, self.num_classes)
        with self._autocast():
            logits = self.transformer(torch.cat([labels, null]), torch.cat([x, x])).float()  # [2B, L, V]
        top_ks, temps = per_scale(s["top_k"], self.num_scales, "top_k"), per_scale(s["temperature"], self.num_scales, "temperature")
        out = []
        for si, (begin, end) in enumerate(self.transformer.scale_slices):
            lg = apply_cfg(logits[:, begin:end], guidance_at_scale(float(s["cfg"]), si, self.num_scales))
            out.append(sampling_logits(lg, top_k=int(top_ks[si]), top_p=float(s["top_p"]), temperature=temps[si]).softmax(-1))
        return torch.cat(out, dim=1)

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
    ) -> torch.Tensor:
        """Tokens [B, L] int64 from the official sampler (see `ardistill.sampling.var`); top_k and temperature may
        be one value or one per scale; missing settings come from `default_sampling`."""
        with self.start_steps(labels, seed=seed, cfg=cfg, top_k=top_k, top_p=top_p, temperature=temperature) as run:
            return run.run()

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens [B, L] → images [B, 3, H, W] in [0, 1] (f_hat accumulated exactly as during sampling)."""
        f_hat = self.vae.idx_to_fhat(self.split_scales(self._check_tokens(tokens)))
        return self.vae.fhat_to_img(f_hat).add_(1).mul_(0.5)

    @torch.no_grad()
    def decode_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Continuous code vectors [B, L, Cvae] → images [B, 3, H, W] in [0, 1]: every scale is bicubic-upsampled,
        passed through its φ and accumulated, as the official Distilled Decoding release decodes its outputs."""
        if embeddings.dim() != 3 or tuple(embeddings.shape[1:]) != (self.tokens_per_image, self.vae.quantize.Cvae):
            raise BadArgumentError(f"embeddings must have shape [B, {self.tokens_per_image}, {self.vae.quantize.Cvae}], got {list(embeddings.shape)}")
        f_hat = self.vae.quantize.embeddings_to_fhat(embeddings.to(self.device))
        return self.vae.fhat_to_img(f_hat).add_(1).mul_(0.5)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] in [0, 1] → tokens [B, L] (nearest code per scale of the residual pyramid)."""
        if images.dim() != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (self.image_size, self.image_size):
            raise BadArgumentError(f"images must have shape [B, 3, {self.image_size}, {self.image_size}], got {list(images.shape)}")
        x = images.to(self.device, torch.float32)
        return torch.cat(self.vae.img_to_idx(x.add(x).add_(-1)), dim=1)


# ------------------------------------------------------------------------------------------------------ loading
def _find_tokenizer(spec: ModelSpec, transformer_path: Path | None, weights_dir) -> Path:
    """The tokenizer next to an explicitly given transformer file, else the registered file in the weights folder."""
    if transformer_path is not None and not spec.builtin:
        wf = spec.file("tokenizer")
        for p in (transformer_path.parent / wf.filename, transformer_path.parent / f"{Path(wf.filename).stem}.safetensors"):
            if p.is_file():
                return p
    return find_weight_file(spec, "tokenizer", weights_dir)


def _random_vqvae(config, seed: int, device: torch.device) -> VQVAE:
    # PyTorch's default layer initialisation (the official code never initialises the VQVAE), seeded locally.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = VQVAE(config)
    return vae.to(device)


def load_var_teacher(
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
) -> VARTeacher:
    """Build a VARTeacher for a registered spec: from the official files (strict), or randomly initialised.

    Files: `transformer_path` / `vae_path` when given, else the registered file names in `weights_dir`
    ($ARDISTILL_HOME, ~/.cache/ardistill); a tokenizer next to an explicit transformer file is preferred.
    random_init: the official initialisation scheme for the transformer and PyTorch defaults for the VQVAE,
    both seeded with `seed`; no files are read. dtype / fast / compile: the execution (`ardistill.sampling.fast`).
    """
    device = torch.device(device)
    config: VARConfig = spec.config
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise BadArgumentError(f"unsupported dtype {dtype}; use float32, bfloat16 or float16")
    if random_init:
        transformer = empty_module(lambda: VARTransformer(config), device)
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)
        transformer.init_weights(generator)
        vae = _random_vqvae(config.vae, seed, device)
    else:
        t_path = Path(transformer_path) if transformer_path is not None else find_weight_file(spec, "transformer", weights_dir)
        v_path = Path(vae_path) if vae_path is not None else _find_tokenizer(spec, Path(transformer_path) if transformer_path else None, weights_dir)
        transformer = load_var_transformer(t_path, config, device=device)
        vae = load_vqvae(v_path, config.vae, device=device)
    defaults = SamplingSettings(**spec.sampling_defaults) if spec.sampling_defaults else None
    return VARTeacher(spec.name, transformer, vae, default_sampling=defaults, dtype=dtype, fast=fast, compile=compile)


__all__ = ["VARTeacher", "load_var_teacher"]
