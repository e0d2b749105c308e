"""training/checkpoint.py: states saved without pickle, folders that appear only complete, damage that is detected.

Tiny tensors throughout: what matters here is the file handling, not the data.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `training` is a folder of scripts beside the package
from training import checkpoint  # noqa: E402
from training.config import ConfigError, load_config  # noqa: E402
from training.train import checkpoint_dirs, find_resume, load_selection, save_selection  # noqa: E402

CE_CIFAR10 = Path(__file__).resolve().parents[1] / "training" / "configs" / "resnet32_ce_cifar10_lt.if100.yaml"


class QueueMethod:
    """A method with state, as DSCL's MoCo queue: tensors and a pointer."""

    def __init__(self) -> None:
        self.state = {"queue": torch.zeros(4, 2), "pointer": 0}

    def state_dict(self) -> dict:
        return dict(self.state)

    def load_state_dict(self, state: dict) -> None:
        self.state = dict(state)


def trained_pair(seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.randn(5, 3)).square().mean().backward()
        optimizer.step()
    return model, optimizer


def write_checkpoint(ckpt: Path, epoch: int = 0, fingerprint: str = "f") -> tuple[torch.nn.Module, QueueMethod]:
    model, optimizer = trained_pair(epoch)
    method = QueueMethod()
    method.state = {"queue": torch.randn(4, 2), "pointer": 3}
    staging = checkpoint.begin(ckpt)
    checkpoint.write_shared(staging, model, optimizer, method.state_dict())
    checkpoint.write_rng(staging, 0)
    checkpoint.commit(staging, ckpt, {"epoch": epoch, "fingerprint": fingerprint, "config_path": "c.yaml"}, 1)
    return model, method


def test_a_nested_state_round_trips_exactly_with_its_key_and_container_types(tmp_path: Path):
    state = {0: {"momentum_buffer": torch.randn(3, 2)},
             "groups": [{"lr": 0.1 / 3, "params": [0, 1], "nesterov": False, "foreach": None}],
             "python": random.getstate(), "numpy": np.random.get_state()}
    checkpoint.save_state(tmp_path / "s.safetensors", state)
    loaded = checkpoint.load_state(tmp_path / "s.safetensors")
    assert torch.equal(loaded[0]["momentum_buffer"], state[0]["momentum_buffer"])
    assert loaded["groups"] == state["groups"] and loaded["python"] == state["python"]
    assert loaded["numpy"][0] == "MT19937" and loaded["numpy"][2:] == state["numpy"][2:]
    np.testing.assert_array_equal(loaded["numpy"][1], state["numpy"][1])
    assert loaded["numpy"][1].dtype == state["numpy"][1].dtype


def test_a_state_that_needs_pickle_is_refused(tmp_path: Path):
    with pytest.raises(TypeError, match="without pickle"):
        checkpoint.save_state(tmp_path / "s.safetensors", {"f": object()})


def test_a_checkpoint_holds_only_safetensors_and_json(tmp_path: Path):
    write_checkpoint(tmp_path / "epoch_0000")
    names = sorted(p.name for p in (tmp_path / "epoch_0000").iterdir())
    assert names == ["meta.json", "method.safetensors", "model.safetensors", "optimizer.safetensors",
                     "rng_0.safetensors"]
    for name in names[1:]:
        assert (tmp_path / "epoch_0000" / name).read_bytes()[8:9] == b"{"  # a safetensors JSON header, no pickle


def test_restore_brings_back_weights_optimizer_method_state_and_random_generators(tmp_path: Path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    saved_model, saved_method = write_checkpoint(tmp_path / "epoch_0000", epoch=0)
    draws = (random.random(), np.random.rand(), torch.rand(1))
    _, saved_optimizer = trained_pair(0)

    model, optimizer = trained_pair(seed=7)
    method = QueueMethod()
    checkpoint.restore(tmp_path / "epoch_0000", model, optimizer, method, rank=0, world_size=1, device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), saved_model.state_dict().values()))
    assert all(torch.equal(optimizer.state[p]["momentum_buffer"], saved_optimizer.state[q]["momentum_buffer"])
               for p, q in zip(model.parameters(), saved_optimizer.param_groups[0]["params"]))
    assert torch.equal(method.state["queue"], saved_method.state["queue"]) and method.state["pointer"] == 3
    assert (random.random(), np.random.rand(), torch.rand(1)) == draws


