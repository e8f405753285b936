"""core.io: the one atomic-write helper; core.progress: quiet off a terminal."""

from __future__ import annotations

import io as stdio
import json
import os
import stat

import pytest

from factory_kit.core import io, progress


def test_interrupted_write_keeps_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "dataset_info.json"
    target.write_text("old\n")
    with pytest.raises(KeyboardInterrupt):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise KeyboardInterrupt
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["dataset_info.json"]


def test_write_json_replaces_whole_and_keeps_chinese(tmp_path):
    target = tmp_path / "sub" / "meta.json"
    io.write_json(target, {"b": 1, "名": "黄芪"}, sort_keys=True)
    text = target.read_text(encoding="utf-8")
    assert json.loads(text) == {"b": 1, "名": "黄芪"} and "黄芪" in text and text.endswith("\n")


def test_write_if_changed_leaves_an_equal_file_alone(tmp_path):
    target = tmp_path / "train.yaml"
    assert io.write_if_changed(target, "a: 1\n") is True
    before = target.stat().st_mtime_ns
    assert io.write_if_changed(target, "a: 1\n") is False
    assert target.stat().st_mtime_ns == before
    assert io.write_if_changed(target, "a: 2\n") is True and target.read_text() == "a: 2\n"


def test_temp_names_are_unique_hidden_and_beside_the_target(tmp_path):
    final = tmp_path / "x.jsonl"
    a, b = io.temp_path_for(final), io.temp_path_for(final)
    assert a != b and a.parent == final.parent
    assert a.name.startswith(".x.jsonl.") and a.name.endswith(io.TEMP_SUFFIX)


def test_progress_is_silent_off_a_terminal(monkeypatch):
    monkeypatch.delenv("FACTORY_KIT_PROGRESS", raising=False)
    err = stdio.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    assert progress.enabled() is False
    with progress.bar("importing", total=3) as bar:
        bar.advance(3)
    assert err.getvalue() == ""


def test_progress_can_be_forced_either_way(monkeypatch):
    monkeypatch.setenv("FACTORY_KIT_PROGRESS", "0")
    assert progress.enabled() is False
    monkeypatch.setenv("FACTORY_KIT_PROGRESS", "1")
    assert progress.enabled() is True


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_new_files_get_the_umask_mode_whatever_the_temp_had(tmp_path, umask_022):
    """A temp file made private (mkstemp makes 0600) must not make the target private."""
    target = tmp_path / "dataset_info.json"
    with io.atomic_path(target) as tmp:
        os.close(os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o600))
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_replacing_a_file_keeps_its_mode(tmp_path, umask_022):
    target = tmp_path / "dataset_info.json"
    target.write_text("{}\n")
    target.chmod(0o664)  # group-writable on purpose (a shared project)
    io.write_json(target, {"a": 1})
    assert stat.S_IMODE(target.stat().st_mode) == 0o664 and json.loads(target.read_text()) == {"a": 1}
