"""llama.cpp's Hugging Face -> GGUF converter, taken from the source archive of the pinned
llama-cpp-python (the installed package has no converter; the archive vendors llama.cpp with
``convert_hf_to_gguf.py``, its ``conversion`` package and ``gguf-py`` of the same commit, so the
converter always matches the library that loads and quantises its output).

The archive is fetched once with pip (``python -m factory_kit.ship.converter``, which `make install`
runs) and only the converter's files (MIT, ``LICENSE`` kept beside them) are kept in a cache folder.
``$FACTORY_KIT_GGUF_CONVERTER`` may name a llama.cpp checkout to use instead.

The converter refuses a BPE tokenizer whose pre-tokenizer it does not recognise by hash. The child
process here can force a pre-tokenizer (``export.gguf_pre_tokenizer``) or fall back to one read
from the tokenizer itself (a plain byte-level GPT-2 split, like the tiny model's, is ``gpt-2``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from factory_kit.core.errors import FactoryKitError

LLAMA_CPP_PYTHON = "0.3.36"  # setup.cfg's `gguf` extra pins the same version
ENV = "FACTORY_KIT_GGUF_CONVERTER"
PARTS = ("convert_hf_to_gguf.py", "conversion", "gguf-py", "LICENSE")
SCRIPT = "convert_hf_to_gguf.py"
FETCH_COMMAND = "python -m factory_kit.ship.converter"
KEY = "export.gguf_pre_tokenizer"

# Runs in the child: gguf-py of the same commit first on the path, then the pre-tokenizer policy.
_CHILD = r"""
import json, runpy, sys
conv, policy = sys.argv[1], json.loads(sys.argv[2])
sys.argv = [conv + "/convert_hf_to_gguf.py", *sys.argv[3:]]
sys.path[:0] = [conv, conv + "/gguf-py"]
import conversion.base as base
original = base.TextModel.get_vocab_base_pre
def get_vocab_base_pre(self, tokenizer):
    if policy["force"]:
        return policy["force"]
    try:
        return original(self, tokenizer)
    except NotImplementedError:
        if policy["fallback"]:
            print("factory-kit: unknown pre-tokenizer hash; using " + policy["fallback"], file=sys.stderr)
            return policy["fallback"]
        raise
