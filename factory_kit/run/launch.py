"""Run child processes (llamafactory-cli, lm-eval...) and never report a false success.

Output is streamed line by line to the console (and an optional log file) while the last
lines are kept, so a failure can name the command and its last error line.
"""

from __future__ import annotations

import codecs
import collections
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Iterator, Sequence

from factory_kit.core.errors import FactoryKitError, LaunchError

_ERROR_LINE = re.compile(r"(Error|Exception|error:|ERROR|Traceback|failed|No such file)")
# Env every child gets: no telemetry, no version nags, no tokenizer thread warnings.
BASE_ENV = {
    "DISABLE_VERSION_CHECK": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "WANDB_DISABLED": "true",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "PYTHONUNBUFFERED": "1",
}
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

# Failures users hit most, recognised in a child's output, with the fix in factory-kit's terms
# (the child's own message names its internals: `use_cpu`, `per_device_train_batch_size`...).
KNOWN_FAILURES: list[tuple[re.Pattern, str]] = [(re.compile(p, re.I), hint) for p, hint in [
    (r"doesn't support bf16|bf16.*requires|--bf16.*not supported",
     "this machine has no GPU with bf16 for `precision: bf16`; to run on the CPU set `precision: fp32` "
     "(--set precision=fp32)"),
    (r"fp16.*requires a GPU|fp16.*only.*on CUDA|--fp16.*not supported",
     "this machine has no GPU for `precision: fp16`; to run on the CPU set `precision: fp32` (--set precision=fp32)"),
    (r"CUDA out of memory|OutOfMemoryError",
     "the GPU ran out of memory: lower train.batch_size (raise train.grad_accum to keep the effective batch) or "
     "train.cutoff_len, set train.gradient_checkpointing: true, or use method qlora / hardware ds-z3(-offload)"),
    (r"Cannot find valid samples",
     "no row survived LLaMA-Factory's preprocessing: check the dataset's columns in dataset_info.json "
     "(`factory-kit check`) and that train.cutoff_len is longer than the prompts"),
    (r"OfflineModeIsEnabled|LocalEntryNotFoundError|couldn't connect to 'https://huggingface\.co'|"
     r"is not a local folder and is not a valid model identifier|Can't load tokenizer for",
     "the model is neither a local folder nor downloadable from here: download it first "
     "(`huggingface-cli download ID --local-dir models/NAME`) and set `model: models/NAME`"),
    (r"No module named '?bitsandbytes|requires.*bitsandbytes|bitsandbytes.*(not installed|CUDA)",
     "method qlora needs bitsandbytes and a CUDA GPU: `pip install bitsandbytes` on the GPU machine"),
    (r"No module named '?deepspeed",
     "hardware ds-* needs DeepSpeed: `.venv/bin/pip install -e '.[deepspeed]'`"),
]]


@dataclass
class LaunchResult:
    command: list[str]
    returncode: int
    seconds: float
    tail: list[str] = field(default_factory=list)


def executable(name: str) -> str:
    """Prefer the tool installed next to this Python (the project's venv), then PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise FactoryKitError(f"`{name}` not found; run `make install` (or pip install -e .) first")
    return found


def last_error_line(lines: Sequence[str]) -> str:
    """The most telling line of a failed child's output: the last error-looking line."""
    for line in reversed(lines):
        if _ERROR_LINE.search(line):
            return line.strip()
    for line in reversed(lines):
        if line.strip():
            return line.strip()
    return "(no output)"


def known_fix(lines: Sequence[str]) -> str | None:
    """The fix for a failure factory-kit recognises in the child's last output lines, if any
    (only the last 40: where the fatal traceback is, not warnings from earlier on)."""
    text = "\n".join(list(lines)[-40:])
    for pattern, hint in KNOWN_FAILURES:
        if pattern.search(text):
            return hint
    return None