def test_restore_with_another_number_of_processes_is_refused(tmp_path: Path):
    write_checkpoint(tmp_path / "epoch_0000")
    model, optimizer = trained_pair()
    with pytest.raises(checkpoint.CheckpointError, match="written by 1 process"):
        checkpoint.restore(tmp_path / "epoch_0000", model, optimizer, QueueMethod(), 0, 2, "cpu")


def test_restore_into_a_model_it_does_not_fit_is_one_clear_error(tmp_path: Path):
    write_checkpoint(tmp_path / "epoch_0000")
    model = torch.nn.Linear(3, 5)
    with pytest.raises(checkpoint.CheckpointError, match="does not fit this run"):
        checkpoint.restore(tmp_path / "epoch_0000", model, torch.optim.SGD(model.parameters(), lr=0.1),
                           QueueMethod(), 0, 1, "cpu")


@pytest.mark.parametrize("calls_before_the_kill", range(8))
def test_a_save_killed_at_any_step_leaves_only_complete_checkpoints(tmp_path: Path, monkeypatch,
                                                                    calls_before_the_kill: int):
    """Every write ends in an fsync; dying at the n-th leaves the previous checkpoint and no half of the next."""
    write_checkpoint(tmp_path / "checkpoints" / "epoch_0000", epoch=0)
    fsync, calls = checkpoint._fsync, []

    def dying_fsync(path: Path) -> None:
        if len(calls) == calls_before_the_kill:
            raise KeyboardInterrupt  # stands in for the kill
        calls.append(path)
        fsync(path)

    monkeypatch.setattr(checkpoint, "_fsync", dying_fsync)
    try:
        write_checkpoint(tmp_path / "checkpoints" / "epoch_0001", epoch=1)
    except KeyboardInterrupt:
        pass
    renamed = calls_before_the_kill >= 6  # 4 files, meta.json, the folder; then the rename, then its parent
    assert [c.name for c in checkpoint_dirs(tmp_path)] == ["epoch_0000", "epoch_0001"][: 2 if renamed else 1]
    for ckpt in checkpoint_dirs(tmp_path):
        checkpoint.read_meta(ckpt)  # each verifies
    monkeypatch.setattr(checkpoint, "_fsync", fsync)
    write_checkpoint(tmp_path / "checkpoints" / "epoch_0001", epoch=1)  # the next save starts over cleanly
    checkpoint.read_meta(tmp_path / "checkpoints" / "epoch_0001")


@pytest.mark.parametrize("states_written", range(3), ids=["after-model", "after-optimizer", "after-method"])
def test_a_save_killed_between_its_files_leaves_the_previous_checkpoint_and_no_half(tmp_path: Path, monkeypatch,
                                                                                    states_written: int):
    """Between the files of a save (before any fsync): the half-filled staging folder is no checkpoint, and the next
    save of that epoch starts it afresh."""
    write_checkpoint(tmp_path / "checkpoints" / "epoch_0000", epoch=0)
    save_state, calls = checkpoint.save_state, []

    def dying_save_state(path: Path, state: object) -> None:
        if len(calls) == states_written:
            raise KeyboardInterrupt  # stands in for the kill
        calls.append(path)
        save_state(path, state)

    monkeypatch.setattr(checkpoint, "save_state", dying_save_state)
    with pytest.raises(KeyboardInterrupt):
        write_checkpoint(tmp_path / "checkpoints" / "epoch_0001", epoch=1)
    assert checkpoint.staging_dir(tmp_path / "checkpoints" / "epoch_0001").is_dir()
    assert checkpoint_dirs(tmp_path) == [tmp_path / "checkpoints" / "epoch_0000"]
    monkeypatch.setattr(checkpoint, "save_state", save_state)
    write_checkpoint(tmp_path / "checkpoints" / "epoch_0001", epoch=1)
    checkpoint.read_meta(tmp_path / "checkpoints" / "epoch_0001")
    assert not checkpoint.staging_dir(tmp_path / "checkpoints" / "epoch_0001").exists()