base.TextModel.get_vocab_base_pre = get_vocab_base_pre
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def cache_dir() -> Path:
    """Where the fetched converter lives (one folder per llama-cpp-python version)."""
    root = os.environ.get("FACTORY_KIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "factory-kit")
    return Path(root) / f"llama-cpp-python-{LLAMA_CPP_PYTHON}-converter"


def _complete(folder: Path) -> bool:
    return all((folder / part).exists() for part in PARTS)


def find() -> Path | None:
    """The converter folder to use, or None when it has not been fetched yet."""
    named = os.environ.get(ENV)
    if named:
        folder = Path(named).expanduser()
        if not (folder / SCRIPT).is_file():
            raise FactoryKitError(f"${ENV}={named}: no {SCRIPT} there; point it at a llama.cpp checkout or unset it")
        return folder
    folder = cache_dir()
    return folder if _complete(folder) else None


def extract(archive: Path, target: Path) -> Path:
    """Keep only the converter's parts of the llama-cpp-python source archive, in ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".converter-", dir=target.parent))
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if len(parts) > 3 and parts[1:3] == ("vendor", "llama.cpp") and parts[3] in PARTS:
                    if member.isfile() or member.isdir():
                        tar.extract(member, staging, filter="data")
        found = [p for p in staging.glob("*/vendor/llama.cpp")]
        if not found or not _complete(found[0]):
            raise FactoryKitError(f"{archive}: no vendor/llama.cpp/{SCRIPT} in it; is it llama-cpp-python's source?")
        shutil.rmtree(target, ignore_errors=True)
        found[0].rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def fetch(echo: bool = True) -> Path:
    """Download llama-cpp-python's source archive with pip and keep the converter from it."""
    target = cache_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="factory-kit-sdist-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", tmp,
               f"llama-cpp-python=={LLAMA_CPP_PYTHON}"]
        if echo:
            print(f"fetching llama.cpp's GGUF converter (llama-cpp-python {LLAMA_CPP_PYTHON} source) into {target}",
                  file=sys.stderr)
        done = subprocess.run(cmd, capture_output=True, text=True)
        archives = sorted(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if done.returncode != 0 or not archives:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no archive"]
            raise FactoryKitError(f"could not fetch llama.cpp's GGUF converter ({last[0]}); run `{FETCH_COMMAND}` "
                                  f"where PyPI is reachable, or set ${ENV} to a llama.cpp checkout")
        return extract(archives[0], target)


def ensure(echo: bool = True) -> Path:
    """The converter folder, fetched on first use."""
    return find() or fetch(echo=echo)


def pre_tokenizers(folder: Path) -> list[str]:
    """The pre-tokenizer names this converter knows (the values its hash table maps to)."""
    text = "".join(p.read_text(encoding="utf-8") for p in sorted((folder / "conversion").glob("*.py")))
    return sorted(set(re.findall(r'\bres = "([\w.-]+)"', text)))


def detected_pre_tokenizer(model_dir: Path) -> str | None:
    """A pre-tokenizer read off ``tokenizer.json`` when it is unmistakable: a bare byte-level split with
    GPT-2's regex and no normaliser is llama.cpp's ``gpt-2`` (the tiny model's tokenizer is one)."""
    try:
        spec = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    pre = spec.get("pre_tokenizer") or {}
    if spec.get("normalizer") is None and pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"
    return None


def check_pre_tokenizer(name: str | None, origin: str | None = None) -> None:
    """A forced pre-tokenizer must be one this converter knows (checked before the slow steps)."""
    if not name:
        return
    known = pre_tokenizers(ensure())
    if name not in known:
        import difflib

        close = difflib.get_close_matches(name, known, n=3)
        raise FactoryKitError(f"{origin + ': ' if origin else ''}`{KEY}: {name}` is not a llama.cpp pre-tokenizer"
                              + (f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(known)}"))


def convert(model_dir: Path, outfile: Path, *, outtype: str = "f16", pre_tokenizer: str | None = None,
            log_path: Path | None = None, origin: str | None = None) -> Path:
    """``convert_hf_to_gguf.py model_dir --outfile outfile --outtype outtype`` in a child process;
    ``origin``: the recipe file (or --set) that set the pre-tokenizer, for the error message."""
    folder = ensure()
    check_pre_tokenizer(pre_tokenizer, origin)
    policy = {"force": pre_tokenizer, "fallback": detected_pre_tokenizer(model_dir)}
    outfile.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-c", _CHILD, str(folder), json.dumps(policy), str(model_dir),
           "--outfile", str(outfile), "--outtype", outtype]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "NO_LOCAL_GGUF": "1"})
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a", encoding="utf-8") as log:
            log.write(f"$ convert_hf_to_gguf.py {model_dir} --outfile {outfile} --outtype {outtype}\n")
            log.write(done.stdout + done.stderr)
    if done.returncode != 0 or not outfile.is_file():
        text = done.stdout + done.stderr
        if "pre-tokenizer was not recognized" in text:
            raise FactoryKitError(f"{model_dir}: llama.cpp's converter does not recognise this tokenizer's "
                                  f"pre-tokenizer; set `{KEY}: NAME` to the base model's (e.g. qwen2, llama-bpe, "
                                  f"gpt-2; `{FETCH_COMMAND} --list` shows all)")
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        raise FactoryKitError(f"GGUF conversion of {model_dir} failed: {lines[-1] if lines else 'no output'}"
                              + (f" (full log: {log_path})" if log_path else ""))
    return outfile


def main(argv: list[str] | None = None) -> int:
    """`python -m factory_kit.ship.converter [--list]`: fetch the converter (make install runs this)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        folder = ensure()
    except FactoryKitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if "--list" in args:
        print("\n".join(pre_tokenizers(folder)))
    else:
        print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
