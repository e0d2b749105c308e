"""Data faults that surface mid-run arrive as the one line that names them, never as a data worker's traceback."""

import pytest
import torch
from fixtures import make_split_root
from torchvision import transforms

import ltzoo.validate
import ltzoo_cli as cli
from ltzoo.data.splits import ImageReadError, SplitFileDataset


@pytest.mark.parametrize("workers", [0, 1])
def test_a_missing_listed_image_is_one_line_naming_it_and_its_list_line(tmp_path, workers):
    image_root, list_file = make_split_root(tmp_path)
    (image_root / "train/class_1/0004.png").unlink()
    dataset = SplitFileDataset(image_root, list_file, 3, transforms.ToTensor())
    with pytest.raises(ImageReadError) as raised:
        list(torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=workers))
    message = str(raised.value)
    assert message.startswith(f"cannot read image {image_root / 'train/class_1/0004.png'} (listed in {list_file}, "
                              "line 5)")
    assert "\n" not in message and "Traceback" not in message


def test_ltzoo_validate_that_meets_one_prints_the_line_and_no_traceback(tmp_path, monkeypatch, capsys):
    image_root, list_file = make_split_root(tmp_path)
    (image_root / "train/class_0/0001.png").unlink()
    dataset = SplitFileDataset(image_root, list_file, 3, transforms.ToTensor())

    def validate_reading_the_list(*args, **kwargs):
        list(torch.utils.data.DataLoader(dataset, num_workers=1))

    monkeypatch.setattr(ltzoo.validate, "validate", validate_reading_the_list)
    assert cli.main(["validate", "resnet32_ce_cifar10_lt.if100"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read image") and err.count("\n") == 1
