"""Metamorphic variants of the positive fixtures (issue 14): ``generator`` makes them, ``harness``
runs a codemod (text tier) or the CLI (torch tier) on them and writes benchmarks/results/variants.md."""
