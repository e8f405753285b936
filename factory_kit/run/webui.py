"""`factory-kit webui`: LLaMA-Factory's web UI (LlamaBoard) on this project's files.

``llamafactory-cli webui`` is started in the project folder, which is where the UI looks
for everything: ``llamaboard_config/*.yaml`` (the rendered recipes, see llamaboard.py),
``llamaboard_cache/user_config.yaml`` (its remembered model paths), ``saves/``.

Its "Data dir" field defaults to ``data`` (``llamafactory.webui.common.DEFAULT_DATA_DIR``,
copied into the Train and Evaluate tabs when they are built) and nothing else (no
environment variable, no user-config key) changes that default. Rather than copy
``dataset_info/dataset_info.json`` to ``data/`` (a second registry that drifts), the UI
is started through LLaMA-Factory's own CLI entry point (``llamafactory.cli.main`` with
``webui``, exactly what the ``llamafactory-cli`` script runs) in the same interpreter,
after setting that default to ``dataset_info``. Each rendered recipe carries
``train.dataset_dir`` too, so loading one points the UI at the registry either way.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from factory_kit.run import launch
from factory_kit.core import io, paths
from factory_kit.core.errors import FactoryKitError, LaunchError
from factory_kit.data import registry
from factory_kit.recipe.llamaboard import CONFIG_DIR, CUSTOM_MODEL

DATASET_DIR = paths.REGISTRY_DIRNAME  # relative to the project: the registry folder
CACHE_DIR = "llamaboard_cache"  # llamafactory.webui.common.DEFAULT_CACHE_DIR
USER_CONFIG = "user_config.yaml"  # llamafactory.webui.common.USER_CONFIG
LOG_NAME = "webui.log"

# Run in the interpreter of llamafactory-cli: argv is [-c, DATASET_DIR, "webui"].
_BOOT = """\
import sys
import llamafactory.webui.common as common
common.DEFAULT_DATA_DIR = sys.argv.pop(1)
from llamafactory.cli import main
sys.argv[0] = "llamafactory-cli"
sys.exit(main())
"""


def _interpreter(cli: str) -> str:
    """The Python that runs the ``llamafactory-cli`` console script (its shebang)."""
    try:
        with open(cli, "rb") as f:
            first = f.readline().decode("utf-8", "replace").strip()
    except OSError:
        first = ""
    if first.startswith("#!"):
        candidate = first[2:].strip().split()[0] if first[2:].strip() else ""
        if candidate and Path(candidate).name.startswith("python") and Path(candidate).exists():
            return candidate
    for name in ("python", "python3"):
        beside = Path(cli).parent / name
        if beside.exists():
            return str(beside)
    return sys.executable


def command(dataset_dir: str = DATASET_DIR) -> list[str]:
    """The command line that starts the web UI with ``dataset_dir`` as its data folder."""
    cli = launch.executable("llamafactory-cli")
    return [_interpreter(cli), "-c", _BOOT, dataset_dir, "webui"]


def _port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def sync_user_config(project: Path) -> Path:
    """Record each rendered recipe's model path where the UI looks models up.

    When "Load arguments" changes the Model name, the UI refills Model path and Chat
    template from ``llamaboard_cache/user_config.yaml`` (``path_dict``) and its model list.
    Writing ``path_dict[name] = path`` for every recipe in ``llamaboard_config/`` (newest
    last, so it wins a shared name such as ``Custom``) makes that refill agree with the
    recipes, and ``last_model`` = the newest recipe's model pre-selects it when the page
    opens, so loading that recipe changes no model name and keeps every loaded field.
    The UI's other keys (``lang``, ``hub_name``, ``cache_dir``) are kept.
    """
    path = project / CACHE_DIR / USER_CONFIG
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        config = {}
    if not isinstance(config, dict):
        config = {}
    for key, default in (("lang", None), ("hub_name", None), ("last_model", None), ("cache_dir", None)):
        config.setdefault(key, default)
    if not isinstance(config.get("path_dict"), dict):
        config["path_dict"] = {}
    recipes = sorted((project / CONFIG_DIR).glob("*.yaml"), key=lambda p: (p.stat().st_mtime, p.name))
    newest_model = None
    for recipe in recipes:
        try:
            saved = yaml.safe_load(recipe.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue
        name, model_path = saved.get("top.model_name"), saved.get("top.model_path")
        if isinstance(name, str) and isinstance(model_path, str) and model_path:
            config["path_dict"][name] = model_path
            newest_model = name
    if newest_model:
        config["last_model"] = newest_model
    io.write_if_changed(path, yaml.safe_dump(config, sort_keys=True, allow_unicode=True))
    return path


def start_webui(
    port: int = 7860,
    host: str = "127.0.0.1",
    project: Path | None = None,
    wait: bool = True,
) -> subprocess.Popen:
    """Start LLaMA-Factory's web UI on ``project`` (default: the project folder).

    ``wait=True`` (the CLI): the UI's output goes to the console and this returns when it
    exits (Ctrl-C stops it). ``wait=False``: return the running process at once, its
    output in ``<project>/llamaboard_cache/webui.log``; it leads its own process group,
    so :func:`stop_webui` ends it with every child.
    """
    project = Path(project or paths.project_dir()).resolve()
    if not project.is_dir():
        raise FactoryKitError(f"project folder {project} does not exist")
    registry_file = registry.registry_path(paths.registry_dir(project))
    if not registry_file.is_file():
        print(f"note: {registry_file} not found: the UI will list no datasets "
              "(import or register one first, e.g. `factory-kit data import`)", file=sys.stderr)
    if _port_taken(host, port):
        raise FactoryKitError(f"port {port} on {host} is already in use; pick another with --port")
    sync_user_config(project)
    env = {
        **os.environ,
        **launch.BASE_ENV,
        "GRADIO_SERVER_NAME": host,
        "GRADIO_SERVER_PORT": str(port),
    }
    cmd = command()
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    if not wait:
        (project / CACHE_DIR).mkdir(parents=True, exist_ok=True)
        log = open(project / CACHE_DIR / LOG_NAME, "w", encoding="utf-8")
        try:
            proc = subprocess.Popen(cmd, cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        proc.url = url  # type: ignore[attr-defined]
        proc.log_path = project / CACHE_DIR / LOG_NAME  # type: ignore[attr-defined]
        return proc
    print(f"LLaMA-Factory web UI for {project} on {url} (Ctrl-C stops it)")
    print(f"datasets: {DATASET_DIR}/dataset_info.json; recipes: Train tab -> Config path -> Load arguments")
    proc = subprocess.Popen(cmd, cwd=project, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    proc.url = url  # type: ignore[attr-defined]

    def _terminate(_signum, _frame):  # SIGTERM/SIGHUP to us: take the UI's group down too
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        returncode = proc.wait()
    except KeyboardInterrupt:
        stop_webui(proc)
        return proc
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if returncode != 0:
        raise LaunchError(f"llamafactory-cli webui exited with code {returncode}")
    return proc


def wait_until_ready(proc: subprocess.Popen, url: str | None = None, timeout: float = 180.0) -> float:
    """Poll the UI's page until it answers; seconds waited. Raise if the process dies first."""
    url = url or getattr(proc, "url")
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise LaunchError(f"llamafactory-cli webui exited with code {proc.returncode} before serving {url}"
                              + _log_tail(proc))
        try:
            with urllib.request.urlopen(url + "/", timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise LaunchError(f"web UI did not answer on {url} within {timeout:.0f} s" + _log_tail(proc))


def _log_tail(proc: subprocess.Popen, lines: int = 20) -> str:
    log_path = getattr(proc, "log_path", None)
    if not log_path:
        return ""
    try:
        tail = Path(log_path).read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "\n" + "\n".join(tail)


def stop_webui(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """End the web UI and its children (its whole process group, SIGTERM then SIGKILL)."""
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not _exited(proc.pid):
            time.sleep(0.1)
        # The leader is not reaped yet, so its group id cannot have been reused: children
        # still in the group (a training run started from the UI) are ended too.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    proc.wait(timeout=timeout)


def _exited(pid: int) -> bool:
    """Whether ``pid`` (our child) has exited, without reaping it."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


__all__ = ["start_webui", "stop_webui", "wait_until_ready", "sync_user_config", "command",
           "CUSTOM_MODEL"]
