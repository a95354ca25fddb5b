"""pytest-benchmark configuration for benchmarks/: nothing shared yet beyond this note.

Run `pytest benchmarks --benchmark-only` for pytest-benchmark's statistics, or
`pytest benchmarks --benchmark-disable` to run each benchmark once as a smoke test (CI does).
"""
