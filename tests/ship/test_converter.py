"""Getting llama.cpp's converter out of llama-cpp-python's source archive, the pre-tokenizer policy
(forced, read off the tokenizer, or a one-line error naming the override) and the missing-extra
message. A stand-in converter keeps these fast; tests/ship/test_ship_real.py runs the real one."""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import pytest

from factory_kit.core.errors import FactoryKitError
from factory_kit.ship import converter, llamacpp

FAKE_BASE = '''
class TextModel:
    def get_vocab_base_pre(self, tokenizer):
        if "res = " and False:
            res = "qwen2"
            res = "llama-bpe"
            res = "gpt-2"
        raise NotImplementedError("BPE pre-tokenizer was not recognized - update get_vocab_base_pre()")
'''
FAKE_SCRIPT = '''
import sys
from conversion.base import TextModel
import gguf
out = sys.argv[sys.argv.index("--outfile") + 1]
pre = TextModel().get_vocab_base_pre(None)
open(out, "w").write(pre + " " + gguf.WHO)
'''


def fake_converter(root: Path) -> Path:
    (root / "conversion").mkdir(parents=True)
    (root / "conversion" / "__init__.py").write_text("")
    (root / "conversion" / "base.py").write_text(FAKE_BASE)
    (root / "gguf-py" / "gguf").mkdir(parents=True)
    (root / "gguf-py" / "gguf" / "__init__.py").write_text("WHO = 'vendored gguf-py'\n")
    (root / "convert_hf_to_gguf.py").write_text(FAKE_SCRIPT)
    (root / "LICENSE").write_text("MIT License\n")
    return root


def tokenizer_folder(path: Path, pre_tokenizer: dict | None, normalizer: dict | None = None) -> Path:
    path.mkdir(parents=True)
    (path / "tokenizer.json").write_text(json.dumps({"normalizer": normalizer, "pre_tokenizer": pre_tokenizer}))
    return path


def test_the_tiny_models_byte_level_split_is_gpt2_and_others_are_not_guessed(tmp_path, tiny_model):
    assert converter.detected_pre_tokenizer(tiny_model) == "gpt-2"
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    assert converter.detected_pre_tokenizer(tokenizer_folder(tmp_path / "a", byte_level)) == "gpt-2"
    qwen_like = {"type": "Sequence", "pretokenizers": [{"type": "Split"}, {**byte_level, "use_regex": False}]}
    assert converter.detected_pre_tokenizer(tokenizer_folder(tmp_path / "b", qwen_like)) is None
    assert converter.detected_pre_tokenizer(tokenizer_folder(tmp_path / "c", byte_level, {"type": "NFC"})) is None
    assert converter.detected_pre_tokenizer(tmp_path / "none") is None


def test_pre_tokenizer_policy_forced_detected_or_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(converter.ENV, str(fake_converter(tmp_path / "conv")))
    assert converter.pre_tokenizers(tmp_path / "conv") == ["gpt-2", "llama-bpe", "qwen2"]
    byte_level = tokenizer_folder(tmp_path / "tiny", {"type": "ByteLevel", "use_regex": True})
    other = tokenizer_folder(tmp_path / "other", {"type": "Metaspace"})
    # read off the tokenizer when the hash is unknown; the vendored gguf-py is the one imported
    out = converter.convert(byte_level, tmp_path / "a.gguf", log_path=tmp_path / "log")
    assert out.read_text() == "gpt-2 vendored gguf-py"
    assert "unknown pre-tokenizer hash; using gpt-2" in (tmp_path / "log").read_text()
    # the recipe's override wins
    assert converter.convert(other, tmp_path / "b.gguf", pre_tokenizer="qwen2").read_text().startswith("qwen2")
    with pytest.raises(FactoryKitError, match=r"`export.gguf_pre_tokenizer: qwen` is not a llama.cpp pre-tokenizer; "
                                              r"did you mean qwen2"):
        converter.convert(other, tmp_path / "c.gguf", pre_tokenizer="qwen")
    with pytest.raises(FactoryKitError) as err:
        converter.convert(other, tmp_path / "d.gguf")
    assert str(err.value) == (f"{other}: llama.cpp's converter does not recognise this tokenizer's pre-tokenizer; "
                              "set `export.gguf_pre_tokenizer: NAME` to the base model's (e.g. qwen2, llama-bpe, "
                              "gpt-2; `python -m factory_kit.ship.converter --list` shows all)")


