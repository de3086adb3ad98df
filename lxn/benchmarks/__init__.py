"""Benchmarks: jobs that measure and write figures (never timed tests)."""