def test_a_torn_meta_json_is_reported(tmp_path: Path):
    write_checkpoint(tmp_path / "epoch_0000")
    meta = tmp_path / "epoch_0000" / "meta.json"
    meta.write_text(meta.read_text()[:40])
    with pytest.raises(checkpoint.CheckpointError, match="meta.json does not parse"):
        checkpoint.read_meta(tmp_path / "epoch_0000")


@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.safetensors", "method.safetensors",
                                  "rng_0.safetensors"])
def test_a_missing_or_damaged_file_is_reported_by_name(tmp_path: Path, name: str):
    write_checkpoint(tmp_path / "epoch_0000")
    file = tmp_path / "epoch_0000" / name
    data = bytearray(file.read_bytes())
    data[-1] ^= 0x01  # one bit of the last tensor value (or the header's last byte)
    file.write_bytes(bytes(data))
    with pytest.raises(checkpoint.CheckpointError, match=f"{name} is damaged"):
        checkpoint.read_meta(tmp_path / "epoch_0000")
    file.unlink()
    with pytest.raises(checkpoint.CheckpointError, match=f"{name} is missing"):
        checkpoint.read_meta(tmp_path / "epoch_0000")


def test_a_checkpoint_of_the_pickling_format_is_not_loaded(tmp_path: Path):
    """Folders written by accelerate's save_state (optimizer.bin, random_states_0.pkl, custom_checkpoint_0.pkl)."""
    (tmp_path / "epoch_0000").mkdir()
    (tmp_path / "epoch_0000" / "meta.json").write_text(json.dumps({"epoch": 0, "fingerprint": "f"}))
    with pytest.raises(checkpoint.CheckpointError, match="pickled its states, is not loaded"):
        checkpoint.read_meta(tmp_path / "epoch_0000")


def test_resume_auto_falls_back_to_the_newest_checkpoint_that_verifies_and_says_why(tmp_path: Path, capsys):
    cfg = load_config(CE_CIFAR10, [f"run_dir={tmp_path}"])
    for epoch in range(3):
        write_checkpoint(tmp_path / "checkpoints" / f"epoch_{epoch:04d}", epoch, cfg.fingerprint())
    (tmp_path / "checkpoints" / "epoch_0002" / "meta.json").write_text("{")
    (tmp_path / "checkpoints" / "epoch_0001" / "rng_0.safetensors").unlink()
    assert find_resume(cfg, "auto") == tmp_path / "checkpoints" / "epoch_0000"
    out = capsys.readouterr().out
    assert "not resuming from" in out and "epoch_0002: meta.json does not parse" in out
    assert "epoch_0001: rng_0.safetensors is missing" in out


def test_resume_auto_with_no_checkpoint_that_verifies_is_an_error_not_a_fresh_start(tmp_path: Path):
    cfg = load_config(CE_CIFAR10, [f"run_dir={tmp_path}"])
    write_checkpoint(tmp_path / "checkpoints" / "epoch_0000", 0, cfg.fingerprint())
    (tmp_path / "checkpoints" / "epoch_0000" / "model.safetensors").write_bytes(b"")
    with pytest.raises(ConfigError, match="no checkpoint to resume from verifies.*model.safetensors is damaged"):
        find_resume(cfg, "auto")


def test_resume_from_a_named_damaged_checkpoint_is_an_error_naming_the_file(tmp_path: Path):
    cfg = load_config(CE_CIFAR10, [f"run_dir={tmp_path}"])
    write_checkpoint(tmp_path / "epoch_0000", 0, cfg.fingerprint())
    (tmp_path / "epoch_0000" / "optimizer.safetensors").unlink()
    with pytest.raises(ConfigError, match="optimizer.safetensors is missing"):
        find_resume(cfg, str(tmp_path / "epoch_0000"))


