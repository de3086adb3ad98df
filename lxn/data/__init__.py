"""Datasets: readers for the public logo datasets, the synthetic generator, dedup, splits and prepare."""
