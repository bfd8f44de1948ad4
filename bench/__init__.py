"""Benchmarks for the speed targets of the issues: `make bench` prints the figures."""
