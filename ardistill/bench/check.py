"""Regression check against a committed baseline of speed-up *ratios* and measured forward-pass counts.

Absolute times on a shared CI machine are noise; ratios of two things measured in the same run are not (both
slow down together). A baseline entry is keyed "<method>@<batch>" and holds:

    speedup_total, speedup_tokens   teacher median / method median (decode included / tokens only)
    ar_steps, forward_passes_per_image   measured by forward hooks; must match exactly

A check fails where a measured count differs, or a speed-up falls below `baseline × (1 − tolerance)`.
"""

from __future__ import annotations

import json
from pathlib import Path

from ardistill.errors import ArdistillError

BASELINE_SCHEMA = "ardistill.bench.baseline/1"
RATIO_FIELDS = ("speedup_total", "speedup_tokens")
COUNT_FIELDS = ("ar_steps", "forward_passes_per_image")


def baseline_from_rows(rows: list[dict], *, note: str, tolerance: float, config: dict | None = None) -> dict:
    """A baseline document from speed rows (every row with a measured speed-up; the teacher's are 1 by definition
    but keep its counts checked). `config`: what reproduces the run (`ardistill.bench.run.BenchConfig` fields)."""
    entries = {}
    for r in rows:
        if r.get("speedup_total") is None:
            continue
        entries[f"{r['method']}@{r['batch']}"] = {k: r[k] for k in RATIO_FIELDS + COUNT_FIELDS}
    env = {k: rows[0][k] for k in ("device", "dtype", "torch", "commit", "threads")} if rows else {}
    return {"schema": BASELINE_SCHEMA, "note": note, "suggested_tolerance": tolerance, "environment": env,
            "config": config or {}, "entries": entries}


def load_baseline(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ArdistillError(f"baseline {path}: no such file")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ArdistillError(f"baseline {path}: not JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(doc, dict) or doc.get("schema") != BASELINE_SCHEMA or not isinstance(doc.get("entries"), dict):
        raise ArdistillError(f"baseline {path}: not an ardistill baseline (expected schema {BASELINE_SCHEMA!r})")
    return doc


def check_against_baseline(rows: list[dict], baseline: dict, tolerance: float) -> list[dict]:
    """One finding per compared value: {"entry", "field", "baseline", "measured", "limit", "ok"}.

    Entries of the baseline missing from the run are findings too (a method that vanished is a regression).
    """
    if not 0 <= tolerance < 1:
        raise ArdistillError(f"--tolerance must be in [0, 1), got {tolerance}")
    measured = {f"{r['method']}@{r['batch']}": r for r in rows}
    findings = []
    for key, expected in sorted(baseline["entries"].items()):
        row = measured.get(key)
        if row is None:
            findings.append({"entry": key, "field": "(row)", "baseline": "present", "measured": "missing", "limit": "present", "ok": False})
            continue
        for field in COUNT_FIELDS:
            if field in expected:
                ok = abs(float(row[field]) - float(expected[field])) < 1e-9
                findings.append({"entry": key, "field": field, "baseline": expected[field], "measured": row[field], "limit": "equal", "ok": ok})
        for field in RATIO_FIELDS:
            if expected.get(field) is None:
                continue
            limit = float(expected[field]) * (1 - tolerance)
            got = row.get(field)
            findings.append({"entry": key, "field": field, "baseline": expected[field], "measured": got, "limit": limit,
                             "ok": got is not None and got >= limit})
    return findings


def format_findings(findings: list[dict], *, only_failures: bool = False) -> str:
    """A Markdown table of the findings (the CLI prints it; CI logs stay readable)."""
    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| entry | field | baseline | measured | limit | |", "|---|---|---:|---:|---:|---|"]
    for f in findings:
        if only_failures and f["ok"]:
            continue
        limit = f"≥ {fmt(f['limit'])}" if isinstance(f["limit"], float) else f["limit"]
        lines.append(f"| {f['entry']} | {f['field']} | {fmt(f['baseline'])} | {fmt(f['measured'])} | {limit} | "
                     f"{'ok' if f['ok'] else 'REGRESSED'} |")
    return "\n".join(lines)
