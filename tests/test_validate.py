"""validate(): a zoo model on its benchmark with its pretrained cfg's transforms; default_amp()."""

import hashlib
import importlib
import json

import pytest
import torch
from fixtures import shared_file
from PIL import Image

import ltzoo
from ltzoo.precision import default_amp
from ltzoo.validate import validate

validate_module = importlib.import_module("ltzoo.validate")
precision_module = importlib.import_module("ltzoo.precision")

CIFAR10_MODEL = "resnet32_ce_cifar10_lt"


@pytest.fixture
def cpu_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def write_cpuinfo(tmp_path, monkeypatch, flags):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 avx2 {flags}\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    monkeypatch.setattr(precision_module, "_CPUINFO", cpuinfo)


@pytest.mark.parametrize("flag", ["avx512_bf16", "amx_bf16"])
def test_default_amp_is_bf16_on_a_cpu_with_native_bf16(tmp_path, monkeypatch, cpu_only, flag):
    write_cpuinfo(tmp_path, monkeypatch, f"avx512f {flag}")
    assert default_amp() == "bf16"


def test_default_amp_is_none_on_a_cpu_without_native_bf16(tmp_path, monkeypatch, cpu_only):
    write_cpuinfo(tmp_path, monkeypatch, "avx512f avx512_vnni")
    assert default_amp() is None


def test_validate_rejects_an_unknown_amp_mode():
    with pytest.raises(ValueError, match="'fp16'"):
        validate(CIFAR10_MODEL, amp="fp16", progress=False)


def test_cifar_benchmarks_have_no_val_split():
    with pytest.raises(ValueError, match="no 'val' split.*'heldout' for tuning"):
        validate(CIFAR10_MODEL, split="val", progress=False)


def test_large_scale_benchmarks_read_the_split_from_data_dir_and_group_classes_by_its_train_list(tmp_path):
    for i in range(3):
        Image.new("RGB", (40, 30), (80 * i, 100, 50)).save(tmp_path / f"image{i}.jpg")
    lists = tmp_path / "ImageNet_LT"
    lists.mkdir()
    (lists / "ImageNet_LT_val.txt").write_text("image0.jpg 0\nimage1.jpg 1\nimage2.jpg 2\n")
    (lists / "ImageNet_LT_train.txt").write_text("train.jpg 0\n" * 150 + "train.jpg 1\n" * 20)
    result = validate("resnet50_ce_imagenet_lt", data_dir=tmp_path, split="val", batch_size=2, progress=False)
    assert result.num_images == 3
    assert result.group_sizes == {"many": 1, "medium": 1, "few": 998}


@pytest.fixture(scope="module")
def random_init_run(tmp_path_factory):
    """validate() once on the shared CIFAR-10 test set with a random-init ResNet-32 saved as safetensors."""
    from safetensors.torch import save_file

    shared_file("cifar10_test_jpeg.npz")
    out = tmp_path_factory.mktemp("validate")
    torch.manual_seed(0)
    model = ltzoo.create_model(CIFAR10_MODEL)
    checkpoint = out / "random_init.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(checkpoint))
    result = validate(
        CIFAR10_MODEL,
        checkpoint=str(checkpoint),
        batch_size=500,
        amp=default_amp(),
        json_out=str(out / "result.json"),
        plot=str(out / "per_class.png"),
        progress=False,
        test_dists="all",
    )
    return result, out, checkpoint


def test_random_init_model_scores_about_chance_on_all_test_images(random_init_run):
    result, _, _ = random_init_run
    assert result.num_images == 10_000
    assert 5.0 < result.top1 < 15.0


def test_cifar10_if100_has_8_many_2_medium_and_no_few_classes(random_init_run):
    result, _, _ = random_init_run
    assert result.group_sizes == {"many": 8, "medium": 2, "few": 0}
    assert result.many is not None and result.medium is not None
    assert result.few is None


def test_json_records_the_metrics_and_their_provenance(random_init_run):
    result, out, checkpoint = random_init_run
    record = json.loads((out / "result.json").read_text())
    assert record["name"] == CIFAR10_MODEL
    assert record["tag"] == "if100"
    assert record["split"] == "test"
    assert str(checkpoint) in record["weights"]
    assert record["weights_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert "cifar10" in record["data"]
    assert record["top1"] == result.top1
    assert record["few"] is None
    assert sum(map(sum, record["confusion"])) == 10_000


def test_validate_writes_the_per_class_png(random_init_run):
    _, out, _ = random_init_run
    with Image.open(out / "per_class.png") as image:
        assert image.format == "PNG"


def test_top1_on_the_uniform_test_distribution_is_the_plain_top1(random_init_run):
    result, _, _ = random_init_run
    assert result.test_dists["uniform"] == result.top1
    assert list(result.test_dists)[0] == "forward50" and len(result.test_dists) == 11


def test_json_records_top1_on_each_shifted_test_distribution(random_init_run):
    result, out, _ = random_init_run
    record = json.loads((out / "result.json").read_text())
    assert record["test_dists"] == result.test_dists
    assert record["posthoc"] == {"logit_adjust": None, "tau_norm": None}


def test_validate_writes_the_shifted_test_distributions_png_beside_the_per_class_one(random_init_run):
    _, out, _ = random_init_run
    with Image.open(out / "per_class.test_dists.png") as image:
        assert image.format == "PNG"


def test_a_second_validate_of_the_same_weights_reads_the_cached_predictions(random_init_run, monkeypatch):
    result, _, checkpoint = random_init_run
    monkeypatch.setattr(validate_module, "predict", lambda *a, **k: pytest.fail("the model ran again"))
    again = validate(CIFAR10_MODEL, checkpoint=str(checkpoint), amp=default_amp(), progress=False,
                     test_dists="backward50,uniform")
    assert again.top1 == result.top1 and again.test_dists == {k: result.test_dists[k] for k in again.test_dists}


def test_post_hoc_adjustments_come_from_the_cached_predictions(random_init_run, monkeypatch):
    _, _, checkpoint = random_init_run
    monkeypatch.setattr(validate_module, "predict", lambda *a, **k: pytest.fail("the model ran again"))
    plain = validate(CIFAR10_MODEL, checkpoint=str(checkpoint), amp=default_amp(), progress=False)
    adjusted = validate(CIFAR10_MODEL, checkpoint=str(checkpoint), amp=default_amp(), progress=False,
                        logit_adjust=1.0, tau_norm=1.0)
    assert adjusted.num_images == plain.num_images and adjusted.confusion.tolist() != plain.confusion.tolist()


def test_shifted_test_distributions_are_refused_on_another_split():
    with pytest.raises(ValueError, match="subsample the test set"):
        validate(CIFAR10_MODEL, split="heldout", test_dists="all", progress=False)


@pytest.mark.slow
def test_the_ce_release_scores_its_published_top1_on_the_uniform_distribution():
    release = "releases/resnet32_ce_cifar10_lt.if100/model.safetensors"
    shared_file("cifar10_test_jpeg.npz")
    result = validate("resnet32_ce_cifar10_lt.if100", checkpoint=release, progress=False, test_dists="all")
    assert result.test_dists["uniform"] == result.top1 == pytest.approx(65.67)
    assert result.test_dists["forward50"] > result.top1 > result.test_dists["backward50"]
