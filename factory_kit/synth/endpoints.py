"""Endpoints: one small YAML file per OpenAI-compatible API (like a recipe, kept in git).

A file names the server and model, the *name* of the environment variable that holds the key
(the key itself is only ever read from the environment, never from a file), the client-side
limits (concurrency, requests and tokens per minute), prices per million input/output tokens
and what the model does (``reasoning``: it writes ``<think>`` first; ``json_mode``: it accepts
``response_format={"type": "json_object"}``). Presets ship in ``synth/endpoints/``; a path to
any YAML file with the same keys works too.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from factory_kit.core.errors import FactoryKitError

PRESETS_DIR = Path(__file__).resolve().parent / "endpoints"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "0.0.0.0")


@dataclass(frozen=True)
class Endpoint:
    name: str
    base_url: str
    model: str
    api_key_env: str | None = None
    concurrency: int = 4
    rpm: float | None = None  # requests per minute (client-side limit)
    tpm: float | None = None  # tokens per minute (prompt estimate + max_tokens)
    price_input: float = 0.0  # per million input tokens
    price_output: float = 0.0  # per million output tokens
    currency: str = "USD"
    reasoning: bool = False
    json_mode: bool = False
    max_tokens: int = 2048
    temperature: float = 0.7
    timeout: float = 120.0  # seconds per request
    max_attempts: int = 6  # tries per request (429 / 5xx / timeouts / dropped connections)
    source: str = ""  # the file it was read from

    @property
    def local(self) -> bool:
        return (urlparse(self.base_url).hostname or "") in LOOPBACK

    def api_key(self) -> str:
        """The key, from the environment only; a loopback server needs none."""
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if key:
                return key
            if not self.local:
                raise FactoryKitError(f"{self.source or self.name}: API key not set: export {self.api_key_env}=... "
                                      "(keys are read from the environment only, never from a file)")
        elif not self.local:
            raise FactoryKitError(f"{self.source or self.name}: api_key_env is empty; name the environment "
                                  "variable that holds the key, e.g. api_key_env: DEEPSEEK_API_KEY")
        return "local"

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.price_input + tokens_out * self.price_output) / 1e6

    def public(self) -> dict[str, Any]:
        """What reports and provenance may show (never a key; only the variable's name)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "source"}


FIELDS = {f.name for f in dataclasses.fields(Endpoint)} - {"name", "source"}
REQUIRED = ("base_url", "model")


def presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load(spec: str | Path, **overrides: Any) -> Endpoint:
    """A preset name (``deepseek``) or a YAML file path, with ``overrides`` (None ignored)."""
    path = Path(spec)
    if not (path.suffix in (".yaml", ".yml") or path.is_file()):
        path = PRESETS_DIR / f"{spec}.yaml"
        if not path.is_file():
            close = difflib.get_close_matches(str(spec), presets(), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise FactoryKitError(f"--endpoint {spec}: no such preset or file (presets: {', '.join(presets())}){hint}")
    if not path.is_file():
        raise FactoryKitError(f"--endpoint {spec}: no such file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise FactoryKitError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise FactoryKitError(f"{path}: expected a mapping of endpoint keys ({', '.join(sorted(FIELDS))})")
    for key in data:
        if key in ("api_key", "key"):
            raise FactoryKitError(f"{path}: key `{key}`: never put a key in a file; set api_key_env: VAR_NAME "
                                  "and export VAR_NAME in the environment")
        if key not in FIELDS:
            close = difflib.get_close_matches(str(key), sorted(FIELDS), n=1)
            raise FactoryKitError(f"{path}: unknown key `{key}`" + (f"; did you mean `{close[0]}`?" if close else
                                                                      f" (keys: {', '.join(sorted(FIELDS))})"))
    data.update({k: v for k, v in overrides.items() if v is not None})
    for key in REQUIRED:
        if not data.get(key):
            raise FactoryKitError(f"{path}: `{key}` is required")
    try:
        ep = Endpoint(name=path.stem, source=str(path), **data)
        _check(ep, path)
    except (TypeError, ValueError) as exc:
        raise FactoryKitError(f"{path}: {exc}") from None
    return ep


def _check(ep: Endpoint, path: Path) -> None:
    numbers = {"concurrency": ep.concurrency, "max_tokens": ep.max_tokens, "max_attempts": ep.max_attempts,
               "timeout": ep.timeout, "price_input": ep.price_input, "price_output": ep.price_output}
    for key, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < (0 if "price" in key else 1):
            raise FactoryKitError(f"{path}: `{key}: {value!r}` must be a number >= {0 if 'price' in key else 1}")
    for key in ("rpm", "tpm"):
        value = getattr(ep, key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise FactoryKitError(f"{path}: `{key}: {value!r}` must be a positive number or null (no limit)")
    if not str(ep.base_url).startswith(("http://", "https://")):
        raise FactoryKitError(f"{path}: `base_url: {ep.base_url}` must start with http:// or https://")
