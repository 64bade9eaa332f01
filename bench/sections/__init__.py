"""One module per section of the benchmark; each has `run(ctx) -> dict` (see bench/run.py)."""
