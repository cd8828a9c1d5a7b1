"""Benchmarks: timing, memory and quality measurements, reports, regression checks."""
