"""Datasets: readers of the published logo datasets, and the preparation pipeline built on them.

`readers` turns a dataset root (local or s3://) into a stream of labelled `Sample`s, one reader
per published layout; everything else here consumes those streams. Submodules are imported
explicitly (`from lxn.data import readers`), so importing this package loads nothing heavy.
"""
