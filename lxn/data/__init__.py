"""Datasets: readers, synthetic data, deduplication, splitting and the prepare pipeline."""
