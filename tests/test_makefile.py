"""The first hour's install: ``make demo`` installs the runtime dependencies only, ``make test`` the test extra;
each set of extras has its own stamp file, and the apt step says what it installs (dry runs of ``make``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def dry_run(target: str, tmp_path: Path, *variables: str) -> str:
    """What ``make -n TARGET`` would run, for a fresh environment in ``tmp_path``."""
    make = shutil.which("make")
    assert make, "make is needed to build this project (make install, make test)"
    done = subprocess.run(
        [make, "-n", "-C", str(ROOT), target, f"VENV={tmp_path / 'venv'}", *variables],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_demo_installs_the_runtime_dependencies_only(tmp_path) -> None:
    commands = dry_run("demo", tmp_path)
    assert "pip install --quiet --disable-pip-version-check -e .\n" in commands
    for test_only in (".[test]", "tf-slim", "facenet-pytorch", "tensorflow"):
        assert test_only not in commands, test_only
    assert "touch " + str(tmp_path / "venv" / ".installed-runtime") in commands
    assert "study compare --preset cpu --out study-results/cpu/compare" in commands


@pytest.mark.parametrize(
    ("target", "variables", "stamp"),
    [
        ("test", (), ".installed-test"),
        ("install", ("EXTRAS=test,tensorboard",), ".installed-test,tensorboard"),
    ],
)
def test_test_installs_the_test_extra_and_references(tmp_path, target, variables, stamp) -> None:
    commands = dry_run(target, tmp_path, *variables)
    assert f"-e '.[{stamp.split('-', 1)[1]}]'" in commands
    assert "facenet-pytorch" in commands and "tf-slim" in commands
    assert "touch " + str(tmp_path / "venv" / stamp) in commands


def test_the_apt_step_says_what_it_installs() -> None:
    recipe = (ROOT / "Makefile").read_text().split("\nfashion-mnist:", 1)[1].split("\n\n", 1)[0]
    assert 'echo "Fashion-MNIST: apt-get install dataset-fashion-mnist' in recipe
    assert 'echo "Fashion-MNIST: apt-get update (package lists), then apt-get install dataset-fashion-mnist"' in recipe
