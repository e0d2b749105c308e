"""The benchmarks: one row per long-tailed benchmark, everything that defines it, in one table.

A row says what a benchmark is (name, title, classes, input size, normalisation, eval crop), where its images and
splits come from, the imbalance factor each CIFAR-LT tag names, and how its train and eval sets are built: `kind`
"cifar_lt" subsamples a balanced CIFAR training set (`ltzoo.data.cifar.cifar_lt`), "split_lists" reads the OLTR list
files (`ltzoo.data.splits`). `ltzoo.data.benchmark_sets` builds the sets from these rows; the registry's pretrained
cfgs, training and `ltzoo validate` all read them here.

Plain data without torch or the data code, so the bottom layer (`ltzoo.registry`) can read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "BENCHMARKS",
    "CIFAR_MEAN",
    "CIFAR_STD",
    "FEW_BELOW",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MANY_ABOVE",
    "Benchmark",
    "get_benchmark",
    "imb_factor_of",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
# the CIFAR normalisation of kaidic/LDAM-DRW and naver-ai/cmo, which the CIFAR-LT recipes reproduce
CIFAR_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR_STD: tuple[float, float, float] = (0.2023, 0.1994, 0.2010)

# Many / medium / few by training count, the same rule on every benchmark (OLTR / Decoupling `shot_acc`):
# many n > MANY_ABOVE, medium FEW_BELOW <= n <= MANY_ABOVE, few n < FEW_BELOW
MANY_ABOVE: int = 100
FEW_BELOW: int = 20

_CIFAR_IMB_FACTORS = {"if100": 100.0, "if50": 50.0, "if10": 10.0}


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: what it is, where its data comes from, and how its train and eval sets are built."""

    name: str
    title: str
    num_classes: int
    input_size: tuple[int, int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_pct: float  # eval: resize to input_size / crop_pct, then centre-crop input_size
    kind: str  # "cifar_lt": a long-tailed subset of a CIFAR training set; "split_lists": OLTR list files
    cifar: str | None = None  # cifar_lt: the balanced CIFAR set subsampled ("cifar10", "cifar100")
    max_per_class: int | None = None  # cifar_lt: images of the largest class (n_max of the exponential profile)
    imb_factors: dict[str, float] = field(default_factory=dict)  # cifar_lt: tag -> imbalance factor n_max / n_min
    folder: str | None = None  # split_lists: folder of the lists (and of the images, by the OLTR layout)
    split_files: dict[str, str] = field(default_factory=dict)  # split_lists: split -> list file
    color_jitter: bool = False  # split_lists: the train pipeline adds ColorJitter(0.4, 0.4, 0.4, 0)
    hf_dataset: str | None = None  # the Hub dataset id model cards link to, where there is one

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits the benchmark has: CIFAR-LT train/test, the large-scale ones train/val/test."""
        return ("train", "test") if self.kind == "cifar_lt" else tuple(self.split_files)


BENCHMARKS: dict[str, Benchmark] = {
    "cifar10_lt": Benchmark(
        "cifar10_lt", "CIFAR-10-LT", 10, (3, 32, 32), CIFAR_MEAN, CIFAR_STD, 1.0, "cifar_lt", cifar="cifar10",
        max_per_class=5000, imb_factors=_CIFAR_IMB_FACTORS, hf_dataset="uoft-cs/cifar10"),
    "cifar100_lt": Benchmark(
        "cifar100_lt", "CIFAR-100-LT", 100, (3, 32, 32), CIFAR_MEAN, CIFAR_STD, 1.0, "cifar_lt", cifar="cifar100",
        max_per_class=500, imb_factors=_CIFAR_IMB_FACTORS, hf_dataset="uoft-cs/cifar100"),
    "imagenet_lt": Benchmark(
        "imagenet_lt", "ImageNet-LT", 1000, (3, 224, 224), IMAGENET_MEAN, IMAGENET_STD, 0.875, "split_lists",
        folder="ImageNet_LT",
        split_files={"train": "ImageNet_LT_train.txt", "val": "ImageNet_LT_val.txt", "test": "ImageNet_LT_test.txt"},
        color_jitter=True, hf_dataset="ILSVRC/imagenet-1k"),
    "inat2018": Benchmark(
        "inat2018", "iNaturalist 2018", 8142, (3, 224, 224), (0.466, 0.471, 0.380), (0.195, 0.194, 0.192), 0.875,
        "split_lists", folder="iNaturalist18",
        # iNaturalist 2018 has no public test labels: its val list is the test split, and there is no val apart
        split_files={"train": "iNaturalist18_train.txt", "val": "iNaturalist18_val.txt",
                     "test": "iNaturalist18_val.txt"}),
    "places_lt": Benchmark(
        "places_lt", "Places-LT", 365, (3, 224, 224), IMAGENET_MEAN, IMAGENET_STD, 0.875, "split_lists",
        folder="Places_LT",
        split_files={"train": "Places_LT_train.txt", "val": "Places_LT_val.txt", "test": "Places_LT_test.txt"},
        color_jitter=True),
}


def get_benchmark(name: str) -> Benchmark:
    """The row of benchmark `name`; an unknown name is a ValueError listing the known ones."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; expected one of {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def imb_factor_of(benchmark: str, tag: str) -> float | None:
    """The imbalance factor a zoo tag names on a CIFAR-LT benchmark (`if100` and `if100_e400` -> 100.0); None where
    the benchmark's imbalance is fixed by its lists (the large-scale ones). The tag is the one source of it: training
    configs and `ltzoo validate` both read it here."""
    row = get_benchmark(benchmark)
    if row.kind != "cifar_lt":
        return None
    prefix = tag.split("_")[0]
    if prefix not in row.imb_factors:
        raise ValueError(f"{benchmark} tag {tag!r} names no imbalance factor; its tags start with one of "
                         f"{', '.join(row.imb_factors)}")
    return row.imb_factors[prefix]
