"""The Ollama Modelfile: each catalog family's chat format, stop words and the recipe's infer
parameters; `ollama create` when Ollama is installed, one line saying what to run when it is not."""

from __future__ import annotations

import os
import stat

import pytest

from factory_kit.core.errors import FactoryKitError
from factory_kit.recipe import catalog
from factory_kit.ship import ollama

INFER = {"temperature": 0.3, "top_p": 0.8, "max_new_tokens": 256}


def ctx_for(family: str, template: str | None = None) -> dict:
    fam = catalog.families()[family]
    return {"template": template or fam.template, "family": family, "recipe_file": "recipes/x.yaml",
            "infer": INFER, "cutoff_len": 2048}


# (family, text its Modelfile TEMPLATE must hold, a stop word from models.yaml)
EXPECTED = [
    ("qwen2.5", "<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>", "<|im_end|>"),
    ("llama3", "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"),
    ("mistral", "[INST] ", "</s>"),
    ("gemma2", "<start_of_turn>model\n", "<end_of_turn>"),
    ("glm4", "[gMASK]<sop>", "<|user|>"),
    ("deepseek-r1-distill-qwen", "<｜Assistant｜>", "<｜end▁of▁sentence｜>"),
]


@pytest.mark.parametrize("family,marker,stop", EXPECTED, ids=[e[0] for e in EXPECTED])
def test_modelfile_has_the_family_template_stops_and_parameters(family, marker, stop):
    if family not in catalog.families():
        pytest.fail(f"{family} is not a catalog family any more: update EXPECTED")
    text = ollama.modelfile_text("x-q4_k_m.gguf", ctx_for(family))
    assert text.splitlines()[2] == "FROM ./x-q4_k_m.gguf"
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    assert marker in template
    stops = [line.split(" ", 2)[2] for line in text.splitlines() if line.startswith("PARAMETER stop ")]
    assert f'"{stop}"' in stops
    assert stops == [f'"{s}"' for s in catalog.families()[family].stop_words]  # the catalog's, in its order
    for line in ("PARAMETER temperature 0.3", "PARAMETER top_p 0.8", "PARAMETER num_predict 256",
                 "PARAMETER num_ctx 2048"):
        assert line in text.splitlines()


def test_every_catalog_template_has_an_ollama_format():
    """A family added to models.yaml with a template Ollama has no format for is caught here."""
    formats = ollama.table()["formats"]
    for name, fam in catalog.families().items():
        if fam.template and not fam.template_removed:
            fmt_name, fmt = ollama.chat_format(fam.template)
            assert fmt_name in formats and fmt["template"].strip(), name
            assert ".Messages" in fmt["template"], name


def test_qwen3_without_thinking_opens_an_empty_reasoning_block():
    text = ollama.modelfile_text("m.gguf", ctx_for("qwen2.5", template="qwen3_nothink"))
    assert text.split('"""')[1].endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_unknown_template_and_bad_names_say_what_to_do():
    with pytest.raises(FactoryKitError, match=r"template `vicuna` has no Ollama chat format; add it under "
                                              r"`templates:` in factory_kit/recipe/catalog/ollama.yaml"):
        ollama.chat_format("vicuna")
    assert ollama.model_name(True, "TCM Lora_v2") == "tcm-lora_v2"
    assert ollama.model_name("me/tcm:q4", "x") == "me/tcm:q4"
    with pytest.raises(FactoryKitError, match="is not an Ollama model name"):
        ollama.model_name("TCM model", "x")


def test_missing_ollama_gives_the_command_and_present_ollama_is_called(tmp_path, monkeypatch):
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text("FROM ./m.gguf\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    created, message = ollama.create("tcm", modelfile)
    assert not created
    assert message == ("Ollama is not installed here (no `ollama` on PATH): the Modelfile is ready; install Ollama "
                       f"(https://ollama.com/download) and run `ollama create tcm -f {modelfile}`")
    # a stand-in `ollama` on PATH records how it was called
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ollama"
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/called\npwd >> {tmp_path}/called\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ["PATH"])
    created, message = ollama.create("tcm", modelfile)
    assert created and message == "ollama model tcm created; try `ollama run tcm`"
    assert (tmp_path / "called").read_text().splitlines() == ["create tcm -f Modelfile", str(tmp_path)]
    fake.write_text("#!/bin/sh\necho 'Error: unsupported architecture' >&2\nexit 1\n")
    with pytest.raises(FactoryKitError, match=r"`ollama create tcm -f .*Modelfile` failed: Error: unsupported "
                                              r"architecture"):
        ollama.create("tcm", modelfile)
