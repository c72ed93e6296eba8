"""Benchmarks that print their figures; never part of `make test`."""
