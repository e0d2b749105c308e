"""Long-tailed benchmarks' data: CIFAR-LT arrays, split-file datasets, the eval sets, samplers, batched transforms and
the loader. What each benchmark is (classes, normalisation, splits, imbalance factors) is its row in
`ltzoo.benchmarks`."""

from .cifar import CifarDataset, LongTailedCifar, cifar_lt, img_num_per_cls, long_tailed_indices
from .loader import ArrayLoader, Batch, BatchedDataLoader, with_transform
from .samplers import ClassAwareSampler, InstanceSampler, ShardedSampler, class_probabilities
from .shots import SHOT_RULE, shot_groups
from .sources import CifarArrays, DatasetNotFoundError, load_cifar
from .splits import SplitFileDataset, find_split_list, read_split_list
from .transforms import benchmark_train_transform, eval_transform_from_cfg

__all__ = [
    "SHOT_RULE", "ArrayLoader", "Batch", "BatchedDataLoader", "CifarArrays", "CifarDataset",
    "ClassAwareSampler",
    "DatasetNotFoundError", "InstanceSampler", "LongTailedCifar", "ShardedSampler", "SplitFileDataset",
    "benchmark_train_transform", "cifar_lt", "class_probabilities", "eval_transform_from_cfg", "find_split_list",
    "img_num_per_cls", "load_cifar", "long_tailed_indices", "read_split_list", "shot_groups", "with_transform",
]
