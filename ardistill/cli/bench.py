"""`ardistill bench`: speed (and quality) of the teacher, DD students and CoDe pairs on the same footing."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ardistill.cli.common import CompileOption, DeviceOption, DtypeOption, FastOption, RenamedOption, WeightsDirOption, console, parse_dtype, parse_int_list


def _positive_ints(text: str, name: str) -> tuple[int, ...]:
    from ardistill.errors import BadArgumentError

    values = parse_int_list(text, name) or []
    if not values or min(values) < 0:
        raise BadArgumentError(f"{name} must be a comma-separated list of non-negative integers, got {text!r}")
    return tuple(values)


def bench_command(
    teacher: str = typer.Option(..., "--teacher", help="Teacher name or checkpoint: the reference of every speed-up.", show_default=False),
    student: Optional[str] = typer.Option(None, "--student", help="DD / DD2 student folder or DD release name; 'random-init' / 'random-init-dd2' (with --random-init): a random DD student / DD2 generator, speed only."),
    dd_steps: str = typer.Option("1,2", "--dd-steps", help="Student step counts to measure (dd-1step, dd-2step, ...)."),
    drafter: Optional[str] = typer.Option(None, "--drafter", help="CoDe drafter (large model)."),
    refiner: Optional[str] = typer.Option(None, "--refiner", help="CoDe refiner (small model sharing the tokenizer)."),
    draft_steps: Optional[str] = typer.Option(None, "--draft-steps", help="CoDe drafter scales N, e.g. 2,4 (one method code-N each)."),
    baselines: Optional[str] = typer.Option(None, "--baselines", help="Naive few-step baselines of the teacher: skip-K (K AR steps replaced by one parallel step), onestep (independent tokens); e.g. skip-2,onestep."),
    batch_sizes: str = typer.Option("1,16,64", "--batch-sizes", help="Batch sizes of the speed part."),
    repeats: int = typer.Option(5, "--repeats", min=1, help="Timed repeats per method and batch size (interleaved across methods)."),
    warmup: int = typer.Option(1, "--warmup", min=0, help="Unmeasured runs before timing."),
    fid: bool = typer.Option(False, "--fid", help="Also measure FID / KID / precision-recall / IS with torch-fidelity."),
    num_samples: int = typer.Option(1000, "--num-samples", min=2, help="Images per method for --fid (ImageNet: 50000 = 50 per class)."),
    reference: Optional[str] = typer.Option(None, "--fid-ref", "--reference", help="FID reference: adm-imagenet256 (ADM reference batch; VAR/LlamaGen/CoDe tables), dd-imagenet256 (Distilled Decoding statistics; DD1/DD2 tables), or a path: .npz (mu/sigma and/or arr_0 images), statistic.pth, image folder. Default: the toy world's held-out images (built-in models). Named references live in WEIGHTS_DIR/fid-references (docs/benchmarks.md)."),
    inception_weights: Optional[str] = typer.Option(None, "--inception-weights", envvar="ARDISTILL_INCEPTION_WEIGHTS", show_envvar=True,
                                                    help="torch-fidelity's Inception weights file (ImageNet FID)."),
    out: Path = typer.Option(Path("bench"), "--out", "-o", help="Output folder: bench.json, bench.md, plots, sample grids."),
    check: Optional[Path] = typer.Option(None, "--check", help="Baseline JSON of speed-up ratios: exit 1 with a table of what regressed."),
    tolerance: float = typer.Option(0.25, "--tolerance", help="Allowed relative drop of a speed-up ratio under --check."),
    write_baseline: Optional[Path] = typer.Option(None, "--write-baseline", help="Write this run's speed-up ratios as a baseline file."),
    grids: bool = typer.Option(True, "--grids/--no-grids", help="Write a sample grid per method."),
    random_init: bool = typer.Option(False, "--random-init", help="Random weights (speed only); toy names without built-in weights come from their recipes."),
    weights_dir: Optional[str] = WeightsDirOption,
    device: str = DeviceOption,
    dtype: str = DtypeOption,
    fast: bool = FastOption,
    compile: str = CompileOption,
    seed: int = typer.Option(0, "--seed", help="Sampler seed (quality chunk c uses seed + c)."),
    old_t: Optional[str] = RenamedOption("-t", "--teacher"),
) -> None:
    """Benchmark a teacher against DD students and CoDe pairs: latency, throughput, memory, speed-up, quality.

    Example: ardistill bench --teacher var-toy-l --drafter var-toy-l --refiner var-toy-s --draft-steps 2,4 --batch-sizes 1,16 --out bench/
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ardistill import distributed
    from ardistill.bench import check as checks
    from ardistill.bench.report import write_run
    from ardistill.bench.run import BenchConfig, Progress as RunProgress, config_summary, run_benchmark
    from ardistill.bench.speed import SpeedSettings
    from ardistill.cli.common import out_path, resolve_device
    from ardistill.images import save_grid
    from ardistill.io import atomic_write_json
    from ardistill.sampling.fast import resolve_compile

    baseline = checks.load_baseline(check) if check is not None else None
    if write_baseline is not None:
        out_path(write_baseline)
    cfg = BenchConfig(
        teacher=teacher, student=str(student) if student else None, dd_steps=_positive_ints(dd_steps, "--dd-steps"),
        drafter=drafter, refiner=refiner, draft_steps=_positive_ints(draft_steps, "--draft-steps") if draft_steps else (),
        baselines=tuple(b.strip() for b in baselines.split(",") if b.strip()) if baselines else (),
        speed=SpeedSettings(batch_sizes=_positive_ints(batch_sizes, "--batch-sizes"), warmup=warmup, repeats=repeats, seed=seed),
        fid=fid, num_samples=num_samples, reference=reference, inception_weights=inception_weights, random_init=random_init,
        weights_dir=weights_dir, device=str(resolve_device(device)), dtype=parse_dtype(dtype), seed=seed,
        fast=fast, compile=resolve_compile(compile, resolve_device(device)),
    )
    out.mkdir(parents=True, exist_ok=True)

    def save_method_grid(name: str, images, caption: str) -> str:
        fname = f"grid-{name}.png"
        save_grid(images, out / fname, caption=caption)
        return fname

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        class _Bar(RunProgress):
            task = None

            def start(self, label: str, total: int) -> None:
                self.task = bar.add_task(label, total=total)

            def advance(self, n: int = 1) -> None:
                bar.advance(self.task, n)

            def done(self) -> None:
                bar.remove_task(self.task)

        doc = run_benchmark(cfg, progress=_Bar(), on_grid=save_method_grid if grids and distributed.is_main() else None)
    if not distributed.is_main():  # under torchrun every rank made its share of the FID samples; rank 0 reports
        return
    for path in write_run(out, doc):
        console.print(f"wrote {path}")
    if write_baseline is not None:
        note = ("Measured with random-init weights of the toy configs (built-in weights not present); "
                if cfg.random_init else "Measured on the built-in models; ") + f"{doc['environment']['device']}, {doc['environment']['dtype']}."
        atomic_write_json(write_baseline, checks.baseline_from_rows(doc["speed"], note=note, tolerance=tolerance, config=config_summary(cfg)))
        console.print(f"wrote {write_baseline}")
    if baseline is not None:
        findings = checks.check_against_baseline(doc["speed"], baseline, tolerance)
        failed = [f for f in findings if not f["ok"]]
        console.print(checks.format_findings(findings), markup=False)
        if failed:
            console.print(f"REGRESSION: {len(failed)} of {len(findings)} checks failed against {check} (tolerance {tolerance})", markup=False)
            raise typer.Exit(1)
        console.print(f"check passed: {len(findings)} values within tolerance {tolerance} of {check}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_command)
