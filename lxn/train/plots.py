"""The figures logged with every training run: curves, confusion matrix, per-class accuracy."""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["all_figures"]


def all_figures(history: Sequence[dict[str, float]], report: dict[str, Any], class_names: Sequence[str]) -> dict:
    import matplotlib

    matplotlib.use("Agg", force=True)  # no display on training nodes
    from matplotlib import pyplot as plt

    figures = {}
    epochs = [h["epoch"] for h in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    loss_ax.plot(epochs, [h["train_loss"] for h in history], label="train")
    loss_ax.plot(epochs, [h["val_loss"] for h in history], label="val")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    acc_ax.plot(epochs, [h["train_acc"] for h in history], label="train")
    acc_ax.plot(epochs, [h["val_acc"] for h in history], label="val")
    acc_ax.set(xlabel="epoch", ylabel="top-1", title="accuracy", ylim=(0, 1))
    for ax in (loss_ax, acc_ax):
        ax.legend()
    fig.tight_layout()
    figures["training_curves"] = fig

    matrix = report["confusion_matrix"]
    size = max(5, min(40, len(class_names) * 0.25))
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="viridis")
    if len(class_names) <= 40:
        ax.set_xticks(range(len(class_names)), class_names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(class_names)), class_names, fontsize=7)
    ax.set(xlabel="predicted", ylabel="true", title="test confusion matrix")
    fig.tight_layout()
    figures["confusion_matrix"] = fig

    per_class = [report["per_class_accuracy"][name] for name in class_names]
    fig, ax = plt.subplots(figsize=(max(6, len(class_names) * 0.08), 4))
    ax.plot(range(len(class_names)), [v if v is not None else float("nan") for v in per_class], marker=".")
    ax.set(xlabel="class index", ylabel="accuracy", title="test accuracy per class", ylim=(0, 1.02))
    fig.tight_layout()
    figures["per_class_accuracy"] = fig
    return figures
