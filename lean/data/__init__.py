"""Datasets, augmentation and batching.

``load(name)`` returns a ``Dataset`` with raw images kept compact (uint8 where the source is) in channels-last
``(n, h, w, c)`` layout; ``Dataset.train_batch(indices, rng, mean, std)`` returns normalized float32 batches.
"""

from .augment import random_crop_flip
from .datasets import DATASETS, DataError, Dataset, available, catalog, is_data_file, load

__all__ = ["DATASETS", "Dataset", "DataError", "available", "catalog", "is_data_file", "load", "random_crop_flip"]
