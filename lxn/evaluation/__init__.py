"""Evaluation: labelled images through the scan's own fetch -> decode -> predict path, scored.

labelled.py (what a labelled set is), scoring.py (the Ray Data pipeline), report.py (figures,
files), job.py (the `jobs/evaluate.py` job, also used by promotion).
"""
