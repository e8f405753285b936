"""`factory-kit export` for real on the tiny model: train an adapter, merge it with llamafactory-cli,
convert the merged model to GGUF with llama.cpp's converter, quantise it with llama.cpp, read the
files back with the `gguf` package, and load and run them with llama-cpp-python."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from factory_kit.cli import main
from factory_kit.core.errors import FactoryKitError
from factory_kit.run import tinymodel, train
from factory_kit.ship import llamacpp, pipeline

FAST = ["train.epochs=1", "train.batch_size=4", "train.cutoff_len=64", "train.logging_steps=1", "eval_datasets=[]"]
GGUF_SETS = ("export.gguf=[f16, q8_0, q4_k_m]", "export.ollama=true")


@pytest.fixture
def tiny_project(registry_project, tiny_model):
    (registry_project / "models").mkdir()
    (registry_project / "models" / "tiny-qwen2").symlink_to(tiny_model)
    return registry_project


def _field(reader, key):
    import gguf

    field = reader.fields[key]
    value = field.parts[field.data[0]]
    if field.types and field.types[0] == gguf.GGUFValueType.STRING:
        return bytes(value).decode("utf-8")
    return value.tolist()[0]


def test_export_merges_converts_quantises_and_runs(tiny_project, capsys):
    import gguf
    from safetensors.numpy import load_file
    from transformers import AutoTokenizer

    train.train("recipes/demo-tiny.yaml", tuple(FAST), echo=False)
    said: list[str] = []
    start = time.monotonic()
    shipped = pipeline.export("recipes/demo-tiny.yaml", GGUF_SETS, echo=said.append, child_echo=False)
    seconds = time.monotonic() - start
    out = tiny_project / "outputs" / "demo-tiny"
    assert shipped.model_dir == out / "merged" and (out / "merged" / "config.json").is_file()
    assert [p.name for p in shipped.gguf] == ["demo-tiny-f16.gguf", "demo-tiny-q8_0.gguf", "demo-tiny-q4_k_m.gguf"]
    assert all(p.parent == out / "gguf" and p.stat().st_size > 0 for p in shipped.gguf)
    assert not list((out / "gguf").glob("*.partial"))
    print(f"\nexport (merge + f16 + q8_0 + q4_k_m) took {seconds:.1f}s: {said}", file=sys.stderr)

    # the f16 file: the merged model's tensors, metadata and chat template
    reader = gguf.GGUFReader(shipped.gguf[0])
    assert _field(reader, "general.architecture") == "qwen2"
    assert _field(reader, "qwen2.block_count") == 2 and _field(reader, "qwen2.embedding_length") == 64
    assert _field(reader, "tokenizer.ggml.pre") == "gpt-2"  # read off the tiny tokenizer's byte-level split
    assert _field(reader, "tokenizer.chat_template") == tinymodel.CHAT_TEMPLATE
    tokenizer = AutoTokenizer.from_pretrained(out / "merged")
    assert _field(reader, "tokenizer.ggml.eos_token_id") == tokenizer.convert_tokens_to_ids("<|im_end|>")
    tensors = {t.name: t for t in reader.tensors}
    assert {"token_embd.weight", "blk.0.attn_q.weight", "blk.1.ffn_down.weight", "output_norm.weight"} <= set(tensors)
    vocab = len(tokenizer)
    assert list(tensors["token_embd.weight"].shape) == [64, vocab]  # GGUF lists dims innermost first
    assert list(tensors["blk.0.ffn_up.weight"].shape) == [64, 128]
    merged = load_file(out / "merged" / "model.safetensors")
    q_proj = merged["model.layers.0.self_attn.q_proj.weight"]
    got = np.asarray(tensors["blk.0.attn_q.weight"].data, dtype=np.float32).reshape(q_proj.shape)
    assert np.allclose(got, q_proj.astype(np.float32), atol=1e-2)  # the merged (adapter-bearing) weights
    # the quantised files say what they are
    assert _field(gguf.GGUFReader(shipped.gguf[1]), "general.file_type") == 7  # MOSTLY_Q8_0
    q4 = gguf.GGUFReader(shipped.gguf[2])
    assert _field(q4, "general.file_type") == 15  # MOSTLY_Q4_K_M
    assert {t.tensor_type.name for t in q4.tensors} - {"F32", "F16"}  # quantised tensors in it
    assert shipped.gguf[2].stat().st_size < shipped.gguf[0].stat().st_size

    # llama.cpp tokenises as the Hugging Face tokenizer does, and the quantised model generates
    llm = llamacpp.load(shipped.gguf[2])
    text = "黄芪的功效？ Astragalus 30g, 每日2次."
    assert llm.tokenize(text.encode(), add_bos=False, special=False) == tokenizer.encode(text)
    reply = llm.create_chat_completion(messages=[{"role": "user", "content": "黄芪的功效？"}], max_tokens=8,
                                       temperature=0.0)
    assert reply["usage"]["completion_tokens"] > 0 and reply["usage"]["prompt_tokens"] > 5

    # the Modelfile points at the first GGUF, with the qwen chat format and stop words
    modelfile = (out / "gguf" / "Modelfile").read_text(encoding="utf-8")
    assert "FROM ./demo-tiny-f16.gguf" in modelfile and "<|im_start|>{{ .Role }}" in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile and "PARAMETER num_predict 48" in modelfile
    assert shipped.ollama.startswith("Ollama is not installed here (no `ollama` on PATH)")

    # `chat --gguf` answers through llama-cpp-python, on the recipe's first GGUF or a named type
    res = CliRunner().invoke(main, ["chat", "recipes/demo-tiny.yaml", "--gguf", "q8_0", "-q", "黄芪的功效？",
                                    "--set", "infer.max_new_tokens=4", "--set", GGUF_SETS[0]])
    assert res.exit_code == 0, res.output
    _served_answers(tiny_project)  # `serve --gguf`: the same file on an OpenAI-compatible API
    missing = CliRunner().invoke(main, ["chat", "recipes/demo-tiny.yaml", "--gguf", "q5_k_m", "-q", "hi"])
    assert missing.exit_code == 2
    assert "gguf/demo-tiny-q5_k_m.gguf: not written yet; run `factory-kit export recipes/demo-tiny.yaml`" in \
        " ".join(missing.output.split())


def test_serve_gguf_without_the_server_extras_says_what_to_install(monkeypatch, tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "llama_cpp.server.app", None)
    with pytest.raises(FactoryKitError, match=r"serving a GGUF needs llama-cpp-python's server extras .*: run "
                                              r"`pip install 'llama-cpp-python\[server\]==0.3.36'`"):
        llamacpp.serve(tmp_path / "m.gguf", host="127.0.0.1", port=8000)
    with pytest.raises(FactoryKitError, match=r"no GGUF file here"):
        llamacpp.serve(tmp_path / "none.gguf", host="127.0.0.1", port=8000)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _served_answers(tiny_project) -> None:
    """`serve --gguf` for real: llama-cpp-python's server on the quantised file, asked through `openai`."""
    import openai

    port = _free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "factory-kit")
    proc = subprocess.Popen([exe, "serve", "recipes/demo-tiny.yaml", "--gguf", "q4_k_m", "--port", str(port),
                             "--set", "export.gguf=q4_k_m"], cwd=tiny_project, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=30)
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            try:
                models = client.models.list()
                break
            except openai.APIConnectionError:
                assert time.monotonic() < deadline, "the GGUF server did not start"
                time.sleep(0.3)
        assert any(m.id.endswith("demo-tiny-q4_k_m.gguf") for m in models.data), models
        reply = client.chat.completions.create(model=models.data[0].id, max_tokens=6, temperature=0.0,
                                               messages=[{"role": "user", "content": "黄芪的功效？"}])
        assert reply.usage.completion_tokens > 0 and reply.choices[0].message.content is not None
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
