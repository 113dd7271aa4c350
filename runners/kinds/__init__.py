"""Benchmark kinds: the contract (``base``), the registry (``registry``) and one module per
kind.  A kind is everything that differs between benchmarks; nothing outside this package
tests a kind's name."""
