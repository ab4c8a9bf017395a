"""Confide's benchmarks: DP-SGD overhead, engine overhead, privacy throughput, scale, utility.

Run everything with ``python -m confide.benchmarks`` (``--quick`` for development). Results go to
``benchmarks/results/*.json`` (generated, git-ignored); the full run rewrites ``BENCHMARKS.md``.
"""
