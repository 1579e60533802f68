"""The parts of the scaling benchmark (`benchmarks/scale_bench.py`): one module per cost, each
returning `Row`s measured at several cluster sizes against a baseline of the same run."""
