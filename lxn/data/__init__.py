"""Datasets: readers, synthetic data, duplicate control, splits and the prepare pipeline."""
