"""Time ardistill's samplers against the official VAR and LlamaGen code, side by side in one process.

    python benchmarks/vs_official.py --var-repo ~/src/VAR --llamagen-repo ~/src/LlamaGen \\
        --batch-sizes 1,16 --out bench-vs-official

The official repositories are checkouts you provide (FoundationVision/VAR, FoundationVision/LlamaGen); nothing from
them is part of ardistill. Both implementations get the *same* random weights (ours are built first and loaded into
the official modules with strict=True), the same class labels, seed and sampling settings:

- VAR-d16: 10 scales, CFG 1.5, top-k 900, top-p 0.95, including the VQVAE decode (the official sampler returns
  images). Our decode time is also reported on its own.
- LlamaGen-B: 256 tokens, CFG 2.0, top-k 2000, KV cache, no decode (as the official `generate`).

Our variants: the reference path (fp32 eager — it must give the official tokens; checked and reported), the fp32
fast path, the bf16 (CPU) / fp16 and bf16 (GPU) fast path, and optionally compiled ones (`--compile MODE`).
Every variant runs `--warmup` untimed and `--repeats` timed times; the median is reported with the speed-up over the
official sampler measured in the same process. Writes JSON + Markdown to --out.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import types
from datetime import date
from pathlib import Path

import torch

import ardistill
from ardistill.io import atomic_write_text


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, warmup: int, repeats: int) -> tuple[float, object]:
    """Median wall time in ms of `repeats` calls after `warmup` calls, and the last result."""
    out = None
    for _ in range(warmup):
        out = fn()
    sync(device)
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times), out


def import_official(repo: Path, probe: str) -> None:
    """Put an official checkout on sys.path (VAR imports huggingface_hub only for a mixin: stubbed when absent)."""
    if not (repo / probe).is_file():
        sys.exit(f"error: {repo} is not the expected checkout (no {probe}); pass the repository's root folder")
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        stub = types.ModuleType("huggingface_hub")
        stub.PyTorchModelHubMixin = type("PyTorchModelHubMixin", (), {})
        sys.modules["huggingface_hub"] = stub
    sys.path.insert(0, str(repo))


def variants(device: torch.device, compile_mode: str | None, *, fast_fp32: bool = True) -> list[tuple[str, dict]]:
    """(label, load_teacher options) of the ardistill paths to time. VAR has no separate fp32 fast loop (its
    reference already runs one static-cache forward per scale), so `fast_fp32=False` leaves that row out."""
    low = [("bf16", dict(dtype="bf16"))] if device.type == "cpu" else [("fp16", dict(dtype="fp16")), ("bf16", dict(dtype="bf16"))]
    out = [("ardistill reference fp32", {})] + ([("ardistill fast fp32", dict(fast=True))] if fast_fp32 else [])
    out += [(f"ardistill fast {name}", kw) for name, kw in low]
    if compile_mode:
        out += [(f"ardistill compiled ({compile_mode}) {name}", dict(kw, compile=compile_mode)) for name, kw in [("fp32", {})] + low]
    return out


def bench_var(args, device: torch.device) -> list[dict]:
    settings = dict(cfg=1.5, top_k=900, top_p=0.95)
    teachers = {label: ardistill.load_teacher("var-d16", random_init=True, seed=0, device=device, **kw)
                for label, kw in variants(device, args.compile, fast_fp32=False)}
    import_official(Path(args.var_repo), "models/var.py")
    from models import build_vae_var  # official

    ref = teachers["ardistill reference fp32"]
    vae, var = build_vae_var(device, ref.patch_nums, V=4096, Cvae=32, ch=160, share_quant_resi=4, num_classes=1000, depth=16,
                             shared_aln=False, flash_if_available=device.type == "cuda", fused_if_available=device.type == "cuda")
    vae.load_state_dict(ref.vae.state_dict(), strict=True)
    var.load_state_dict(ref.transformer.state_dict(), strict=True)
    vae.eval(), var.eval()
    rows = []
    for B in args.batch_sizes:
        labels = torch.arange(B, device=device) % 1000
        amp = torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda" and args.official_amp)

        def official():
            with torch.inference_mode(), amp:
                return var.autoregressive_infer_cfg(B, labels, g_seed=args.seed, more_smooth=False, **settings)

        ms, off_img = timed(official, device, args.warmup, args.repeats)
        base = ms
        rows.append(dict(model="VAR-d16", batch=B, variant="official" + (" (fp16 autocast)" if device.type == "cuda" and args.official_amp else " fp32"),
                         ms=ms, speedup=1.0))
        print(f"VAR-d16 B={B} official: {ms:.0f} ms", flush=True)
        for label, teacher in teachers.items():
            def ours(t=teacher):
                with torch.inference_mode():
                    return t.decode(t.sample(labels, seed=args.seed, **settings))

            total, img = timed(ours, device, args.warmup, args.repeats)
            tokens = teacher.sample(labels, seed=args.seed, **settings)
            decode_ms, _ = timed(lambda t=teacher, k=tokens: t.decode(k), device, 1, args.repeats)
            row = dict(model="VAR-d16", batch=B, variant=label, ms=total, decode_ms=decode_ms, speedup=base / total)
            if label == "ardistill reference fp32":
                row["max_abs_image_diff_vs_official"] = float((img.float() - off_img.float()).abs().max())
            rows.append(row)
            print(f"VAR-d16 B={B} {label}: {total:.0f} ms (decode {decode_ms:.0f}), {row['speedup']:.2f}x", flush=True)
    return rows


def bench_llamagen(args, device: torch.device) -> list[dict]:
    settings = dict(cfg=2.0, top_k=2000, top_p=1.0)
    teachers = {label: ardistill.load_teacher("llamagen-b", random_init=True, seed=0, device=device, **kw) for label, kw in variants(device, args.compile)}
    import_official(Path(args.llamagen_repo), "autoregressive/models/gpt.py")
    from autoregressive.models.generate import generate  # official
    from autoregressive.models.gpt import ModelArgs, Transformer

    ref = teachers["ardistill reference fp32"]
    c = ref.gpt.config
    gpt = Transformer(ModelArgs(dim=c.dim, n_layer=c.n_layer, n_head=c.n_head, n_kv_head=c.n_kv_head, num_classes=c.num_classes,
                                vocab_size=c.vocab_size, block_size=c.block_size, cls_token_num=1, model_type="c2i")).to(device)
    gpt.load_state_dict(ref.gpt.state_dict(), strict=True)
    gpt.eval()
    official_dtype = torch.bfloat16 if device.type == "cuda" and args.official_amp else torch.float32
    gpt.to(official_dtype)
    rows = []
    for B in args.batch_sizes:
        labels = torch.arange(B, device=device) % 1000

        def official():
            torch.manual_seed(args.seed)
            with torch.no_grad():
                return generate(gpt, labels, c.block_size, cfg_scale=settings["cfg"], top_k=settings["top_k"], top_p=settings["top_p"],
                                temperature=1.0, sample_logits=True)

        ms, off_tokens = timed(official, device, args.warmup, args.repeats)
        base = ms
        rows.append(dict(model="LlamaGen-B", batch=B, variant=f"official {str(official_dtype).removeprefix('torch.')}", ms=ms, speedup=1.0))
        print(f"LlamaGen-B B={B} official: {ms:.0f} ms", flush=True)
        for label, teacher in teachers.items():
            total, tokens = timed(lambda t=teacher: t.sample(labels, seed=args.seed, **settings), device, args.warmup, args.repeats)
            row = dict(model="LlamaGen-B", batch=B, variant=label, ms=total, speedup=base / total,
                       ms_per_token=total / c.block_size)
            if "fp32" in label and official_dtype == torch.float32:
                row["tokens_equal_official"] = bool(torch.equal(tokens.cpu(), off_tokens.cpu().long()))
            rows.append(row)
            print(f"LlamaGen-B B={B} {label}: {total:.0f} ms, {row['speedup']:.2f}x", flush=True)
    return rows


def markdown(doc: dict) -> str:
    env = doc["environment"]
    lines = [f"Measured {env['date']} on {env['device']}, torch {env['torch']}, {env['threads']} threads; median of {doc['repeats']} "
             f"runs after {doc['warmup']} warm-up; random weights shared by both implementations.", "",
             "| model | B | implementation | ms | speed-up vs official | decode ms | check |", "|---|---:|---|---:|---:|---:|---|"]
    for r in doc["rows"]:
        check = ""
        if "tokens_equal_official" in r:
            check = "tokens = official" if r["tokens_equal_official"] else "tokens differ"
        if "max_abs_image_diff_vs_official" in r:
            check = f"images max |Δ| {r['max_abs_image_diff_vs_official']:.1e}"
        lines.append(f"| {r['model']} | {r['batch']} | {r['variant']} | {r['ms']:.0f} | {r['speedup']:.2f}× | "
                     f"{r['decode_ms']:.0f} | {check} |" if "decode_ms" in r else
                     f"| {r['model']} | {r['batch']} | {r['variant']} | {r['ms']:.0f} | {r['speedup']:.2f}× | | {check} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--var-repo", help="checkout of FoundationVision/VAR (skip VAR when absent)")
    ap.add_argument("--llamagen-repo", help="checkout of FoundationVision/LlamaGen (skip LlamaGen when absent)")
    ap.add_argument("--batch-sizes", default="1,16", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--compile", default=None, help="also time compiled paths with this torch.compile mode")
    ap.add_argument("--no-official-amp", dest="official_amp", action="store_false",
                    help="on a GPU, run the official code in fp32 (default: fp16 autocast for VAR, bf16 for LlamaGen, as their scripts)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench-vs-official")
    args = ap.parse_args(argv)
    if not args.var_repo and not args.llamagen_repo:
        ap.error("give --var-repo and/or --llamagen-repo (checkouts of the official repositories)")
    device = torch.device(args.device)
    rows = []
    if args.llamagen_repo:
        rows += bench_llamagen(args, device)
    if args.var_repo:
        rows += bench_var(args, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine()) + " CPU"
    doc = dict(rows=rows, warmup=args.warmup, repeats=args.repeats,
               environment=dict(date=date.today().isoformat(), device=name, torch=torch.__version__, threads=torch.get_num_threads()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "vs_official.json", json.dumps(doc, indent=2))
    atomic_write_text(out / "vs_official.md", markdown(doc))
    print(markdown(doc))


if __name__ == "__main__":
    main()
