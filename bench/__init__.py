"""The benchmark suite: `python bench/run.py` measures everything side by side and prints a table."""
