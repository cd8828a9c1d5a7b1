"""Pipelines: jobs that compose methods with the benchmark and resolve model names (above `methods/` and `bench/`).

- `distill`: teacher name → trajectories → DD student → benchmark → report (`ardistill distill`).
- `code_sweep`: CoDe's speed / quality over a range of drafter steps (`ardistill code sweep`).
"""
