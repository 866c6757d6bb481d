"""Benchmarks against the peer libraries: `python -m benchmarks [--quick]` runs them all."""