def test_a_checkpoint_of_accelerates_format_converts_and_restores_exactly(tmp_path: Path):
    """What an older train.py wrote (accelerate's save_state plus meta.json) becomes a current checkpoint holding
    the same weights, optimizer state, method state and random generators."""
    from accelerate import Accelerator

    from training.convert_checkpoint import convert

    accelerator = Accelerator(cpu=True)
    model, optimizer = accelerator.prepare(*trained_pair(0))
    method = QueueMethod()
    method.state = {"queue": torch.randn(4, 2), "pointer": torch.tensor(3)}
    accelerator.register_for_checkpointing(method)
    ckpt = tmp_path / "checkpoints" / "epoch_0000"
    random.seed(5)
    accelerator.save_state(str(ckpt))
    (ckpt / "meta.json").write_text(json.dumps({"epoch": 0, "fingerprint": "f", "config_path": "c.yaml"}))
    draws = (random.random(), np.random.rand(), torch.rand(1))

    convert(ckpt)
    assert sorted(p.name for p in ckpt.iterdir()) == ["meta.json", "method.safetensors", "model.safetensors",
                                                      "optimizer.safetensors", "rng_0.safetensors"]
    fresh_model, fresh_optimizer = trained_pair(seed=7)
    fresh_method = QueueMethod()
    checkpoint.restore(ckpt, fresh_model, fresh_optimizer, fresh_method, 0, 1, "cpu")
    assert all(torch.equal(a, b) for a, b in zip(fresh_model.state_dict().values(), model.state_dict().values()))
    assert fresh_optimizer.state_dict()["state"].keys() == optimizer.state_dict()["state"].keys()
    assert all(torch.equal(fresh_optimizer.state_dict()["state"][k]["momentum_buffer"], v["momentum_buffer"])
               for k, v in optimizer.state_dict()["state"].items())
    assert torch.equal(fresh_method.state["queue"], method.state["queue"])
    assert (random.random(), np.random.rand(), torch.rand(1)) == draws
    assert checkpoint.read_meta(ckpt)["epoch"] == 0


def test_a_later_stage_starts_from_the_verified_weights_file_of_a_checkpoint_folder(tmp_path: Path):
    ckpt = tmp_path / "checkpoints" / "epoch_0001"
    write_checkpoint(ckpt, epoch=1)
    assert checkpoint.stage_weights(ckpt) == ckpt / checkpoint.MODEL


def test_a_later_stage_from_a_damaged_checkpoint_is_an_error_naming_init_from_and_the_file(tmp_path: Path):
    ckpt = tmp_path / "epoch_0001"
    write_checkpoint(ckpt, epoch=1)
    (ckpt / checkpoint.MODEL).write_bytes((ckpt / checkpoint.MODEL).read_bytes()[:-1] + b"\0")
    with pytest.raises(checkpoint.CheckpointError, match=f"method.init_from {ckpt} is not a complete checkpoint: "
                                                         f"{checkpoint.MODEL} is damaged"):
        checkpoint.stage_weights(ckpt)


def test_a_later_stage_from_a_path_that_does_not_exist_is_an_error_naming_init_from(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="method.init_from .*missing does not exist"):
        checkpoint.stage_weights(tmp_path / "missing")


def test_a_later_stage_from_a_bare_weights_file_loads_it_as_given(tmp_path: Path):
    file = tmp_path / "encoder.safetensors"
    save_file({"w": torch.zeros(2)}, str(file))
    assert checkpoint.stage_weights(file) == file


def test_the_val_selected_weights_are_exported_only_when_they_match_their_recorded_sha256(tmp_path: Path):
    """The weights a `select: val` run exports are a file beside the checkpoints; meta.json records its sha256."""
    model, _ = trained_pair()
    selection = save_selection(tmp_path, model, epoch=3, val_top1=50.0)
    loaded = load_selection(tmp_path, selection)
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
    file = tmp_path / "selected" / "epoch_0003.safetensors"
    data = bytearray(file.read_bytes())
    data[-1] ^= 0x01
    file.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="val-selected weights of epoch 3 cannot be exported: sha256 mismatch"):
        load_selection(tmp_path, selection)
    file.unlink()
    with pytest.raises(ConfigError, match="epoch_0003.safetensors does not exist"):
        load_selection(tmp_path, selection)
