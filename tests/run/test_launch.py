"""launch.run streams, returns exit codes, and never reports a failed child as success."""

from __future__ import annotations

import os
import sys

import pytest

from factory_kit.run import launch
from factory_kit.core.errors import LaunchError


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


@pytest.mark.parametrize("line,fix", [
    ("ValueError: Your setup doesn't support bf16/gpu. You need to assign use_cpu if you want to train the model "
     "on CPU.", "set `precision: fp32`"),
    ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", "lower train.batch_size"),
    ("ValueError: Cannot find valid samples, check `data/README.md` for the data format.", "dataset's columns"),
    ("OSError: We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them in the "
     "cached files.", "huggingface-cli download"),
    ("ModuleNotFoundError: No module named 'deepspeed'", "pip install -e '.[deepspeed]'"),
    ("ImportError: Using `bitsandbytes` 4-bit quantization requires the latest version of bitsandbytes",
     "pip install bitsandbytes"),
])
def test_known_failures_come_with_the_fix(line, fix):
    code = f"import sys; print('step 1'); print({line!r}, file=sys.stderr); sys.exit(1)"
    with pytest.raises(LaunchError) as err:
        launch.run([sys.executable, "-c", code], echo=False)
    message = str(err.value)
    assert "failed (exit 1)" in message and "; fix: " in message and fix in message, message


def test_unknown_failure_gets_no_made_up_fix():
    code = "import sys; print('KeyError: something odd', file=sys.stderr); sys.exit(2)"
    with pytest.raises(LaunchError) as err:
        launch.run([sys.executable, "-c", code], echo=False)
    assert "fix:" not in str(err.value)


def test_missing_program_is_a_clear_error():
    with pytest.raises(LaunchError, match="cannot start"):
        launch.run(["/no/such/program"], echo=False)


def test_stdin_is_fed():
    result = launch.run([sys.executable, "-c", "print(input()[::-1])"], input_text="abc\n", echo=False)
    assert result.tail == ["cba"]


def test_sigterm_to_us_stops_the_child_group(tmp_path):
    """`factory-kit serve` stopped by systemd/docker/timeout (SIGTERM) must not leave its server running."""
    import os
    import signal
    import subprocess
    import time

    pid_file = tmp_path / "child.pid"
    child = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(300)"
    parent = ("import sys; from factory_kit.run import launch; "
              f"launch.run([sys.executable, '-c', {child!r}], echo=False)")
    proc = subprocess.Popen([sys.executable, "-c", parent])
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    child_pid = int(pid_file.read_text())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(child_pid, 0)


def test_interactive_child_reads_our_stdin_and_shows_prompts_at_once():
    """`factory-kit chat` in a terminal: the child reads our stdin, and a prompt without a newline
    (or a token streamed alone) shows before the child waits for input; failures still get the tail."""
    import subprocess
    import time

    child = ("import sys; name = input('name? '); print(name[::-1]); "
             "print('ValueError: bad ' + name, file=sys.stderr); sys.exit(3)")
    parent = ("import sys; from factory_kit.run import launch\n"
              "try:\n"
              f"    launch.run([sys.executable, '-c', {child!r}], interactive=True)\n"
              "except launch.LaunchError as exc:\n"
              "    print('ERR', exc)\n")
    proc = subprocess.Popen([sys.executable, "-c", parent], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    seen = b""
    deadline = time.monotonic() + 30
    while b"name? " not in seen:  # shown while the child still waits for its input
        assert time.monotonic() < deadline and proc.poll() is None, seen
        seen += os.read(proc.stdout.fileno(), 100)
    out, _ = proc.communicate(b"abc\n", timeout=30)
    text = (seen + out).decode()
    assert "cba" in text
    assert "ERR" in text and "failed (exit 3)" in text and "ValueError: bad abc" in text
