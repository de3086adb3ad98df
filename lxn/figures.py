"""Figures more than one report draws (matplotlib, headless)."""

from __future__ import annotations

from typing import Mapping

import numpy as np

__all__ = ["pyplot", "per_class_accuracy"]


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)  # no display on cluster nodes
    from matplotlib import pyplot as plt

    return plt


def per_class_accuracy(series: Mapping[str, Mapping[str, float | None]], title: str):
    """Horizontal bars of per-class accuracy, one bar per series (model) and class, sorted by the
    first series; the figure grows with the class count so that 194 classes stay readable."""
    plt = pyplot()
    first = next(iter(series.values()))
    names = sorted((n for n, v in first.items() if v is not None), key=lambda n: (first[n], n))
    height = max(3.0, 0.13 * len(names) * max(1, len(series)) ** 0.5 + 1.0)  # ~10 px a class
    fig, ax = plt.subplots(figsize=(7, height))
    bar = 0.8 / len(series)
    for j, (label, values) in enumerate(series.items()):
        ax.barh(np.arange(len(names)) + j * bar, [values.get(n) or 0.0 for n in names], height=bar, label=label)
    ax.set_yticks(np.arange(len(names)) + bar * (len(series) - 1) / 2, names, fontsize=6 if len(names) > 60 else 8)
    ax.set(xlim=(0, 1), xlabel="accuracy", title=title)
    ax.legend(fontsize=7, loc="lower right")
    ax.margins(y=0.005)
    fig.tight_layout()
    return fig
