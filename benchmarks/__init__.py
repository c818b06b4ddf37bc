"""Benchmarks that need a checkout of the repository (the control-plane harness of
tests/support); run from the repository root, e.g. `python -m benchmarks.bench_scheduler`."""
