"""Many / medium / few groups: the boundaries and the documented group sizes for every benchmark
(docs/methods/baselines.md §1, §2)."""

import numpy as np
import pytest
from fixtures import shared_file

from ltzoo.benchmarks import BENCHMARKS
from ltzoo.data.cifar import img_num_per_cls
from ltzoo.data.shots import SHOT_RULE, shot_groups
from ltzoo.data.splits import SplitListNotFoundError, find_split_list, read_split_list


def _sizes(groups: dict[str, np.ndarray]) -> tuple[int, int, int]:
    """(many, medium, few) group sizes."""
    return len(groups["many"]), len(groups["medium"]), len(groups["few"])


def test_boundaries_exactly_20_and_exactly_100_are_medium():
    groups = shot_groups([101, 100, 20, 19, 0])
    assert groups["many"].tolist() == [0]
    assert groups["medium"].tolist() == [1, 2]
    assert groups["few"].tolist() == [3, 4]


def test_groups_are_ascending_int64_class_ids():
    groups = shot_groups([5, 500, 50, 5000, 1])
    assert groups["many"].tolist() == [1, 3] and groups["few"].tolist() == [0, 4]
    assert all(ids.dtype == np.int64 for ids in groups.values())


def test_rule_text_states_the_thresholds():
    assert "> 100" in SHOT_RULE and "20 <= n_k <= 100" in SHOT_RULE and "< 20" in SHOT_RULE


def test_counts_must_be_one_dimensional_integers():
    with pytest.raises(ValueError, match="1-D sequence of integer"):
        shot_groups(np.array([[5, 500]]))


@pytest.mark.parametrize("n_max, num_classes, imb_factor, expected", [
    (500, 100, 100, (35, 35, 30)),
    (500, 100, 50, (41, 41, 18)),
    (500, 100, 10, (69, 31, 0)),
    (5000, 10, 100, (8, 2, 0)),
    (5000, 10, 50, (9, 1, 0)),
    (5000, 10, 10, (10, 0, 0)),
])
def test_cifar_lt_group_sizes_match_the_spec(n_max, num_classes, imb_factor, expected):
    assert _sizes(shot_groups(img_num_per_cls(n_max, num_classes, imb_factor))) == expected


def test_places_lt_groups_from_the_real_train_list():
    _, labels = read_split_list(shared_file("splits/Places_LT/Places_LT_train.txt"), 365)
    counts = np.bincount(labels, minlength=365)
    assert _sizes(shot_groups(counts)) == (131, 163, 71)
    assert int((counts == 20).sum()) == 6


@pytest.mark.parametrize("benchmark, expected", [("imagenet_lt", (385, 479, 136)), ("inat2018", (842, 4076, 3224))])
def test_user_supplied_train_lists_give_the_quoted_groups(benchmark, expected):
    try:
        list_file = find_split_list(benchmark, "train")
    except SplitListNotFoundError:
        pytest.skip(f"{BENCHMARKS[benchmark].split_files['train']} is not supplied here (set LTZOO_DATA)")
    num_classes = BENCHMARKS[benchmark].num_classes
    _, labels = read_split_list(list_file, num_classes)
    assert _sizes(shot_groups(np.bincount(labels, minlength=num_classes))) == expected
