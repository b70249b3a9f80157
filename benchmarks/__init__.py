"""Benchmarks: ``python -m benchmarks.<topic>`` from the repo root, each ending in ``RESULT {json}``."""
