"""GGUF files through llama-cpp-python (the `gguf` extra): convert the merged model once to f16,
quantise from it with ``llama_model_quantize``, and chat with or serve a GGUF so a user can check
the shipped file before sending it."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import time
from pathlib import Path

from factory_kit.core.errors import FactoryKitError
from factory_kit.recipe.schema import GGUF_TYPES
from factory_kit.ship import converter

EXTRA = "pip install 'factory-kit[gguf]'"
# GGUF types the recipe may ask for -> llama.cpp's ftype constant (llama_cpp.LLAMA_FTYPE_MOSTLY_*).
TYPES = {t: t.upper() for t in GGUF_TYPES}  # f16 -> F16, q4_k_m -> Q4_K_M


def require():
    """llama_cpp, or one line saying how to install it (it builds from source: minutes)."""
    try:
        import llama_cpp
    except ImportError:
        raise FactoryKitError(f"GGUF needs llama-cpp-python, which is not installed: run `{EXTRA}` "
                              f"(builds llama.cpp from source, ~4 min on 2 cores; see docs/shipping.md)") from None
    return llama_cpp


def quiet() -> None:
    """llama.cpp's info lines (a line per tensor while quantising) off; its errors still show."""
    try:
        from llama_cpp import _logger
    except ImportError:  # a llama-cpp-python without its logger module: keep its output
        return
    _logger.set_verbose(False)


def wanted_types(value: str | list[str] | None) -> list[str]:
    """`export.gguf` as a list (``q4_k_m``, ``[f16, q4_k_m]`` or ``f16,q4_k_m`` from --set), checked."""
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else value
    types = [str(t).strip().lower() for t in items if str(t).strip()]
    bad = [t for t in types if t not in TYPES]
    if bad:
        raise FactoryKitError(f"`export.gguf: {bad[0]}` is not a GGUF type factory-kit writes; use one or a list "
                              f"of {', '.join(TYPES)}")
    return list(dict.fromkeys(types))


def gguf_path(out_dir: Path, name: str, gtype: str) -> Path:
    return out_dir / f"{name}-{gtype}.gguf"


@contextlib.contextmanager
def _stderr_to(log_path: Path | None):
    """llama.cpp writes to file descriptor 2 from C: send it to the log file meanwhile (one per tensor)."""
    if log_path is None:
        yield
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(log_path, "ab") as log:
            os.dup2(log.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def quantize(source: Path, target: Path, gtype: str, *, threads: int | None = None,
             log_path: Path | None = None) -> Path:
    """``llama_model_quantize(source -> target)`` at ``gtype`` (tensors a k-quant cannot split, like the
    tiny model's 64-wide ones, get llama.cpp's own fallback type)."""
    llama_cpp = require()
    quiet()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{TYPES[gtype]}")
    params.nthread = threads or min(os.cpu_count() or 1, 8)
    tmp = target.with_name(target.name + ".partial")
    with _stderr_to(log_path):
        code = llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), ctypes.byref(params))
    if code != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise FactoryKitError(f"llama.cpp could not quantise {source} to {gtype} (code {code})"
                              + (f"; its output is in {log_path}" if log_path else ""))
    tmp.replace(target)
    return target


def build(model_dir: Path, out_dir: Path, name: str, types: list[str], *, pre_tokenizer: str | None = None,
          log_path: Path | None = None, origin: str | None = None, echo=print) -> list[Path]:
    """The GGUF files for ``types``: f16 converted from ``model_dir``, the rest quantised from it (the f16
    file is removed again unless asked for). Returns the files in the order asked."""
    require()
    out_dir.mkdir(parents=True, exist_ok=True)
    f16 = gguf_path(out_dir, name, "f16")
    start = time.monotonic()
    tmp = f16.with_name(f16.name + ".partial")
    converter.convert(model_dir, tmp, outtype="f16", pre_tokenizer=pre_tokenizer, log_path=log_path,
                      origin=origin)
    tmp.replace(f16)
    echo(f"gguf f16 {f16.name} ({time.monotonic() - start:.1f}s)")
    files = []
    for gtype in types:
        if gtype == "f16":
            files.append(f16)
            continue
        start = time.monotonic()
        files.append(quantize(f16, gguf_path(out_dir, name, gtype), gtype, log_path=log_path))
        echo(f"gguf {gtype} {files[-1].name} ({time.monotonic() - start:.1f}s)")
    if "f16" not in types:
        f16.unlink()
    return files


def load(path: Path, *, n_ctx: int = 2048, verbose: bool = False):
    """A ``llama_cpp.Llama`` on the GGUF file."""
    llama_cpp = require()
    if not Path(path).is_file():
        raise FactoryKitError(f"{path}: no GGUF file here; run `factory-kit export RECIPE` with `export.gguf` set")
    if not verbose:
        quiet()
    return llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, verbose=verbose)


def ask(path: Path, question: str, *, max_tokens: int = 64, temperature: float = 0.7, top_p: float = 0.9,
        stop: list[str] | None = None) -> str:
    """One answer from the GGUF through its own chat template (the one written into the file)."""
    llm = load(path)
    reply = llm.create_chat_completion(messages=[{"role": "user", "content": question}], max_tokens=max_tokens,
                                       temperature=temperature, top_p=top_p, stop=stop or None)
    return reply["choices"][0]["message"]["content"] or ""


def chat_loop(path: Path, *, max_tokens: int, temperature: float, top_p: float, stop: list[str] | None = None,
              read=input, write=print) -> None:
    """A terminal session on the GGUF until the user types ``exit`` (or ends input)."""
    llm = load(path)
    history: list[dict[str, str]] = []
    while True:
        try:
            text = read("User: ")
        except EOFError:
            return
        if text.strip() in ("exit", "quit"):
            return
        history.append({"role": "user", "content": text})
        reply = llm.create_chat_completion(messages=history, max_tokens=max_tokens, temperature=temperature,
                                           top_p=top_p, stop=stop or None)
        answer = reply["choices"][0]["message"]["content"] or ""
        history.append({"role": "assistant", "content": answer})
        write(f"Assistant: {answer}")


def serve(path: Path, *, host: str, port: int) -> None:
    """llama-cpp-python's OpenAI-compatible server on the GGUF, until stopped."""
    require()
    if not Path(path).is_file():
        raise FactoryKitError(f"{path}: no GGUF file here; run `factory-kit export RECIPE` with `export.gguf` set")
    try:
        import llama_cpp.server.app  # noqa: F401  (needs fastapi, uvicorn, sse-starlette, starlette-context)
    except ImportError as exc:
        raise FactoryKitError(f"serving a GGUF needs llama-cpp-python's server extras ({exc.name} is missing): "
                              f"run `pip install 'llama-cpp-python[server]=={converter.LLAMA_CPP_PYTHON}'`") from None
    import subprocess

    subprocess.run([sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--host", host,
                    "--port", str(port)], check=False)
