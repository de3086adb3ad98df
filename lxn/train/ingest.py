"""How training data reaches the workers: the one Ray Train DataConfig lxn uses."""

from __future__ import annotations

import ray.train

__all__ = ["ExactOnceEvaluation"]


class ExactOnceEvaluation(ray.train.DataConfig):
    """Training data split equally (DDP needs every worker to take the same number of steps);
    validation and test split unequally, so every row is scored exactly once (Ray's equal split
    drops up to workers - 1 rows of each split)."""

    def configure(self, datasets, world_size, worker_handles, worker_node_ids, **kwargs):
        train = {name: dataset for name, dataset in datasets.items() if name == "train"}
        output = super().configure(train, world_size, worker_handles, worker_node_ids, **kwargs)
        for name, dataset in datasets.items():
            if name == "train":
                continue
            dataset = dataset.copy(dataset)
            dataset.context.execution_options = self._resolve_execution_options(name)
            for worker, split in enumerate(dataset.streaming_split(world_size, equal=False)):
                output[worker][name] = split
        return output
