"""Atomic checkpoints: integrity footer, clear errors for cut-off or damaged files, the previous one kept."""

from __future__ import annotations

import os

import pytest
import torch

from inception_resnet.training import checkpoint as ckpt
from inception_resnet.training.checkpoint import (
    FORMAT,
    CheckpointError,
    CheckpointManager,
    load_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)
from inception_resnet.weights import read_state_dict


def make_state(value: float) -> dict:
    return {
        "format": FORMAT,
        "format_version": 1,
        "model": {"w": torch.full((64, 64), value), "b": torch.arange(5.0)},
        "model_ema": {"w": torch.full((64, 64), value / 2), "b": torch.zeros(5)},
        "global_step": int(value),
        "rng": [{"torch": torch.get_rng_state()}],
    }


def test_round_trip_and_readable_by_plain_torch_load_and_load_weights(tmp_path):
    path = save_checkpoint(make_state(3.0), tmp_path / "a.pt")
    state = load_checkpoint(path)
    assert torch.equal(state["model"]["w"], torch.full((64, 64), 3.0)) and state["global_step"] == 3
    plain = torch.load(path, weights_only=True)  # the footer does not get in torch's way
    assert torch.equal(plain["model"]["b"], torch.arange(5.0))
    assert torch.equal(read_state_dict(path)["w"], torch.full((64, 64), 1.5))  # the averaged weights first
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]  # no temporary file left


def test_truncated_checkpoint_is_reported_and_the_previous_one_named(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=3)
    good = manager.save(make_state(1.0), epoch=1, step=10)
    cut = manager.save(make_state(2.0), epoch=1, step=20)
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="incomplete") as info:
        load_checkpoint(cut)
    assert str(good) in str(info.value)
    assert load_checkpoint(good)["global_step"] == 1
    latest, bad = manager.latest_valid()
    assert latest == good and bad[0][0] == cut


def test_flipped_byte_is_caught_by_the_checksum(tmp_path):
    path = save_checkpoint(make_state(1.0), tmp_path / "last-e0001-s000000001.pt")
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        verify_checkpoint(path)


def test_a_write_that_dies_half_way_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = save_checkpoint(make_state(1.0), tmp_path / "state.pt")
    real_save = torch.save

    def dying_save(obj, file):
        real_save(obj, file)
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", dying_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(make_state(2.0), path)
    monkeypatch.undo()
    assert load_checkpoint(path)["global_step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]


def test_manager_keeps_the_last_k_and_best(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=2)
    for step in range(1, 6):
        manager.save(make_state(float(step)), epoch=step, step=step, is_best=step == 2)
    assert [ckpt.checkpoint_step(p) for p in manager.checkpoints()] == [4, 5]
    assert load_checkpoint(manager.best_path)["global_step"] == 2
    (tmp_path / ".last-e0009-s000000009.pt.tmp-123").write_bytes(b"half")
    CheckpointManager(tmp_path, keep_last=2)
    assert not list(tmp_path.glob(".*.tmp-*"))  # stray temporary files of killed writers are removed
    with pytest.raises(ValueError, match="keep_last"):
        CheckpointManager(tmp_path, keep_last=0)


def test_set_aside_moves_newer_checkpoints_without_deleting_them(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=5)
    for step in (3, 6, 9):
        manager.save(make_state(float(step)), epoch=1, step=step)
    with pytest.warns(UserWarning, match="superseded"):
        moved = manager.set_aside_after(3)
    assert [ckpt.checkpoint_step(p) for p in manager.checkpoints()] == [3]
    assert sorted(p.name for p in moved) == ["last-e0001-s000000006.pt", "last-e0001-s000000009.pt"]
    assert all(p.exists() for p in moved)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nope.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"w": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="no integrity footer"):
        load_checkpoint(foreign)
    other = save_checkpoint({"w": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an inception-resnet training checkpoint"):
        load_checkpoint(other)
    assert os.path.exists(other)
