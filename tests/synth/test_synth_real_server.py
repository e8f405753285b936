"""Synthesis against a real OpenAI-compatible server: `llamafactory-cli api` (what `factory-kit
serve` runs) on the tiny model, on loopback. Its replies are nonsense, never valid JSON: the
plumbing must hold (requests sent and journalled, replies quarantined as unparseable, no crash,
a clear report) and a re-run must send nothing. One server for the module (slow: ~20 s)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request

import pytest

from factory_kit.run import launch
from factory_kit.synth.pipeline import Options, synthesize


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def api_server(tiny_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    port = _free_port()
    infer = tmp / "infer.yaml"
    infer.write_text(f"model_name_or_path: {tiny_model}\ntemplate: qwen\ninfer_backend: huggingface\n"
                     "max_new_tokens: 16\ntrust_remote_code: true\n")
    log = open(tmp / "api.log", "w")
    proc = subprocess.Popen([launch.executable("llamafactory-cli"), "api", str(infer)], stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ, **launch.BASE_ENV, "API_PORT": str(port),
                                                           "API_HOST": "127.0.0.1"})
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(base + "/models", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise AssertionError("api server did not start:\n" + (tmp / "api.log").read_text()[-2000:])
                time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_docs_against_llamafactory_api(api_server, project):
    corpus = project / "c.txt"
    corpus.write_text("黄芪味甘，性微温，归肺、脾经。功能补气升阳、固表止汗。\n\n当归味甘、辛，性温。功能补血活血。\n",
                      encoding="utf-8")
    opts = dict(mode="docs", source=str(corpus), name="real", base_url=api_server, model="tiny", chunk_chars=40,
                max_tokens=16, concurrency=2)
    rep = synthesize(Options(**opts), project)
    q = rep["stages"]["questions"]
    assert q["requests"] == 2 and q["sent"] == 2 and q["failed"] == 0
    assert q["unparseable"] + q["parsed"] == 2  # nonsense is quarantined, not a crash
    assert rep["tokens"]["input"] > 0 and rep["tokens"]["output"] > 0  # from the server's usage
    journal = [json.loads(l) for l in (project / "synth" / "journal.jsonl").read_text().splitlines()]
    assert len(journal) == rep["requests"]["sent"] and all(isinstance(e["response"], str) for e in journal)
    rejected = [json.loads(l) for l in (project / "synth" / "real" / "rejected.jsonl").read_text().splitlines()]
    assert len(rejected) >= q["unparseable"]
    assert (project / "synth" / "real" / "report.md").is_file()
    again = synthesize(Options(**opts, force=True), project)
    assert again["requests"]["sent"] == 0 and again["requests"]["cached"] == rep["requests"]["sent"]
