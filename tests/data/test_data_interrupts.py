"""An import commits all its outputs (rows, splits, benchmark, quarantine, meta, registry) together or
none: a real `factory-kit data import --split` is interrupted at each phase, over an earlier import of
the same name, and afterwards the project holds either the earlier import byte for byte or the new
one complete (byte-identical to an uninterrupted import), and never a temp file.

The phases are hit exactly through the test-only hook ``FACTORY_KIT_TEST_PAUSE_AT``
(factory_kit.core.interrupts.pause_point): the child says ``paused at PHASE`` on stderr and sleeps.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from factory_kit.core import io, paths
from factory_kit.data import commit, registry
from factory_kit.data.importer import import_source

CLI = [sys.executable, "-c", "import sys; from factory_kit.cli import main; sys.argv[0] = 'factory-kit'; main()", "data"]
TEMP = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}" + re.escape(io.TEMP_SUFFIX) + "$")
SPLIT = "0.8,0.1,0.1"


def _rows(path: Path, n: int, tag: str) -> Path:
    """Alpaca-ish Chinese clinical QA rows (~300 bytes each), a few duplicates and bad rows."""
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            if i % 997 == 5:
                fh.write('{"instruction": "", "output": "空"}\n')  # quarantined: empty field
                continue
            k = i if i % 503 else i - 1  # an exact duplicate now and then
            fh.write(json.dumps({"instruction": f"{tag}患者{k}号，男，45岁，反复头晕头痛三月余，舌红苔黄，脉弦数，请辨证",
                                 "output": f"证属肝阳上亢（{k}）。治以平肝潜阳，方用天麻钩藤饮加减：天麻、钩藤、石决明、"
                                           f"栀子、黄芩、杜仲、桑寄生、牛膝、夜交藤、茯神。{tag}"},
                                ensure_ascii=False) + "\n")
    return path


def _snapshot(project: Path) -> dict[str, bytes]:
    """Every file an import may write (data/, dataset_info/), by path; the lock file aside."""
    out = {}
    for folder in (project / "data", project / "dataset_info"):
        for p in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if p.is_file() and p.name != ".dataset_info.lock":
                out[str(p.relative_to(project))] = p.read_bytes()
    return out


def _leftovers(project: Path) -> list[str]:
    """Temp files and commit journals anywhere in the project's data and registry folders."""
    return [str(p.relative_to(project)) for folder in (project / "data", project / "dataset_info")
            for p in folder.rglob(".*") if TEMP.match(p.name) or p.name.endswith(registry.JOURNAL_SUFFIX)]


