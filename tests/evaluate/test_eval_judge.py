"""LLM judge: a real OpenAI-compatible server (llamafactory-cli api on the tiny model), and a
small fake server for fault injection (429 then success, 500, a body that is not JSON)."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from factory_kit.run import launch
from factory_kit.core.errors import FactoryKitError
from factory_kit.evaluate import judge

from eval_helpers import write_jsonl

PRED = [{"prompt": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n麻黄汤的君药？"
                   "患者电话 13812345678<|im_end|>\n<|im_start|>assistant\n", "predict": "麻黄。", "label": "麻黄为君。"},
        {"prompt": "<|im_start|>user\n肝开窍于？<|im_end|>\n", "predict": "目", "label": "肝开窍于目。"}]
GOOD = json.dumps({"accuracy": 4, "relevance": 5, "completeness": 3, "safety": 5, "comment": "ok"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def no_keys(monkeypatch):
    for name in ("FACTORY_KIT_JUDGE_API_KEY", "OPENAI_API_KEY", "FACTORY_KIT_JUDGE_BASE_URL", "FACTORY_KIT_JUDGE_MODEL"):
        monkeypatch.delenv(name, raising=False)


def test_parse_scores():
    assert judge.parse_scores(GOOD)["accuracy"] == 4.0
    assert judge.parse_scores("<think>{\"accuracy\": 1}</think>```json\n" + GOOD + "\n```")["relevance"] == 5.0
    assert judge.parse_scores('{"accuracy": 9, "relevance": 5, "completeness": 3, "safety": 5}') is None
    assert judge.parse_scores("gibberish 麻黄") is None
    assert judge.parse_scores("<think>never closes " + GOOD) is None


def test_settings_need_endpoint_model_and_key(monkeypatch):
    with pytest.raises(FactoryKitError, match="FACTORY_KIT_JUDGE_BASE_URL"):
        judge.settings()
    with pytest.raises(FactoryKitError, match="FACTORY_KIT_JUDGE_MODEL"):
        judge.settings(base_url="https://api.example.com/v1")
    with pytest.raises(FactoryKitError, match="FACTORY_KIT_JUDGE_API_KEY"):
        judge.settings("gpt", "https://api.example.com/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-123")
    assert judge.settings("gpt", "https://api.example.com/v1")[2] == "sk-secret-123"
    assert judge.settings("m", "http://127.0.0.1:9/v1")[2] == "sk-secret-123"
    monkeypatch.delenv("OPENAI_API_KEY")
    assert judge.settings("m", "http://127.0.0.1:9/v1")[2] == "local"


class Scripted(BaseHTTPRequestHandler):
    script: list = []
    seen: list = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"body": body, "auth": self.headers.get("Authorization")})
        status, content = type(self).script.pop(0) if type(self).script else (500, None)
        if status == 200 and content is not None:
            payload = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                                  "choices": [{"index": 0, "finish_reason": "stop",
                                               "message": {"role": "assistant", "content": content}}]}).encode()
        elif status == 200:
            payload = b"<html>not json"
        else:
            payload = json.dumps({"error": {"message": f"status {status}"}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("retry-after-ms", "5")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def fake_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Scripted.script, Scripted.seen = [], []
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_fault_injection_429_retry_500_and_bad_json(tmp_path, fake_server, monkeypatch):
    monkeypatch.setenv("FACTORY_KIT_JUDGE_API_KEY", "sk-never-written-42")
    preds = write_jsonl(tmp_path / "p.jsonl", PRED + [dict(r, predict=r["predict"] + "!") for r in PRED])  # 4 rows
    # row 0: 429 then a good answer (SDK retry); row 1: 500 on every try; row 2: a body that is not JSON;
    # row 3: a reply that is not the JSON asked for
    Scripted.script = [(429, None), (200, GOOD), (500, None), (500, None), (200, None),
                       (200, "I think it's fine")]
    summary = judge.judge_predictions(preds, tmp_path / "j", model="judge-x", base_url=fake_server, max_retries=1)
    assert (summary["scored"], summary["failed"], summary["unparseable"]) == (1, 2, 1)
    assert summary["means"]["accuracy"] == 4.0
    items = [json.loads(l) for l in (tmp_path / "j" / "judge.items.jsonl").read_text().splitlines()]
    assert [it["status"] for it in items] == ["scored", "failed", "failed", "unparseable"]
    assert "500" in items[1]["error"] and items[2]["error"]
    # PII redacted before sending; the key went in the header only and was never written
    sent = Scripted.seen[1]["body"]["messages"][0]["content"]
    assert "13812345678" not in sent and "麻黄汤的君药" in sent and "麻黄为君" in sent
    assert Scripted.seen[0]["auth"] == "Bearer sk-never-written-42"
    for path in (tmp_path / "j").iterdir():
        assert "sk-never-written-42" not in path.read_text()
    # re-run: answers in the journal are not paid for again; only the failed rows are retried
    calls = len(Scripted.seen)
    Scripted.script = [(200, GOOD), (200, GOOD)]
    again = judge.judge_predictions(preds, tmp_path / "j", model="judge-x", base_url=fake_server, max_retries=0)
    assert len(Scripted.seen) == calls + 2
    assert again["cached"] == 2 and again["scored"] == 3 and again["unparseable"] == 1


def test_every_request_failing_is_one_clear_error(tmp_path, fake_server):
    preds = write_jsonl(tmp_path / "p.jsonl", PRED[:1])
    Scripted.script = [(500, None)] * 3
    with pytest.raises(FactoryKitError, match=r"every request failed; last error: InternalServerError 500"):
        judge.judge_predictions(preds, tmp_path / "j", model="m", base_url=fake_server, max_retries=0)


def test_real_openai_compatible_server_gibberish_is_journalled(tmp_path, tiny_model):
    """llamafactory-cli api serving the tiny model: its replies are gibberish, so they must come
    back as unparseable (not crash, not be scored) and every reply must be in the journal."""
    port = free_port()
    infer = tmp_path / "infer.yaml"
    infer.write_text(f"model_name_or_path: {tiny_model}\ntemplate: qwen\ninfer_backend: huggingface\n"
                     "max_new_tokens: 16\ntrust_remote_code: true\n")
    log = open(tmp_path / "api.log", "w")
    proc = subprocess.Popen([launch.executable("llamafactory-cli"), "api", str(infer)], stdout=log,
                            stderr=subprocess.STDOUT, env={**__import__("os").environ, **launch.BASE_ENV,
                                                           "API_PORT": str(port), "API_HOST": "127.0.0.1"})
    try:
        base = f"http://127.0.0.1:{port}/v1"
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(base + "/models", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise AssertionError("api server did not start:\n" + (tmp_path / "api.log").read_text()[-2000:])
                time.sleep(0.5)
        preds = write_jsonl(tmp_path / "p.jsonl", PRED)
        summary = judge.judge_predictions(preds, tmp_path / "j", model="tiny", base_url=base, max_tokens=16)
        assert summary["items"] == 2 and summary["failed"] == 0
        assert summary["unparseable"] + summary["scored"] == 2
        journal = [json.loads(l) for l in (tmp_path / "j" / "journal.jsonl").read_text().splitlines()]
        assert len(journal) == 2 and all(isinstance(e["response"], str) for e in journal)
        items = [json.loads(l) for l in (tmp_path / "j" / "judge.items.jsonl").read_text().splitlines()]
        for it, entry in zip(items, journal):
            if it["status"] == "unparseable":
                assert it["response"] == entry["response"][:1000]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
