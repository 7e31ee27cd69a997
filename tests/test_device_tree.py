"""benchmarks/device_tree.sh: `slim` leaves only what a device stage reads in the tree a call carries, without
touching a file on disk; `restore` gives back HEAD's index and the exclude file as they were; both refuse to run
twice, and `slim` refuses staged changes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "device_tree.sh"
FILES = ("checkpoints/model.pt", "src/priorfit/models/__init__.py", "src/priorfit/models/kept.safetensors",
         "src/priorfit/models/other.safetensors", "benchmarks/results/figure.json", "benchmarks/results/a b[1].json",
         "configs/stage.json", "README.md")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def run(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(repo / "benchmarks" / "device_tree.sh"), *args], cwd=repo, capture_output=True,
                          text=True)


@pytest.fixture
def repo(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    git(tmp_path, "init", "-q")
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    shutil.copy(SCRIPT, tmp_path / "benchmarks" / "device_tree.sh")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "files")
    return tmp_path


def carried(repo: Path) -> set[str]:
    return set(git(repo, "ls-files", "--cached", "--others", "--exclude-standard").split())


def test_slim_keeps_code_and_named_paths_and_restore_undoes_it(repo):
    exclude = repo / ".git" / "info" / "exclude"
    before = exclude.read_text() if exclude.exists() else None
    slim = run(repo, "slim", "src/priorfit/models/kept.safetensors")
    assert slim.returncode == 0, slim.stderr
    assert carried(repo) == {"src/priorfit/models/__init__.py", "src/priorfit/models/kept.safetensors",
                             "configs/stage.json", "README.md", "benchmarks/device_tree.sh"}
    assert all((repo / name).is_file() for name in FILES)
    again = run(repo, "slim")
    assert again.returncode == 2 and "already slimmed" in again.stderr
    restore = run(repo, "restore")
    assert restore.returncode == 0, restore.stderr
    assert git(repo, "status", "--porcelain") == ""
    assert (exclude.read_text() if exclude.exists() else None) == before
    assert run(repo, "restore").returncode == 2


def test_slim_refuses_staged_changes_and_unknown_paths(repo):
    for keep in ("configs/missing.json", "checkpoints", "src/priorfit/models/*.safetensors"):
        refused = run(repo, "slim", keep)
        assert refused.returncode == 2 and "not a tracked file" in refused.stderr, keep
    (repo / "configs" / "stage.json").write_text("changed")
    git(repo, "add", "configs/stage.json")
    refused = run(repo, "slim")
    assert refused.returncode == 2 and "staged changes" in refused.stderr
    assert "checkpoints/model.pt" in carried(repo)
