"""launch.run streams, returns exit codes, and never reports a failed child as success."""

from __future__ import annotations

import sys

import pytest

from factory_kit import launch
from factory_kit.errors import LaunchError


def test_success_streams_and_keeps_tail(tmp_path, capsys):
    seen = []
    result = launch.run([sys.executable, "-c", "print('a'); print('b')"], on_line=seen.append,
                        log_path=tmp_path / "log.txt")
    assert result.returncode == 0 and seen == ["a", "b"]
    assert capsys.readouterr().out == "a\nb\n"
    assert (tmp_path / "log.txt").read_text() == "a\nb\n"


def test_failure_names_command_and_last_error_line():
    code = "import sys; print('loading'); print('ValueError: bad key x', file=sys.stderr); print('bye'); sys.exit(3)"
    with pytest.raises(LaunchError) as err:
        launch.run([sys.executable, "-c", code], echo=False)
    message = str(err.value)
    assert "failed (exit 3)" in message and "ValueError: bad key x" in message and sys.executable in message


def test_missing_program_is_a_clear_error():
    with pytest.raises(LaunchError, match="cannot start"):
        launch.run(["/no/such/program"], echo=False)


def test_stdin_is_fed():
    result = launch.run([sys.executable, "-c", "print(input()[::-1])"], input_text="abc\n", echo=False)
    assert result.tail == ["cba"]
