"""Accuracy and cost of the DD flow-map solvers: how few ODE steps keep the token frequencies unbiased.

    python benchmarks/flow_map_accuracy.py --teacher var-toy-l --out benchmarks/results/flow-map-var-toy-l.json

On a teacher's codebook (`[V, C]`), `--rows` peaked categorical distributions p ~ Dirichlet(`--alpha`) (top-k-free
teacher rows look like this: a few dominant codes, a long tail) and `--num` Gaussian noise vectors (row i % rows),
each solver/step setting maps the noise to tokens. Reported per setting: seconds, the χ² p-value of the token
counts against p (pooled over rows; cells with an expected count < 5 merged per row), and the share of tokens equal
to the reference (the first setting: many fp64 Euler steps). A biased solver gets a tiny p-value; the reference
itself must not.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import ardistill
from ardistill.io import atomic_write_json
from ardistill.methods.dd.flow import FlowMapConfig, flow_map_tokens

DEFAULT_SETTINGS = "euler:400,euler:200,euler:100,euler:50,dpm2m:100,dpm2m:50,dpm2m:30,dpm2m:20,dpm2m:12"


def pooled_chi_square_pvalue(tokens: torch.Tensor, rows: torch.Tensor, p: torch.Tensor) -> float:
    """χ² goodness of fit of tokens [N] drawn from rows [N] of p [R, V]; per row, cells with expected < 5 merged."""
    R, V = p.shape
    n_per_row = torch.bincount(rows, minlength=R).double()
    obs = torch.zeros(R, V, dtype=torch.float64).index_put_((rows, tokens), torch.ones(len(tokens), dtype=torch.float64),
                                                           accumulate=True)
    exp = p.double() * n_per_row[:, None]
    big = exp >= 5.0
    stat = (((obs - exp) ** 2 / exp.clamp_min(1e-300)) * big).sum()
    o_rest, e_rest = (obs * ~big).sum(1), (exp * ~big).sum(1)
    has_rest = e_rest > 0
    stat = stat + ((o_rest - e_rest) ** 2 / e_rest.clamp_min(1e-300))[has_rest].sum()
    dof = int(big.sum()) + int(has_rest.sum()) - R
    return torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64), stat / 2).item()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default="var-toy-l", help="whose codebook (built-in name or path)")
    ap.add_argument("--rows", type=int, default=200, help="distinct distributions p")
    ap.add_argument("--num", type=int, default=20_000, help="noise vectors")
    ap.add_argument("--alpha", type=float, default=0.05, help="Dirichlet concentration of p (small = peaked)")
    ap.add_argument("--settings", default=DEFAULT_SETTINGS, help="solver:steps,... (the first is the reference)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="JSON file for the results")
    args = ap.parse_args(argv)

    codebook = ardistill.load_teacher(args.teacher).codebook.double()
    V, C = codebook.shape
    g = torch.Generator().manual_seed(args.seed)
    gamma = torch._standard_gamma(torch.full((args.rows, V), args.alpha, dtype=torch.float64), generator=g)
    p = gamma / gamma.sum(1, keepdim=True)
    rows = torch.arange(args.num) % args.rows
    log_p = p.clamp_min(1e-300).log()[rows]
    noise = torch.randn(args.num, C, generator=g, dtype=torch.float64)

    results, reference = [], None
    print(f"{args.teacher}: codebook {V} x {C}, {args.rows} Dirichlet({args.alpha}) rows, {args.num} noise vectors, "
          f"{torch.get_num_threads()} threads")
    print(f"{'solver':>8} {'steps':>6} {'seconds':>8} {'chi2 p':>10} {'same as ref':>12}")
    for item in args.settings.split(","):
        solver, steps = item.split(":")
        t0 = time.perf_counter()
        tokens = flow_map_tokens(log_p, noise, codebook, FlowMapConfig(steps=int(steps), solver=solver))
        seconds = time.perf_counter() - t0
        reference = tokens if reference is None else reference
        row = {"solver": solver, "steps": int(steps), "seconds": round(seconds, 2),
               "chi2_pvalue": pooled_chi_square_pvalue(tokens, rows, p),
               "same_as_reference": float((tokens == reference).double().mean())}
        results.append(row)
        print(f"{solver:>8} {steps:>6} {seconds:8.1f} {row['chi2_pvalue']:10.3g} {100 * row['same_as_reference']:11.2f}%",
              flush=True)
    if args.out:
        atomic_write_json(args.out, {"teacher": args.teacher, "codebook": [V, C], "rows": args.rows, "num": args.num,
                                     "alpha": args.alpha, "threads": torch.get_num_threads(),
                                     "reference": args.settings.split(",")[0], "results": results})


if __name__ == "__main__":
    main()
