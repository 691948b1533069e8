"""Data-parallel training on 2 CPU processes over gloo, launched with torchrun (one node, or two simulated nodes).

Tolerance: with BatchNorm in eval mode (``freeze_bn``; CPU PyTorch refuses SyncBatchNorm, and per-process
batch statistics would legitimately differ) and no dropout, a 2-process run and a 1-process run with the same
global batch must agree to 1e-5 on every weight after 4 steps; the only difference is the order in which the
gradient halves are summed. A worker killed by SIGKILL and restarted by ``--max-restarts`` must end exactly
(bit for bit) where an uninterrupted 2-process run ends; so must a two-node job (two torchrun agents, c10d
rendezvous on localhost) that loses a whole node (agent and worker killed by SIGKILL) mid-epoch and is
restarted within ``--max-restarts`` once the node's agent is started again, as a cluster would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from inception_resnet.training import CRASH_ENV, TrainConfig, train
from inception_resnet.training.checkpoint import CheckpointManager, load_checkpoint
from inception_resnet.training.distributed import GlobalBatchSampler

SETTINGS = dict(
    model="inception_v4",
    model_options={"width_multiplier": 0.25},
    data="synthetic:32:4",
    input_size=75,
    batch_size=8,
    epochs=1,
    threads=1,
    deterministic=True,
    freeze_bn=True,
    drop_rate=0.0,
    progress=False,
    log_every_steps=1,
    checkpoint_every_steps=2,
    keep_last=5,
    num_workers=0,
    tensorboard=False,
    lr=0.45,  # 10x the paper's, so that the weights move visibly
)
STEPS = 4
TOLERANCE = 1e-5


def train_flags() -> list[str]:
    flags = []
    for name, value in SETTINGS.items():
        flag = "--" + {"num_workers": "workers"}.get(name, name).replace("_", "-")  # -j/--workers, timm's name
        if name == "model_options":  # the one way in on the command line: --model-option KEY=VALUE per option
            for key, option in value.items():
                flags += ["--model-option", f"{key}={option}"]
        elif value is True:
            flags.append(flag)
        elif value is False:
            flags.append("--no-" + name.replace("_", "-"))
        else:
            flags += [flag, str(value)]
    return flags


def torchrun(run_dir: Path, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "--max-restarts=1",
        "--monitor-interval=0.2",
        "-m",
        "inception_resnet",
        "train",
        *train_flags(),
        "--run-dir",
        str(run_dir),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def final_state(run_dir: Path) -> dict:
    return load_checkpoint(CheckpointManager(run_dir / "checkpoints").checkpoints()[-1])


def max_difference(a: dict, b: dict) -> float:
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("ddp") / "run"
    torchrun(run_dir)
    return run_dir


def test_global_batches_are_the_same_for_any_number_of_processes():
    single = list(GlobalBatchSampler(40, 8, seed=3))
    ranks = [list(GlobalBatchSampler(40, 8, world_size=2, rank=r, accum_steps=2, seed=3)) for r in (0, 1)]
    assert sorted(single) == list(range(40))
    for step in range(5):
        batch = set(single[step * 8 : (step + 1) * 8])
        parts = set(ranks[0][step * 4 : (step + 1) * 4]) | set(ranks[1][step * 4 : (step + 1) * 4])
        assert parts == batch
    sampler = GlobalBatchSampler(40, 8, seed=3)
    assert np.array_equal(sampler.epoch_order(1), GlobalBatchSampler(40, 8, seed=3).epoch_order(1))
    assert not np.array_equal(sampler.epoch_order(0), sampler.epoch_order(1))
    sampler.set_epoch(0, start_step=3)
    assert list(sampler) == single[24:] and len(sampler) == 16
    with pytest.raises(ValueError, match="divisible by 4"):
        GlobalBatchSampler(40, 6, world_size=2, accum_steps=2)
    with pytest.raises(ValueError, match="fewer than one global batch"):
        GlobalBatchSampler(5, 8)


def test_two_processes_match_one_process_with_the_same_global_batch(ddp_run, tmp_path):
    steps = [json.loads(line) for line in (ddp_run / "steps.jsonl").read_text().splitlines()]
    assert [row["step"] for row in steps] == list(range(1, STEPS + 1))  # written by rank 0 only
    config = json.loads((ddp_run / "config.json").read_text())["derived"]
    assert (config["world_size"], config["micro_batch_per_process"]) == (2, 4)
    single = train(TrainConfig.from_dict({**SETTINGS, "run_dir": str(tmp_path / "single")}))
    ddp, one = final_state(ddp_run), load_checkpoint(single.last_checkpoint)
    assert max_difference(ddp["model"], one["model"]) < TOLERANCE
    assert max_difference(ddp["model_ema"], one["model_ema"]) < TOLERANCE
    start = load_checkpoint(CheckpointManager(ddp_run / "checkpoints").checkpoints()[0])
    assert max_difference(start["model"], ddp["model"]) > 100 * TOLERANCE  # the weights did move


def test_a_run_resumes_on_a_different_number_of_processes(ddp_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(ddp_run, run_dir)
    middle = CheckpointManager(run_dir / "checkpoints").checkpoints()[0]
    assert load_checkpoint(middle)["world_size"] == 2 and load_checkpoint(middle)["global_step"] == 2
    with pytest.warns(UserWarning, match="superseded"):  # the later checkpoint is set aside, not deleted
        summary = train(TrainConfig.from_dict({**SETTINGS, "run_dir": str(run_dir), "resume": str(middle)}))
    assert summary.global_step == STEPS
    assert max_difference(load_checkpoint(summary.last_checkpoint)["model"], final_state(ddp_run)["model"]) < TOLERANCE


def test_torchrun_restarts_a_killed_worker_from_the_last_checkpoint(ddp_run, tmp_path):
    marker = tmp_path / "killed"
    run_dir = tmp_path / "run"
    torchrun(run_dir, {CRASH_ENV: f"1:3:{marker}"})  # rank 1 SIGKILLs itself once, after step 3
    assert marker.read_text().startswith("killed rank 1 at step 3")
    restarted, uninterrupted = final_state(run_dir), final_state(ddp_run)
    assert restarted["global_step"] == STEPS
    for name, tensor in uninterrupted["model"].items():
        assert torch.equal(restarted["model"][name], tensor), name
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in history] == [1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_two_node_job_that_loses_a_node_restarts_and_ends_where_an_uninterrupted_run_ends(ddp_run, tmp_path):
    run_dir, marker, port = tmp_path / "run", tmp_path / "killed", free_port()
    logs: list[Path] = []

    def agent(is_host: bool, crash: bool = False) -> subprocess.Popen:
        """One node: a torchrun agent with one worker, joining the c10d rendezvous on localhost."""
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes=2",
            "--nproc-per-node=1",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{port}",
            "--rdzv-id=two-nodes",
            f"--rdzv-conf=is_host={str(is_host).lower()},join_timeout=60",
            "--max-restarts=1",
            "--monitor-interval=0.2",
            "-m",
            "inception_resnet",
            "train",
            *train_flags(),
            "--run-dir",
            str(run_dir),
        ]
        # a fresh agent joining a restarted rendezvous waits forever for the shared store's address unless
        # each round publishes its own (torch's TCP-store sharing); crash: this node dies after step 3
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1",
            **({CRASH_ENV: f"*:3:node:{marker}"} if crash else {}),
        }
        logs.append(tmp_path / f"agent-{len(logs)}.log")
        return subprocess.Popen(
            command, env=env, stdout=logs[-1].open("w"), stderr=subprocess.STDOUT, start_new_session=True
        )

    started = time.monotonic()
    host = agent(is_host=True)  # hosts the rendezvous store: the node that survives
    time.sleep(1.0)
    other = agent(is_host=False, crash=True)
    agents = [host, other]
    try:
        while host.poll() is None and time.monotonic() - started < 240:
            if other.poll() is not None and len(agents) == 2:
                assert other.returncode == -signal.SIGKILL, logs[1].read_text()[-3000:]
                other = agent(is_host=False)  # the node comes back
                agents.append(other)
            time.sleep(0.2)
        assert host.wait(timeout=60) == 0 and other.wait(timeout=60) == 0, "\n".join(
            log.read_text()[-3000:] for log in logs
        )
    finally:
        for process in agents:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    assert marker.read_text().endswith("at step 3 with its agent\n") and len(agents) == 3
    output = "".join(log.read_text() for log in logs)
    assert "resumed from" in output and "last-e0001-s000000002.pt" in output
    restarted, uninterrupted = final_state(run_dir), final_state(ddp_run)
    assert restarted["global_step"] == STEPS
    for name, tensor in uninterrupted["model"].items():
        assert torch.equal(restarted["model"][name], tensor), name
    assert not (run_dir / "run.lock").exists()


def test_a_restart_seen_on_any_node_makes_every_node_resume(tmp_path, monkeypatch, one_thread):
    """After a node comes back, rank 0 may run on its fresh agent (restart count 0) while the others count 1."""
    from inception_resnet.training import resume

    settings = {
        **SETTINGS,
        "model_options": {"width_multiplier": 0.125},
        "data": "synthetic:16:2",
        "run_dir": str(tmp_path / "run"),
    }
    train(TrainConfig.from_dict(settings))
    monkeypatch.setattr(resume, "gather_objects", lambda value, ctx: [value, 1])  # another rank was restarted
    summary = train(TrainConfig.from_dict({**settings, "epochs": 2}))
    assert summary.epochs_completed == 2 and summary.history[0]["step"] == 2
    config = json.loads((tmp_path / "run" / "config.json").read_text())["derived"]
    assert config["resumed_from"].endswith("last-e0001-s000000002.pt")
