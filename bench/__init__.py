"""Benchmarks: each measures our figure beside its bound and its peers, in the same run."""
