"""The synthesis client's parts: endpoints, journal, parsing, rate limit, budget, retries."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest
from fakeserver import FaultServer

from factory_kit.core.errors import FactoryKitError
from factory_kit.synth import endpoints
from factory_kit.synth.client import (
    Budget,
    BudgetExceeded,
    Client,
    RateLimiter,
    estimate_tokens,
)
from factory_kit.synth.journal import Journal, request_key
from factory_kit.synth.parse import ParseError, parse_json


# -- endpoints -----------------------------------------------------------------------------------
def test_every_preset_loads_and_names_its_key_variable():
    names = endpoints.presets()
    assert {"deepseek", "moonshot", "zhipu", "qwen", "local"} <= set(names)
    for name in names:
        ep = endpoints.load(name)
        assert ep.base_url.startswith("http") and ep.model
        assert ep.local or ep.api_key_env  # a hosted endpoint always names where its key lives


def test_key_only_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    with pytest.raises(FactoryKitError, match="export DEEPSEEK_API_KEY"):
        endpoints.load("deepseek").api_key()
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-from-env")
    assert endpoints.load("deepseek").api_key() == "sk-from-env"
    bad = tmp_path / "ep.yaml"
    bad.write_text("base_url: https://x.example/v1\nmodel: m\napi_key: sk-in-a-file\n")
    with pytest.raises(FactoryKitError, match="never put a key in a file"):
        endpoints.load(str(bad))


def test_endpoint_file_errors_name_the_key(tmp_path):
    f = tmp_path / "ep.yaml"
    f.write_text("base_url: https://x.example/v1\nmodel: m\nconcurency: 4\n")
    with pytest.raises(FactoryKitError, match="unknown key `concurency`; did you mean `concurrency`"):
        endpoints.load(str(f))
    f.write_text("base_url: https://x.example/v1\nmodel: m\nrpm: -1\n")
    with pytest.raises(FactoryKitError, match="rpm"):
        endpoints.load(str(f))
    with pytest.raises(FactoryKitError, match="did you mean deepseek"):
        endpoints.load("deepseak")


# -- journal -------------------------------------------------------------------------------------
def test_request_key_covers_the_request_not_the_key():
    msgs = [{"role": "user", "content": "问"}]
    k = request_key("http://a/v1/", "m", msgs, {"temperature": 0.7})
    assert k == request_key("http://a/v1", "m", msgs, {"temperature": 0.7})  # trailing slash is the same server
    assert k != request_key("http://a/v1", "m2", msgs, {"temperature": 0.7})
    assert k != request_key("http://a/v1", "m", msgs, {"temperature": 0.0})


def test_torn_last_line_is_skipped_and_never_glued_onto(tmp_path):
    path = tmp_path / "j.jsonl"
    j = Journal(path)
    j.append({"key": "a", "response": "1"})
    with open(path, "a") as f:
        f.write('{"key": "b", "respo')  # a writer killed mid-line
    j2 = Journal(path)
    assert j2.get("a")["response"] == "1" and j2.get("b") is None
    j2.append({"key": "c", "response": "3"})
    j3 = Journal(path)
    assert j3.get("c")["response"] == "3" and j3.torn == 1
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["key"] == "c"


def _hammer(path: str, tag: str, n: int) -> None:
    j = Journal(Path(path))
    for i in range(n):
        j.append({"key": f"{tag}{i}", "response": "x" * (i * 37 % 5000)})


def test_two_processes_appending_interleave_whole_lines(tmp_path):
    path = tmp_path / "j.jsonl"
    procs = [multiprocessing.get_context("fork").Process(target=_hammer, args=(str(path), t, 150)) for t in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    lines = path.read_text().splitlines()
    assert len(lines) == 300 and all(json.loads(line)["key"] for line in lines)
    assert len(Journal(path)) == 300


# -- parsing -------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,repaired", [
    ('{"items": ["a", "b"]}', False),
    ('["a", "b"]', False),
    ('```json\n{"items": ["a", "b"]}\n```', True),
    ('好的：\n```\n["a", "b"]\n```\n以上', True),
    ('<think>\n想一想 {"不是": 1} [x]\n</think>\n{"items": ["a", "b"]}', True),
    ('想完了</think>["a", "b"]', True),
    ('结果如下：["a", "b"] 希望有帮助', True),
])
def test_strict_json_with_one_repair(text, repaired):
    assert parse_json(text, list) == (["a", "b"], repaired)


@pytest.mark.parametrize("text,why", [
    ("", "empty"), ('{"items": ["a", ', "no JSON list"), ("<think>还没想完", "only <think>"),
    ("没有JSON", "no JSON list"),
])
def test_unparseable_is_an_error_with_the_reason(text, why):
    with pytest.raises(ParseError, match=why):
        parse_json(text, list)


def test_object_replies():
    assert parse_json('<think>x</think>{"answer": "补气"}', dict) == ({"answer": "补气"}, True)
    assert parse_json('[{"answer": "补气"}]', dict) == ({"answer": "补气"}, False)


# -- rate limit, budget ----------------------------------------------------------------------------
def test_rate_limiter_spaces_requests_and_tokens():
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    rl = RateLimiter(rpm=60, tpm=None, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        rl.wait(10)
    assert now[0] == pytest.approx(3.0)  # 1 request per second
    now[0], slept[:] = 0.0, []
    rl = RateLimiter(rpm=None, tpm=600, clock=lambda: now[0], sleep=sleep)
    rl.wait(100)
    rl.wait(100)
    assert now[0] == pytest.approx(10.0)  # 100 tokens at 600/min = 10 s


def test_budget_refuses_what_would_exceed_it():
    b = Budget(max_tokens=100)
    b.reserve(60, 0)
    with pytest.raises(BudgetExceeded):
        b.reserve(50, 0)
    b.settle((60, 0.0), (30, 0.0))  # it used less than its worst case
    b.reserve(50, 0)
    assert b.tokens == 80 and b.reached


def test_token_estimate_is_rough_but_sane():
    assert 5 <= estimate_tokens("黄芪补气升阳固表止汗") <= 20
    assert 2 <= estimate_tokens("hello world, hi") <= 8


# -- retries against a faulty server ---------------------------------------------------------------------
@pytest.fixture
def server():
    srv = FaultServer().start()
    yield srv
    srv.shutdown()


def _client(tmp_path, server, **kw):
    ep = endpoints.Endpoint(name="fake", base_url=server.url, model="m", concurrency=kw.pop("concurrency", 1),
                            timeout=kw.pop("timeout", 5.0), max_attempts=kw.pop("max_attempts", 4))
    return Client(ep, Journal(tmp_path / "j.jsonl"), backoff=0.01, **kw)


def test_retries_429_with_retry_after_500_hang_and_drop(tmp_path, server):
    c = _client(tmp_path, server, timeout=0.5, max_attempts=6)
    server.faults = [("429", 0.3), ("500",), ("hang", 1.0), ("drop",)]
    t = time.monotonic()
    answer = c.complete([{"role": "user", "content": "提出 2 个"}], {"max_tokens": 64})
    assert answer.text and json.loads(answer.text)["items"]
    assert time.monotonic() - t >= 0.3  # Retry-After honoured
    assert c.stats.retries == 4 and c.stats.sent == 1
    assert set(c.stats.retry_reasons) == {"429", "500", "APITimeoutError", "APIConnectionError"}
    assert server.total() == 5


def test_client_error_is_not_retried_and_gives_up_after_attempts(tmp_path, server):
    c = _client(tmp_path, server, max_attempts=2)
    server.faults = [("500",), ("500",)]
    answer = c.complete([{"role": "user", "content": "x"}], {"max_tokens": 8})
    assert answer.text is None and "500" in answer.error and c.stats.failed == 1 and server.total() == 2
    assert len(Journal(tmp_path / "j.jsonl")) == 0  # failures are not cached: a re-run tries again


def test_answers_are_journalled_and_never_paid_twice(tmp_path, server):
    c = _client(tmp_path, server)
    msgs = [{"role": "user", "content": "提出 1 个"}]
    first = c.complete(msgs, {"max_tokens": 8})
    assert not first.cached and server.total() == 1
    entry = json.loads((tmp_path / "j.jsonl").read_text())
    assert entry["key"] == first.key and entry["usage"]["prompt_tokens"] > 0
    again = _client(tmp_path, server).complete(msgs, {"max_tokens": 8})
    assert again.cached and again.text == first.text and server.total() == 1


def test_an_interrupt_sends_nothing_more_from_the_queue(tmp_path, server):
    """Ctrl-C (or an error) mid-run: requests still queued are cancelled, never sent; those in
    flight finish (and are journalled)."""
    server.latency = 0.1
    c = _client(tmp_path, server, concurrency=2)

    def ask(i):
        if i == 1:
            time.sleep(0.6)  # keeps a worker busy, so item 3 is still queued at the interrupt
        return c.complete([{"role": "user", "content": f"q{i}"}], {"max_tokens": 8})

    with pytest.raises(KeyboardInterrupt):
        for _ in c.map(ask, range(50)):
            raise KeyboardInterrupt
    time.sleep(0.3)
    assert server.total() == 3  # items 0, 1, 2: in flight; 3 (queued) and the other 46 never sent
    assert len(Journal(tmp_path / "j.jsonl")) == 3


def test_project_templates_override_the_shipped_ones(project, server):
    from factory_kit.synth.pipeline import Options, synthesize

    own = project / "templates" / "synth"
    own.mkdir(parents=True)
    (own / "topic_qa.md.j2").write_text("我的模板：围绕“{{ topic }}”编写 {{ n }} 组问答，输出 JSON。\n", encoding="utf-8")
    topics = project / "t.txt"
    topics.write_text("方剂学\n", encoding="utf-8")
    seen = []
    server.transform = lambda prompt, content: (seen.append(prompt), content)[1]
    rep = synthesize(Options(mode="topics", source=str(topics), name="t", base_url=server.url, count=2), project)
    assert seen and seen[0].startswith("我的模板") and rep["import"]["accepted"] == 2
    prov = json.loads((project / "synth" / "t" / "provenance.jsonl").read_text().splitlines()[0])
    import hashlib

    assert prov["template_hash"] == hashlib.sha256((own / "topic_qa.md.j2").read_bytes()).hexdigest()[:12]