def test_only_the_converter_is_kept_from_the_source_archive(tmp_path):
    archive = tmp_path / "llama_cpp_python-0.3.36.tar.gz"
    src = fake_converter(tmp_path / "src" / "llama_cpp_python-0.3.36" / "vendor" / "llama.cpp")
    (src / "ggml").mkdir()
    (src / "ggml" / "big.c").write_text("int x;")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "llama_cpp_python-0.3.36", "llama_cpp_python-0.3.36")
    target = converter.extract(archive, tmp_path / "cache" / "conv")
    assert sorted(p.name for p in target.iterdir()) == ["LICENSE", "conversion", "convert_hf_to_gguf.py", "gguf-py"]
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        data = b"x"
        info = tarfile.TarInfo("pkg-1/README.md")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(FactoryKitError, match=r"no vendor/llama.cpp/convert_hf_to_gguf.py in it"):
        converter.extract(bad, tmp_path / "cache" / "conv2")


def test_unreachable_index_says_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_KIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(converter.ENV, raising=False)
    for var, value in {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_RETRIES": "0", "PIP_TIMEOUT": "2",
                       "PIP_NO_CACHE_DIR": "1", "PIP_FIND_LINKS": "", "PIP_EXTRA_INDEX_URL": ""}.items():
        monkeypatch.setenv(var, value)
    assert converter.find() is None
    with pytest.raises(FactoryKitError, match=r"could not fetch llama.cpp's GGUF converter \(.*\); run "
                                              r"`python -m factory_kit.ship.converter` where PyPI is reachable"):
        converter.ensure(echo=False)
    monkeypatch.setenv(converter.ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FactoryKitError, match=r"no convert_hf_to_gguf.py there"):
        converter.find()


def test_missing_extra_is_one_line_with_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import fails as when the extra is not installed
    with pytest.raises(FactoryKitError) as err:
        llamacpp.require()
    assert str(err.value).startswith("GGUF needs llama-cpp-python, which is not installed: run "
                                     "`pip install 'factory-kit[gguf]'`")
    with pytest.raises(FactoryKitError, match=r"`export.gguf: q3_k` is not a GGUF type"):
        llamacpp.wanted_types("q4_k_m,q3_k")
    assert llamacpp.wanted_types("Q4_K_M, f16") == ["q4_k_m", "f16"] and llamacpp.wanted_types(None) == []


def test_export_checks_what_gguf_needs_before_the_merge(registry_project, tmp_path, monkeypatch):
    """No trained model here: the pre-tokenizer and the extra are refused first, not after minutes of merging."""
    from factory_kit.ship import pipeline

    monkeypatch.setenv(converter.ENV, str(fake_converter(tmp_path / "conv")))
    with pytest.raises(FactoryKitError, match=r"^--set: `export.gguf_pre_tokenizer: qwen` is not a llama.cpp "
                                              r"pre-tokenizer; did you mean qwen2\?$"):
        pipeline.export("recipes/tcm-lora.yaml", ("export.gguf=q4_k_m", "export.gguf_pre_tokenizer=qwen"))
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "llama_cpp", None)  # as without the extra
        with pytest.raises(FactoryKitError, match=r"^GGUF needs llama-cpp-python"):
            pipeline.export("recipes/tcm-lora.yaml", ("export.gguf=q4_k_m",))
    with pytest.raises(FactoryKitError, match=r"no trained model \(adapter_config.json\) yet"):
        pipeline.export("recipes/tcm-lora.yaml", ("export.gguf=q4_k_m", "export.gguf_pre_tokenizer=qwen2"))
