"""A small OpenAI-compatible chat server for synthesis tests and the bench: plausible Chinese
JSON replies for each synth template, a fixed added latency, and injected faults (429 with
Retry-After, 500, a hang past the client's timeout, a dropped connection, fenced / <think> /
prose-wrapped / malformed JSON, the wrong number of items). It counts every request it gets,
keyed by a hash of its messages, so tests can prove no paid call was repeated.

Run standalone (for the kill -9 test): ``python fakeserver.py PORT_FILE LOG_FILE LATENCY``.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def reply_for(prompt: str) -> str:
    """A valid reply (JSON text) for whichever synth template wrote ``prompt``."""
    tag = hashlib.sha1(prompt.encode()).hexdigest()[:6]
    if '"accuracy"' in prompt:
        return json.dumps({"accuracy": 4, "relevance": 5, "completeness": 4, "safety": 5, "comment": "好"})
    m = re.search(r"提出 (\d+) 个", prompt)
    if m:
        return json.dumps({"items": [f"资料{tag}中提到的第{i}味药有什么功效？" for i in range(1, int(m.group(1)) + 1)]},
                          ensure_ascii=False)
    m = re.search(r"围绕“(.+?)”编写 (\d+) 组", prompt)
    if m:
        return json.dumps({"items": [{"question": f"{m.group(1)}的第{i}个问题（{tag}）是什么？",
                                      "answer": f"这是关于{m.group(1)}的第{i}个回答，内容准确完整。"}
                                     for i in range(1, int(m.group(2)) + 1)]}, ensure_ascii=False)
    if '{"answer"' in prompt:
        q = prompt.split("【问题 / Question】")[-1].split("只输出")[0].strip()
        return json.dumps({"answer": f"根据资料，{q[:40]}的回答是：补气升阳，固表止汗（{tag}）。"}, ensure_ascii=False)
    if '{"explanation"' in prompt:
        return json.dumps({"explanation": f"因为题干所述证候与答案一致，其他选项不符（{tag}）。"}, ensure_ascii=False)
    if '{"cot"' in prompt:
        return json.dumps({"cot": f"首先分析主症，其次辨证，最后选方（{tag}）。"}, ensure_ascii=False)
    if '"question": "改写后的问题"' in prompt:
        return json.dumps({"question": f"换一种问法：这个问题（{tag}）怎么回答？", "answer": f"改写后的回答（{tag}）。"},
                          ensure_ascii=False)
    return json.dumps({"answer": "未知模板"}, ensure_ascii=False)


class FaultServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # 32 clients connect at once: the default backlog of 5 drops SYNs (1 s retries)

    def __init__(self, latency: float = 0.0, log_path: str | None = None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.latency = latency
        self.faults: list[tuple] = []  # consumed in order, one per request: ("429", secs) ("500",) ("hang", secs)
        #                                ("drop",) ("fence",) ("think",) ("prose",) ("malformed",) ("count", n)
        self.transform = None  # optional fn(prompt, content) -> content for every reply
        self.counts: Counter[str] = Counter()  # requests per messages hash (every attempt)
        self.answered: Counter[str] = Counter()  # successful replies per messages hash
        self.lock = threading.Lock()
        self.log_path = log_path
        self.headers_seen: list[dict[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def start(self) -> FaultServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def total(self) -> int:
        return sum(self.counts.values())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})

    def do_POST(self) -> None:
        srv: FaultServer = self.server  # type: ignore[assignment]
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        key = hashlib.sha256(json.dumps(body.get("messages"), ensure_ascii=False, sort_keys=True).encode()).hexdigest()
        with srv.lock:
            srv.counts[key] += 1
            srv.headers_seen.append(dict(self.headers))
            fault = srv.faults.pop(0) if srv.faults else None
        if srv.log_path:
            with open(srv.log_path, "a") as f:
                f.write(key + "\n")
        if srv.latency:
            time.sleep(srv.latency)
        kind = fault[0] if fault else None
        if kind == "429":
            return self._send(429, {"error": {"message": "rate limited", "type": "rate_limit"}},
                              {"Retry-After": str(fault[1])})
        if kind == "500":
            return self._send(500, {"error": {"message": "boom", "type": "server_error"}})
        if kind == "hang":
            time.sleep(fault[1])
        if kind == "drop":
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        content = reply_for(prompt)
        if srv.transform is not None:
            content = srv.transform(prompt, content)
        if kind == "fence":
            content = f"好的，以下是结果：\n```json\n{content}\n```\n希望有帮助。"
        elif kind == "think":
            content = f"<think>\n先想一想 {{不是JSON}} 再回答。\n</think>\n{content}"
        elif kind == "prose":
            content = f"结果如下：{content} 以上。"
        elif kind == "malformed":
            content = content[: len(content) // 2]
        elif kind == "count":
            data = json.loads(content)
            items = data["items"]
            data["items"] = (items * 5)[: fault[1]]
            content = json.dumps(data, ensure_ascii=False)
        with srv.lock:
            srv.answered[key] += 1
        self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": body.get("model"),
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": content}}],
                         "usage": {"prompt_tokens": len(prompt) // 2, "completion_tokens": len(content) // 2,
                                   "total_tokens": len(prompt) // 2 + len(content) // 2}})


if __name__ == "__main__":
    port_file, log_file, latency = sys.argv[1], sys.argv[2], float(sys.argv[3])
    server = FaultServer(latency, log_file)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os

    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()