def _cli(project: Path, *args: str, env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    full_env = {**os.environ, "FACTORY_KIT_PROJECT": str(project), "FACTORY_KIT_PROGRESS": "0", **(env or {})}
    return subprocess.Popen([*CLI, *args], cwd=project, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _run(project: Path, *args: str) -> subprocess.CompletedProcess:
    proc = _cli(project, *args)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _paused(proc: subprocess.Popen, phase: str) -> None:
    """Wait until the child reports it reached ``phase``."""
    line = proc.stderr.readline()
    assert line.startswith(f"paused at {phase}"), line + proc.stderr.read()


@pytest.fixture(scope="module")
def states(tmp_path_factory):
    """A project holding an earlier import of `big` (with a split); the new source; and what an
    uninterrupted import of the new source over it makes (the state a completed commit must give)."""
    root = tmp_path_factory.mktemp("interrupts")
    old_src = _rows(root / "old.jsonl", 20_000, "旧")
    new_src = _rows(root / "new.jsonl", 60_000, "新")  # 18 MB: converted by worker processes
    base = root / "base"
    base.mkdir()
    done = _run(base, "import", str(old_src), "--name", "big", "--split", SPLIT)
    assert done.returncode == 0, done.stderr
    reference = root / "reference"
    shutil.copytree(base, reference)
    done = _run(reference, "import", str(new_src), "--name", "big", "--split", SPLIT)
    assert done.returncode == 0, done.stderr
    before, after = _snapshot(base), _snapshot(reference)
    assert before != after and "data/big_test.jsonl" in before and "data/quarantine/big.rejected.jsonl" in after
    assert not _leftovers(base) and not _leftovers(reference)
    return base, new_src, before, after


def _import_paused(tmp_path: Path, states, phase: str, **env: str) -> tuple[Path, subprocess.Popen]:
    base, new_src, _, _ = states
    project = tmp_path / "proj"
    shutil.copytree(base, project)
    proc = _cli(project, "import", str(new_src), "--name", "big", "--split", SPLIT,
                env={"FACTORY_KIT_TEST_PAUSE_AT": phase, **env}, start_new_session=True)
    _paused(proc, phase)
    return project, proc


@pytest.mark.parametrize("phase", ["read", "split", "commit"])
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupt_before_the_commit_changes_nothing(tmp_path, states, phase, how):
    project, proc = _import_paused(tmp_path, states, phase)
    if how == "ctrl-c":  # what a terminal does: SIGINT to the whole process group (workers too)
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["interrupted; nothing changed (big is as it was before this import)"]
    assert "Traceback" not in out + err
    assert _snapshot(project) == states[2]  # the earlier import, byte for byte (registry included)
    assert _leftovers(project) == []


def test_ctrl_c_during_the_commit_lets_it_complete(tmp_path, states):
    project, proc = _import_paused(tmp_path, states, "commit-mid", FACTORY_KIT_TEST_PAUSE_SECONDS="1")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted during the final step, which completed: big is the new import" in err
    assert out.startswith("big: ") and "accepted" in out  # the report still shows
    assert _snapshot(project) == states[3]
    assert _leftovers(project) == []


def test_kill_during_the_commit_is_finished_by_the_next_command(tmp_path, states):
    """kill -9 after the first rename: the journal is left, and the next command that reads the
    registry (here `data ls`) finishes the commit, so the new import is complete."""
    project, proc = _import_paused(tmp_path, states, "commit-mid")
    proc.kill()
    proc.communicate(timeout=60)
    assert list((project / "dataset_info").glob(".big.commit")), "the journal should be left behind"
    assert _snapshot(project) not in (states[2], states[3])  # half done, for now
    done = _run(project, "ls")
    assert done.returncode == 0, done.stderr
    assert _snapshot(project) == states[3]
    assert _leftovers(project) == []


def test_temp_files_of_a_killed_import_are_removed_by_the_next(tmp_path, states):
    project, proc = _import_paused(tmp_path, states, "split")
    proc.kill()  # kill -9: no cleanup can run
    proc.communicate(timeout=60)
    left = _leftovers(project)
    assert any(name.startswith("data/.big.jsonl.") for name in left) and any("big_train" in n for n in left)
    small = _rows(tmp_path / "small.jsonl", 10, "小")
    done = _run(project, "import", str(small), "--name", "small")
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert re.fullmatch(r"cleaned: removed \d+ temp files \([\d.]+ MB\) that interrupted runs left in data/, data/quarantine/", first), first
    assert _leftovers(project) == []
    now = _snapshot(project)
    registry_file = "dataset_info/dataset_info.json"
    assert all(now[k] == v for k, v in states[2].items() if k != registry_file)  # big as it was
    assert set(json.loads(now[registry_file])) == {"big", "big_train", "big_val", "big_test", "small"}


def test_a_live_imports_temp_files_are_left_alone(tmp_path):
    """Only temp files whose process is gone are removed: another import running now keeps its own."""
    data = paths.data_dir(tmp_path)
    data.mkdir(parents=True)
    live = io.temp_path_for(data / "x.jsonl")  # this process's pid: alive
    dead_proc = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_proc.wait()
    dead = data / f".x.jsonl.{dead_proc.pid}.0123abcd{io.TEMP_SUFFIX}"
    live.write_text("live")
    dead.write_text("dead" * 1000)
    line = commit.clean_stale(tmp_path)
    assert live.exists() and not dead.exists()
    assert line == "removed 1 temp file (3.9 KB) that interrupted runs left in data/"
    assert commit.clean_stale(tmp_path) is None


def test_interrupt_in_process_leaves_the_previous_import(project, monkeypatch):
    """The same guarantee from Python (KeyboardInterrupt in the split pass), without a subprocess."""
    src = _rows(project / "a.jsonl", 300, "甲")
    import_source(src, "a", split="0.5,0.5")
    before = _snapshot(project)
    from factory_kit.data import split as split_mod

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(split_mod, "write_splits", boom)
    with pytest.raises(KeyboardInterrupt):
        import_source(_rows(project / "b.jsonl", 200, "乙"), "a", split="0.5,0.5")
    assert _snapshot(project) == before
    assert _leftovers(project) == []
