"""`factory-kit push` against a small local server speaking the part of the Hub API huggingface_hub
uses (repo create, preupload, NDJSON commit, YAML validation): the files and the model card arrive,
the repo is private by default, and the token is in no file or log written."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from factory_kit.run import records

TOKEN = "hf_fakeTOKEN_0123456789abcdefSECRET"


class FakeHub(ThreadingHTTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.repos: dict[str, dict] = {}  # repo id -> {"visibility": str, "files": {path: bytes}}
        self.calls: list[tuple[str, str, str]] = []  # (method, path, Authorization header)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output quiet
        pass

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        hub: FakeHub = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        hub.calls.append(("POST", self.path, self.headers.get("Authorization", "")))
        parts = self.path.split("?")[0].strip("/").split("/")
        if self.path.startswith("/api/repos/create"):
            req = json.loads(body)
            repo = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
            if repo in hub.repos:
                return self._send(409, {"error": "You already created this model repo", "url": f"{hub.url}/{repo}"})
            # huggingface_hub 1.x sends `visibility`, older ones `private`
            hub.repos[repo] = {"visibility": req.get("visibility") or ("private" if req.get("private") else "public"),
                               "files": {}}
            return self._send(200, {"url": f"{hub.url}/{repo}", "name": repo})
        if self.path.startswith("/api/validate-yaml"):
            return self._send(200, {"errors": [], "warnings": []})
        if len(parts) >= 6 and parts[0] == "api" and parts[4] == "preupload":
            files = json.loads(body)["files"]
            return self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                              for f in files]})
        if len(parts) >= 6 and parts[0] == "api" and parts[4] == "commit":
            repo = f"{parts[2]}/{parts[3]}"
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    hub.repos[repo]["files"][item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            return self._send(200, {"commitUrl": f"{hub.url}/{repo}/commit/1", "commitOid": "1" * 40,
                                    "pullRequestUrl": None})
        return self._send(404, {"error": f"fake hub: no route {self.path}"})


@pytest.fixture
def hub():
    server = FakeHub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def exported_project(project: Path) -> tuple[Path, Path]:
    """What `factory-kit train` + `export` leave for tcm-lora, in small stand-in files."""
    out = project / "outputs" / "tcm-lora"
    merged = out / "merged"
    merged.mkdir(parents=True)
    for name, data in {"adapter_config.json": b'{"r": 8}', "adapter_model.safetensors": b"adapter-weights",
                       "tokenizer.json": b"{}", "trainer_log.jsonl": b"", "factory-kit.log": b"log"}.items():
        (out / name).write_bytes(data)
    (out / "checkpoint-10").mkdir()
    (out / "checkpoint-10" / "optimizer.pt").write_bytes(b"x")
    for name, data in {"config.json": b'{"model_type": "qwen2"}', "model.safetensors": b"merged-weights",
                       "tokenizer.json": b"{}", "generation_config.json": b"{}"}.items():
        (merged / name).write_bytes(data)
    records.write_merged_marker(merged, out)
    (out / "run.json").write_text(json.dumps({"recipe": "recipes/tcm-lora.yaml", "command": ["factory-kit", "train"],
                                              "started": "2026-01-01T00:00:00", "seconds": 12.5, "exit_code": 0,
                                              "packages": {"llamafactory": "0.9.5"}, "datasets": {}}))
    (out / "gguf").mkdir()
    (out / "gguf" / "tcm-lora-q4_k_m.gguf").write_bytes(b"GGUF q4")
    (out / "gguf" / "Modelfile").write_text("FROM ./tcm-lora-q4_k_m.gguf\n")
    gen = out / "eval" / "generation"
    gen.mkdir(parents=True)
    (gen / "generated_predictions.jsonl").write_text(json.dumps(
        {"prompt": "黄芪的功效？", "label": "补气升阳", "predict": "补气升阳，固表止汗"}, ensure_ascii=False) + "\n")
    (gen / "generation.json").write_text(json.dumps({"metrics": {"bleu-4": 12.5}, "datasets": ["tcm_qa_val"],
                                                     "rows": 1}))
    return out, merged


def push(project: Path, hub: FakeHub, *args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE", "TRANSFORMERS_OFFLINE"))}
    env.update({"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(project / ".hf-home"),
                "FACTORY_KIT_PROJECT": str(project)})
    if token:
        env["HF_TOKEN"] = token
    exe = str(Path(sys.executable).parent / "factory-kit")
    return subprocess.run([exe, "push", "recipes/tcm-lora.yaml", *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=120)


def test_push_commits_files_and_card_without_the_token(registry_project, hub):
    project = registry_project
    out, merged = exported_project(project)
    done = push(project, hub, "--set", "export.hub_repo=me/tcm-lora", "--set", "export.gguf=q4_k_m",
                "--set", "export.ollama=true")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"pushed {hub.url}/me/tcm-lora" in " ".join(done.stdout.split())
    repo = hub.repos["me/tcm-lora"]
    assert repo["visibility"] == "private"  # unless the recipe says otherwise
    files = repo["files"]
    assert sorted(files) == ["Modelfile", "README.md", "adapter/adapter_config.json",
                             "adapter/adapter_model.safetensors", "adapter/tokenizer.json", "config.json",
                             "generation_config.json", "model.safetensors", "tcm-lora-q4_k_m.gguf", "tokenizer.json"]
    assert files["tcm-lora-q4_k_m.gguf"] == b"GGUF q4"
    assert files["model.safetensors"] == b"merged-weights" and files["adapter/adapter_model.safetensors"] == \
        b"adapter-weights"
    card = files["README.md"].decode()
    assert card.startswith("---\nbase_model: \"Qwen/Qwen2.5-7B-Instruct\"\nlibrary_name: peft\n")
    for part in ("## Medical disclaimer", "not a medical device", "## Intended use", "the merged model",
                 "`adapter/`: the LoRA adapter", "`tcm-lora-q4_k_m.gguf`", "`Modelfile`: the Ollama chat template",
                 "## Generation metrics", "| bleu-4 | 12.50 |", "## Sample answers",
                 "**Answer:** 补气升阳，固表止汗", "## Datasets", "tcm_qa_train", "## Recipe", "llamafactory 0.9.5"):
        assert part in card, part
    assert (out / "model-card.md").read_text(encoding="utf-8") == card  # kept beside the run, as pushed
    # the token went to the server on every call, and nowhere else
    assert hub.calls and all(auth == f"Bearer {TOKEN}" for _, _, auth in hub.calls)
    assert TOKEN not in done.stdout + done.stderr
    for path in project.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    # a second push finds the repo (409 with its url) and commits again
    again = push(project, hub, "--set", "export.hub_repo=me/tcm-lora", "--set", "export.hub_private=false")
    assert again.returncode == 0, again.stdout + again.stderr
    assert [c[1] for c in hub.calls].count("/api/repos/create") == 2


def test_push_needs_a_repo_a_token_and_an_export(registry_project, hub, monkeypatch):
    """Each one line, before anything reaches the Hub (in-process: no request is made)."""
    from click.testing import CliRunner

    from factory_kit.cli import main

    def run(*args: str) -> str:
        res = CliRunner().invoke(main, ["push", "recipes/tcm-lora.yaml", *args])
        assert res.exit_code == 2, res.output
        return " ".join(res.output.split())

    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert "set `export.hub_repo: USER/NAME` to say which Hub repo to push to" in run()
    assert "merged: no merged model yet; run `factory-kit export recipes/tcm-lora.yaml` first" in \
        run("--set", "export.hub_repo=me/x")
    exported_project(registry_project)
    assert "gguf/tcm-lora-q8_0.gguf: not written yet; run `factory-kit export" in \
        run("--set", "export.hub_repo=me/x", "--set", "export.gguf=[q4_k_m, q8_0]")
    monkeypatch.delenv("HF_TOKEN")
    assert "needs a token in the environment: `export HF_TOKEN=hf_...`" in run("--set", "export.hub_repo=me/x")
    assert not hub.calls
    # the adapter alone, for `merge: false`
    adapter_only = push(registry_project, hub, "--set", "export.hub_repo=me/adapter", "--set", "export.merge=false")
    assert adapter_only.returncode == 0, adapter_only.stderr
    assert sorted(hub.repos["me/adapter"]["files"]) == ["README.md", "adapter_config.json",
                                                        "adapter_model.safetensors", "tokenizer.json"]


def test_a_refused_push_is_one_line_without_the_token(registry_project, hub, monkeypatch):
    project = registry_project
    exported_project(project)
    monkeypatch.setattr(Handler, "do_POST", lambda self: Handler._send(self, 401, {"error": "Invalid credentials"}))
    done = push(project, hub, "--set", "export.hub_repo=me/tcm-lora")
    assert done.returncode == 2
    err = " ".join(done.stderr.split())
    assert "Hub push to me/tcm-lora failed (HTTP 401)" in err and "is HF_TOKEN a valid token?" in err
    assert "Traceback" not in done.stderr and TOKEN not in done.stdout + done.stderr