def stop_child(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the child's whole process group, then SIGKILL what is left after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _stop_child_on_signals(proc: subprocess.Popen) -> Callable[[], None]:
    """While the child runs, SIGTERM/SIGHUP to us stop it too (systemd, docker, `timeout` send those,
    not Ctrl-C). Returns a function that restores the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, _frame):
        stop_child(proc)
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)
    return restore


def _passed_through(fd: int) -> Iterator[str]:
    """Write the child's output to our stdout as it arrives; yield it again line by line
    (for the tail, the log and ``on_line``)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    while True:
        chunk = os.read(fd, 65536)
        text = decoder.decode(chunk, final=not chunk)
        sys.stdout.write(text)
        sys.stdout.flush()
        pending += text
        *lines, pending = pending.split("\n")
        yield from lines
        if not chunk:
            break
    if pending:
        yield pending


def run(
    command: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    on_line: Callable[[str], None] | None = None,
    echo: bool = True,
    tail_lines: int = 200,
    input_text: str | None = None,
    interactive: bool = False,
) -> LaunchResult:
    """Run ``command``, stream its output, return the result; raise LaunchError on failure.

    ``interactive``: the child reads this terminal's stdin, and its output is shown as it comes
    (a prompt without a newline, tokens streamed one by one), not line by line.
    """
    command = [str(c) for c in command]
    child_env = {**os.environ, **BASE_ENV, **(env or {})}
    # llamafactory-cli re-launches itself with `torchrun` from PATH: make the venv's bin visible
    # even when factory-kit was started as .venv/bin/factory-kit without activating the venv.
    venv_bin = str(Path(sys.executable).parent)
    if venv_bin not in child_env.get("PATH", "").split(os.pathsep):
        child_env["PATH"] = os.pathsep.join([venv_bin, child_env.get("PATH", "")])
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    start = time.monotonic()
    log = open(log_path, "a", encoding="utf-8") if log_path else None
    try:
        try:
            proc = subprocess.Popen(
                command,
                cwd=cwd,
                env=child_env,
                stdin=None if interactive else subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                bufsize=1,
                start_new_session=True,  # its own process group: stopping us stops torchrun's workers too
            )
        except OSError as exc:
            raise LaunchError(f"cannot start `{shlex.join(command)}`: {exc.strerror}") from None
        restore = _stop_child_on_signals(proc)
        assert proc.stdout is not None
        if input_text is not None:
            assert proc.stdin is not None
            proc.stdin.write(input_text)
            proc.stdin.close()
        try:
            for raw in (_passed_through(proc.stdout.fileno()) if interactive else proc.stdout):
                # tqdm redraws with \r: keep the newest frame only.
                line = raw.rstrip("\n").split("\r")[-1]
                tail.append(line)
                if log:
                    log.write(line + "\n")
                if echo and not interactive:
                    sys.stdout.write(line + "\n")
                    sys.stdout.flush()
                if on_line:
                    on_line(line)
            returncode = proc.wait()
        except KeyboardInterrupt:
            stop_child(proc)
            raise
        finally:
            restore()
    finally:
        if log:
            log.close()
    result = LaunchResult(command, returncode, time.monotonic() - start, list(tail))
    if returncode != 0:
        fix = known_fix(result.tail)
        raise LaunchError(
            f"`{shlex.join(command)}` failed (exit {returncode}): {last_error_line(result.tail)}"
            + (f"; fix: {fix}" if fix else "")
        )
    return result


def llamafactory(
    subcommand: str,
    config: Path | None = None,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    on_line: Callable[[str], None] | None = None,
    echo: bool = True,
    input_text: str | None = None,
    interactive: bool = False,
) -> LaunchResult:
    """``llamafactory-cli SUBCOMMAND [CONFIG]``."""
    command = [executable("llamafactory-cli"), subcommand]
    if config is not None:
        command.append(str(config))
    return run(command, cwd=cwd, env=env, log_path=log_path, on_line=on_line, echo=echo,
               input_text=input_text, interactive=interactive)
