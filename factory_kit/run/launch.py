"""Run child processes (llamafactory-cli, lm-eval...) and never report a false success.

Output is streamed line by line to the console (and an optional log file) while the last
lines are kept, so a failure can name the command and its last error line.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
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
# `{use_local}` is how the caller points at a local model: a recipe key for train/export/chat,
# an option for `eval --model` (see ``run``'s ``terms``); `{model}` is the model id when known.
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
    # 0.9.5 checks with transformers' require_version: "The 'bitsandbytes>=0.39.0' distribution was not found
    # and is required by this application. To fix: run `pip install bitsandbytes>=0.39.0`."
    (r"No module named '?bitsandbytes|requires.*bitsandbytes|bitsandbytes.*(not installed|CUDA)|"
     r"'bitsandbytes[^']*' distribution was not found",
     "method qlora needs bitsandbytes and a CUDA GPU: `pip install 'factory-kit[qlora]'` on the GPU machine"),
    (r"OfflineModeIsEnabled|LocalEntryNotFoundError|couldn't connect to 'https://huggingface\.co'|"
     r"is not a local folder and is not a valid model identifier|Can't load tokenizer for|Failed to load tokenizer",
     "the model is neither a local folder nor downloadable from here: download it where the hub is reachable "
     "(`hf download {model} --local-dir models/NAME`), copy it here, and {use_local}"),
    (r"No module named '?deepspeed",
     "hardware ds-* needs DeepSpeed: `.venv/bin/pip install -e '.[deepspeed]'`"),
]]
RECIPE_TERMS = {"use_local": "set `model: models/NAME` in the recipe", "model": "ID"}
_TRACEBACK = re.compile(r"^(?:\[rank\d+\]:\s?)?Traceback \(most recent call last\):")
_RANK_PREFIX = re.compile(r"^\[rank\d+\]:\s?")
_CHAINED = re.compile(r"^(During handling of the above exception|The above exception was the direct cause)")


@dataclass
class LaunchResult:
    command: list[str]
    returncode: int
    seconds: float
    tail: list[str] = field(default_factory=list)


def executable(name: str) -> str:
    """Prefer the tool installed next to this Python (the project's venv), then the script its own
    package installed (a venv that reuses another's packages, a --user install), then PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = _script_of(name) or shutil.which(name)
    if not found:
        raise FactoryKitError(f"`{name}` not found; run `make install` (or pip install -e .) first")
    return found


def _script_of(name: str) -> str | None:
    """The console script ``name`` as installed by the distribution this Python imports it from."""
    from importlib import metadata

    for entry in metadata.entry_points(group="console_scripts", name=name):
        dist = getattr(entry, "dist", None)
        for file in (dist.files or []) if dist else []:
            if file.name == name and file.parent.name in ("bin", "Scripts"):
                script = Path(str(dist.locate_file(file))).resolve()
                if script.is_file() and os.access(script, os.X_OK):
                    return str(script)
    return None


def last_error_line(lines: Sequence[str]) -> str:
    """The most telling line of a failed child's output: the last error-looking line."""
    for line in reversed(lines):
        if _ERROR_LINE.search(line):
            return line.strip()
    for line in reversed(lines):
        if line.strip():
            return line.strip()
    return "(no output)"


def known_fix(lines: Sequence[str], terms: dict[str, str] | None = None) -> str | None:
    """The fix for a failure factory-kit recognises in the child's last output lines, if any
    (only the last 40: where the fatal traceback is, not warnings from earlier on), in the
    caller's ``terms`` (see KNOWN_FAILURES)."""
    text = "\n".join(list(lines)[-40:])
    for pattern, hint in KNOWN_FAILURES:
        if pattern.search(text):
            return hint.format(**{**RECIPE_TERMS, **(terms or {})})
    return None


class TracebackFolder:
    """Keeps a child's Python tracebacks off the screen: lines from "Traceback (most recent call
    last):" to the exception line (chained tracebacks included) are held back and shown as one
    line naming the exception and the log that has them all. Every other line passes at once."""

    def __init__(self, log_hint: str) -> None:
        self.log_hint = log_hint
        self.held: list[str] = []  # kept for tests and debugging; the log has them anyway
        self.exception: str | None = None
        self.state = "pass"  # pass | frames (inside a traceback) | after (exception line seen)

    def feed(self, line: str) -> list[str]:
        """The lines to show now for one line of the child's output."""
        bare = _RANK_PREFIX.sub("", line)
        if self.state == "pass":
            if _TRACEBACK.match(line):
                self.state, self.held = "frames", [line]
                return []
            return [line]
        if self.state == "frames":
            self.held.append(line)
            if bare.strip() and not bare[:1].isspace() and not _TRACEBACK.match(line):
                self.state, self.exception = "after", bare.strip()
            return []
        # after an exception line: a chained traceback follows ("During handling ..."), or output goes on
        if not bare.strip():
            self.held.append(line)
            return []
        if _CHAINED.match(bare) or _TRACEBACK.match(line):
            self.state = "frames"
            self.held.append(line)
            return []
        return [*self.flush(), *self.feed(line)]

    def flush(self) -> list[str]:
        """The one line that stands for the held traceback (at a traceback's end or the child's)."""
        if self.state == "pass":
            return []
        exception = self.exception or "an unfinished traceback"
        self.state, self.held, self.exception = "pass", [], None
        return [f"[traceback hidden: {exception}; full log: {self.log_hint}]"]


def shown_path(path: Path) -> str:
    """``path`` as the user should read it: relative to the current folder when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


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
    terms: dict[str, str] | None = None,
) -> LaunchResult:
    """Run ``command``, stream its output, return the result; raise LaunchError on failure.

    ``interactive``: the child reads this terminal's stdin, and its output is shown as it comes
    (a prompt without a newline, tokens streamed one by one), not line by line.
    With a ``log_path``, the child's Python tracebacks go to the log only: the screen gets one line
    for each, and the error names the log. ``terms``: how a known failure's fix names things for
    this caller (see KNOWN_FAILURES).
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
    folder = TracebackFolder(shown_path(log_path)) if log_path and echo and not interactive else None

    def show(lines: list[str]) -> None:
        for shown in lines:
            sys.stdout.write(shown + "\n")
        sys.stdout.flush()

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
                    show(folder.feed(line) if folder else [line])
                if on_line:
                    on_line(line)
            returncode = proc.wait()
            if folder:
                show(folder.flush())
        except KeyboardInterrupt:
            try:
                stop_child(proc)
            except KeyboardInterrupt:  # a second Ctrl-C: no more grace
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            raise
        finally:
            restore()
    finally:
        if log:
            log.close()
    result = LaunchResult(command, returncode, time.monotonic() - start, list(tail))
    if returncode != 0:
        fix = known_fix(result.tail, terms)
        raise LaunchError(
            f"`{shlex.join(command)}` failed (exit {returncode}): {last_error_line(result.tail)}"
            + (f"; fix: {fix}" if fix else "")
            + (f"; full log: {shown_path(log_path)}" if log_path else "")
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
    terms: dict[str, str] | None = None,
) -> LaunchResult:
    """``llamafactory-cli SUBCOMMAND [CONFIG]``."""
    command = [executable("llamafactory-cli"), subcommand]
    if config is not None:
        command.append(str(config))
    return run(command, cwd=cwd, env=env, log_path=log_path, on_line=on_line, echo=echo,
               input_text=input_text, interactive=interactive, terms=terms)
