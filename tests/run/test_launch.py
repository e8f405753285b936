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
     "cached files.", "`hf download ID --local-dir models/NAME`"),
    ("ModuleNotFoundError: No module named 'deepspeed'", "pip install -e '.[deepspeed]'"),
    ("ImportError: Using `bitsandbytes` 4-bit quantization requires the latest version of bitsandbytes",
     "pip install 'factory-kit[qlora]'"),
    # what LLaMA-Factory 0.9.5 prints (check_version -> transformers' require_version) without bitsandbytes
    ("importlib.metadata.PackageNotFoundError: No package metadata was found for The 'bitsandbytes>=0.39.0' "
     "distribution was not found and is required by this application. ", "pip install 'factory-kit[qlora]'"),
])
def test_known_failures_come_with_the_fix(line, fix):
    code = f"import sys; print('step 1'); print({line!r}, file=sys.stderr); sys.exit(1)"
    with pytest.raises(LaunchError) as err:
        launch.run([sys.executable, "-c", code], echo=False)
    message = str(err.value)
    assert "failed (exit 1)" in message and "; fix: " in message and fix in message, message


def test_hub_hint_uses_hf_and_the_callers_terms():
    """huggingface_hub 1.x refuses `huggingface-cli download`; `eval --model` has no recipe key to set."""
    code = "import sys; print(\"OSError: Can't load tokenizer for 'Qwen/Qwen2.5-7B-Instruct'.\", file=sys.stderr); sys.exit(1)"
    with pytest.raises(LaunchError) as err:
        launch.run([sys.executable, "-c", code], echo=False,
                   terms={"use_local": "pass `--model models/NAME`", "model": "Qwen/Qwen2.5-7B-Instruct"})
    message = str(err.value)
    assert "`hf download Qwen/Qwen2.5-7B-Instruct --local-dir models/NAME`" in message
    assert "pass `--model models/NAME`" in message
    assert "huggingface-cli" not in message and "set `model:" not in message and "recipe" not in message
    with pytest.raises(LaunchError) as err:
        launch.run([sys.executable, "-c", code], echo=False)  # train/export/chat: the recipe's key
    assert "set `model: models/NAME` in the recipe" in str(err.value)


TRACEBACK_CHILD = (
    "import sys\n"
    "print('loading model')\n"
    "def load():\n"
    "    raise OSError('Failed to load tokenizer.')\n"
    "try:\n"
    "    load()\n"
    "except OSError as exc:\n"
    "    raise ValueError('no model here') from exc\n")


def test_tracebacks_go_to_the_log_not_the_screen(tmp_path, capsys, monkeypatch):
    """A failing child: normal output streams, its (chained) traceback is one line naming the log,
    the log keeps every line, and the error names the log too."""
    monkeypatch.chdir(tmp_path)
    log = tmp_path / "outputs" / "run" / "factory-kit.log"
    log.parent.mkdir(parents=True)
    with pytest.raises(LaunchError) as err:
        launch.run([sys.executable, "-c", TRACEBACK_CHILD], log_path=log)
    screen = capsys.readouterr().out
    assert "loading model" in screen
    assert "Traceback" not in screen and 'File "<string>"' not in screen
    assert "[traceback hidden: ValueError: no model here; full log: outputs/run/factory-kit.log]" in screen
    assert len(screen.strip().splitlines()) == 2, screen
    text = log.read_text()
    assert text.count("Traceback (most recent call last):") == 2 and "OSError: Failed to load tokenizer." in text
    assert str(err.value).endswith("full log: outputs/run/factory-kit.log")
    with pytest.raises(LaunchError):  # no log to keep it: the traceback stays on screen
        launch.run([sys.executable, "-c", TRACEBACK_CHILD])
    assert "Traceback (most recent call last):" in capsys.readouterr().out


def test_traceback_folder_handles_ranks_and_output_after():
    folder = launch.TracebackFolder("x.log")
    lines = ["[rank0]: Traceback (most recent call last):", '[rank0]:   File "t.py", line 1, in <module>',
             "[rank0]:     boom()", "[rank0]: RuntimeError: boom", "", "E1124 torchrun: failed", "done"]
    shown = [out for line in lines for out in folder.feed(line)] + folder.flush()
    assert shown == ["[traceback hidden: RuntimeError: boom; full log: x.log]", "E1124 torchrun: failed", "done"]


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
