"""The model catalog: names right against LLaMA-Factory's source, families, sizes, errors.

LLaMA-Factory's source is read as text (never imported): importing it pulls in torch.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from factory_kit.recipe import catalog
from factory_kit.recipe.catalog import ModelFamily, ModelInfo, families, resolve
from factory_kit.core.errors import FactoryKitError


def _llamafactory_file(rel: str) -> str:
    """Text of a file in the installed llamafactory package, found without importing it."""
    spec = importlib.util.find_spec("llamafactory")
    if spec is None:
        pytest.skip("llamafactory is not installed")
    return (Path(spec.submodule_search_locations[0]) / rel).read_text(encoding="utf-8")


def _lf_templates() -> set[str]:
    # Top-level calls only: data/template.py also shows `register_template(name="custom"`
    # in an indented docstring example.
    src = _llamafactory_file("data/template.py")
    return set(re.findall(r'^register_template\(\s*name="([^"]+)"', src, re.M))


def _lf_default_templates() -> dict[str, str]:
    """HF id -> template of its register_model_group in extras/constants.py (last one wins)."""
    src = _llamafactory_file("extras/constants.py")
    out: dict[str, str] = {}
    for group in re.finditer(r"^register_model_group\(\n(.*?)^\)", src, re.S | re.M):
        template = re.search(r'^    template="([^"]+)"', group.group(1), re.M)
        for hf_id in re.findall(r'DownloadSource\.DEFAULT: "([^"]+)"', group.group(1)):
            if template:
                out[hf_id] = template.group(1)
    return out


def test_every_template_exists_in_installed_llamafactory():
    known = _lf_templates()
    assert {"qwen", "qwen3", "llama3", "deepseekr1"} <= known  # the parser itself works
    assert "custom" not in known and "baichuan2" not in known
    for fam in families().values():
        if fam.usable:
            assert fam.template in known, f"{fam.name}: template {fam.template!r} not in LLaMA-Factory"
        elif fam.template_removed:
            assert fam.template not in known, f"{fam.name}: {fam.template!r} exists again; drop template_removed"


def test_catalog_agrees_with_llamafactory_defaults():
    """Every LLaMA-Factory model id we resolve gets the template LLaMA-Factory registers for it."""
    deliberate = {"google/medgemma-27b-text-it"}  # LF lists it under gemma2 and gemma3; text-only -> gemma2
    checked = 0
    for hf_id, template in _lf_default_templates().items():
        try:
            info = resolve(hf_id)
        except FactoryKitError:
            continue  # not in our catalog (or no usable template): an error, never a wrong answer
        checked += 1
        if hf_id not in deliberate:
            assert info.family.template == template, f"{hf_id}: {info.family.name} -> {info.family.template}"
    assert checked > 200


def test_catalog_file_is_consistent():
    fams = families()
    assert list(fams)[0].startswith("huatuogpt")  # medical models come first: they win
    for fam in fams.values():
        assert isinstance(fam, ModelFamily) and fam.description and fam.cutoff_len >= 512
        assert fam.thinking in ("none", "optional", "always")
        assert fam.base is None or fam.base in fams, f"{fam.name}: unknown base {fam.base}"
        if not fam.usable:
            assert fam.fix, f"{fam.name} has no usable template and needs a `fix:`"
        if fam.thinking != "none":
            assert fam.cot_format and "{thought}" in fam.cot_format and "{answer}" in fam.cot_format
        assert fam.match or fam.config_match, f"{fam.name} can never match"
    assert families() is fams  # cached


# HF id -> (family, template, thinking, params_b)
REAL_IDS = {
    "Qwen/Qwen2.5-7B-Instruct": ("qwen2.5", "qwen", "none", 7.62),
    "Qwen/Qwen2.5-0.5B": ("qwen2.5", "qwen", "none", 0.49),
    "Qwen/Qwen2.5-72B-Instruct": ("qwen2.5", "qwen", "none", 72.7),
    "Qwen/Qwen3-8B": ("qwen3", "qwen3", "optional", 8.2),
    "Qwen/Qwen3-30B-A3B": ("qwen3", "qwen3", "optional", 30.5),
    "Qwen/Qwen3-4B-Instruct-2507": ("qwen3-2507-instruct", "qwen3_nothink", "none", 4.0),
    "Qwen/Qwen3-235B-A22B-Thinking-2507": ("qwen3-2507-thinking", "qwen3", "always", 235.0),
    "Qwen/QwQ-32B": ("qwq", "qwen", "always", 32.8),
    "meta-llama/Meta-Llama-3-8B-Instruct": ("llama3", "llama3", "none", 8.03),
    "meta-llama/Llama-3.2-3B-Instruct": ("llama3", "llama3", "none", 3.21),
    "meta-llama/Llama-3.3-70B-Instruct": ("llama3", "llama3", "none", 70.6),
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B": ("deepseek-r1-distill-qwen", "deepseekr1", "always", 7.62),
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": ("deepseek-r1-distill-qwen", "deepseekr1", "always", 1.78),
    "deepseek-ai/DeepSeek-R1-Distill-Llama-8B": ("deepseek-r1-distill-llama", "deepseekr1", "always", 8.03),
    "THUDM/glm-4-9b-chat": ("glm4", "glm4", "none", 9.4),
    "zai-org/GLM-4-32B-0414": ("glm4", "glm4", "none", 32.6),
    "zai-org/GLM-Z1-9B-0414": ("glm-z1", "glmz1", "always", 9.4),
    "internlm/internlm2_5-7b-chat": ("internlm", "intern2", "none", 7.74),
    "internlm/internlm2_5-1_8b-chat": ("internlm", "intern2", "none", 1.89),
    "internlm/internlm3-8b-instruct": ("internlm", "intern2", "none", 8.8),
    "01-ai/Yi-1.5-34B-Chat": ("yi", "yi", "none", 34.4),
    "mistralai/Mistral-7B-Instruct-v0.3": ("mistral", "mistral", "none", 7.25),
    "mistralai/Ministral-8B-Instruct-2410": ("ministral", "ministral", "none", 8.02),
    "mistralai/Mistral-Small-3.1-24B-Instruct-2503": ("mistral-small", "mistral_small", "none", 23.6),
    "google/gemma-2-9b-it": ("gemma2", "gemma2", "none", 9.24),
    "google/gemma-3-12b-it": ("gemma3", "gemma3", "none", 12.2),
    "google/gemma-3-270m-it": ("gemma3-text", "gemma2", "none", 0.27),
    "google/medgemma-4b-it": ("medgemma", "gemma3", "none", 4.3),
    "google/medgemma-27b-text-it": ("medgemma-text", "gemma2", "none", 27.0),
    "FreedomIntelligence/HuatuoGPT-o1-7B": ("huatuogpt-o1-qwen", "qwen", "always", 7.62),
    "FreedomIntelligence/HuatuoGPT-o1-8B": ("huatuogpt-o1-llama", "llama3", "always", 8.03),
    "FreedomIntelligence/HuatuoGPT-o1-72B": ("huatuogpt-o1-qwen", "qwen", "always", 72.7),
}


@pytest.mark.parametrize("hf_id", REAL_IDS)
def test_resolve_real_hf_ids(hf_id):
    family, template, thinking, params = REAL_IDS[hf_id]
    info = resolve(hf_id)
    assert isinstance(info, ModelInfo) and info.model == hf_id and not info.local
    assert (info.family.name, info.family.template, info.family.thinking) == (family, template, thinking)
    assert info.params_b == pytest.approx(params)
    assert info.family.lora_target == "all"


def test_specific_families_win_over_their_base():
    assert resolve("deepseek-ai/DeepSeek-R1-Distill-Qwen-14B").family.base == "qwen2.5"
    assert resolve("FreedomIntelligence/HuatuoGPT-o1-70B").family.base == "llama3"
    huatuo = resolve("FreedomIntelligence/HuatuoGPT-o1-7B").family
    assert huatuo.cot_format.startswith("## Thinking") and "## Final Response" in huatuo.cot_format
    assert resolve("qwen2.5-7b-instruct").family.name == "qwen2.5"  # case-insensitive, no org


def test_unlisted_size_tag_uses_its_nominal_number():
    assert resolve("someone/Qwen2.5-9B-TCM").params_b == pytest.approx(9.0)
    assert resolve("Qwen/Qwen3.5-9B").params_b == pytest.approx(9.0)


def _write_tiny_qwen2(folder: Path, **extra) -> Path:
    folder.mkdir(parents=True)
    config = dict(model_type="qwen2", architectures=["Qwen2ForCausalLM"], hidden_size=64,
                  intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=3000, tie_word_embeddings=True)
    config.update(extra)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_local_tiny_qwen2_folder(tmp_path):
    _write_tiny_qwen2(tmp_path / "models" / "my-tcm-model")  # name matches nothing: config decides
    info = resolve("models/my-tcm-model", base_dir=tmp_path)
    assert info.local and info.path == tmp_path / "models" / "my-tcm-model"
    assert info.family.name == "qwen2.5" and info.family.template == "qwen"
    # embeddings 3000*64 (tied) + 2 layers * (attention 12288 + gated MLP 24576)
    assert info.params_b == pytest.approx((3000 * 64 + 2 * (12288 + 24576)) / 1e9)

    info = resolve(str(tmp_path / "models" / "my-tcm-model"))  # absolute path, any cwd
    assert info.local and info.family.name == "qwen2.5"


def test_local_folder_name_and_name_or_path_beat_config(tmp_path):
    _write_tiny_qwen2(tmp_path / "DeepSeek-R1-Distill-Qwen-7B")
    assert resolve("DeepSeek-R1-Distill-Qwen-7B", base_dir=tmp_path).family.name == "deepseek-r1-distill-qwen"
    _write_tiny_qwen2(tmp_path / "merged", _name_or_path="FreedomIntelligence/HuatuoGPT-o1-7B")
    assert resolve("merged", base_dir=tmp_path).family.name == "huatuogpt-o1-qwen"


def test_unknown_model_error_suggests_and_says_what_to_do():
    with pytest.raises(FactoryKitError) as err:
        resolve("acme/Qwen2.6-7B-Instruct")
    msg = str(err.value)
    assert "acme/Qwen2.6-7B-Instruct" in msg and "did you mean" in msg.lower() and "qwen2.5" in msg
    assert "template:" in msg and "factory_kit/recipe/catalog/models.yaml" in msg and "\n" not in msg


def test_unknown_local_folder(tmp_path):
    _write_tiny_qwen2(tmp_path / "odd", model_type="rwkv")
    with pytest.raises(FactoryKitError, match="rwkv"):
        resolve("odd", base_dir=tmp_path)
    with pytest.raises(FactoryKitError, match="not found"):
        resolve("./missing-folder", base_dir=tmp_path)


def test_baichuan2_fails_with_the_fix():
    fam = families()["baichuan2"]
    assert fam.template_removed and not fam.usable
    with pytest.raises(FactoryKitError) as err:
        resolve("baichuan-inc/Baichuan2-13B-Chat")
    assert fam.fix in str(err.value) and "template:" in str(err.value) and "0.9.4" in str(err.value)
    info = resolve("baichuan-inc/Baichuan2-7B-Base", strict=False)  # callers that set template: themselves
    assert info.family.name == "baichuan2" and info.params_b == pytest.approx(7.51)


def test_yaml_typo_is_reported(tmp_path):
    bad = tmp_path / "models.yaml"
    bad.write_text("families:\n  x:\n    description: d\n    template: qwen\n    lora_targte: all\n")
    with pytest.raises(FactoryKitError, match="lora_target"):
        catalog._load(bad)


def test_import_does_not_pull_in_torch_or_llamafactory():
    code = (
        "import importlib.util, sys\n"
        "import factory_kit.recipe.catalog as c\n"
        "c.resolve('Qwen/Qwen2.5-7B-Instruct')\n"
        "importlib.util.find_spec('llamafactory')\n"  # finding the package is not importing it
        "bad = [m for m in ('torch', 'llamafactory', 'transformers') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


# ---------------------------------------------------------------- the catalog as the only edit

NEW_FAMILY = """  zhongyi:
    description: ZhongYi 7B, a made-up TCM reasoning model (Qwen2.5 base), added by a test
    match: ["*zhongyi-*"]
    template: qwen
    stop_words: ["<|im_end|>"]
    thinking: always
    cot_format: "<思考>{thought}</思考>\\n{answer}"
    lora_target: q_proj,v_proj
    cutoff_len: 3072
    params_b: {"7b": 7.1}
"""


def test_a_new_family_is_a_catalog_edit(registry_project, tmp_path, monkeypatch):
    """A family added to a copy of models.yaml in $FACTORY_KIT_CATALOG resolves, renders, checks, lists
    and evaluates with its own stop words and thinking markers: no code changes."""
    from click.testing import CliRunner

    from factory_kit.cli import main
    from factory_kit.core.paths import CATALOG_DIR
    from factory_kit.evaluate import benchmarks as bm
    from factory_kit.evaluate.extract import extract_letter
    from factory_kit.recipe.render import render

    folder = tmp_path / "catalog"
    folder.mkdir()
    shipped = (CATALOG_DIR / "models.yaml").read_text(encoding="utf-8")
    (folder / "models.yaml").write_text(shipped.replace("\nfamilies:\n", "\nfamilies:\n" + NEW_FAMILY, 1),
                                        encoding="utf-8")
    with pytest.raises(FactoryKitError, match="unknown model acme/ZhongYi-7B-Chat"):
        resolve("acme/ZhongYi-7B-Chat")
    monkeypatch.setenv(catalog.CATALOG_ENV, str(folder))
    info = resolve("acme/ZhongYi-7B-Chat")
    assert (info.family.name, info.params_b) == ("zhongyi", 7.1)
    assert resolve("Qwen/Qwen2.5-7B-Instruct").family.name == "qwen2.5"  # the shipped families are all there
    sets = ["--set", "model=acme/ZhongYi-7B-Chat"]
    checked = CliRunner().invoke(main, ["check", "recipes/tcm-lora.yaml", *sets])
    assert checked.exit_code == 0 and "zhongyi" in checked.output, checked.output
    sets = ["model=acme/ZhongYi-7B-Chat", "lora.target=null", "train.cutoff_len=null"]  # the family's defaults
    train = render("recipes/tcm-lora.yaml", sets, write=False).configs["train.yaml"]
    assert (train["template"], train["lora_target"], train["cutoff_len"]) == ("qwen", "q_proj,v_proj", 3072)
    listed = CliRunner().invoke(main, ["ls", "models"], terminal_width=250)
    assert "zhongyi" in listed.output
    family = catalog.family_of("acme/ZhongYi-7B-Chat")
    assert family.stop_words == ("<|im_end|>",) and family.think_markers == ("<思考>", "</思考>")
    bench_file = tmp_path / "b.jsonl"
    bench_file.write_text(json.dumps({"id": "1", "subject": "中药学", "question": "麻黄汤的君药是？",
                                      "options": {"A": "麻黄", "B": "桂枝"}, "answer": "A"},
                                     ensure_ascii=False) + "\n", encoding="utf-8")
    tasks = bm.write_tasks([bm.load_benchmark(bench_file)], tmp_path / "w", mode="generate",
                           stop_words=family.stop_words, think=family.think_markers)
    task = next(tasks.include_dir.glob("*.yaml")).read_text(encoding="utf-8")
    assert "- <|im_end|>" in task and "endoftext" not in task
    doc = json.loads(next(tasks.include_dir.glob("*.test.jsonl")).read_text(encoding="utf-8"))
    assert extract_letter("<思考>不是B……</思考>\n答案：A", doc["letters"], doc["think"]) == "A"
    assert extract_letter("<思考>想到一半，B", doc["letters"], doc["think"]) is None


def test_stop_words_and_thinking_markers_per_family():
    """Stop words agree with LLaMA-Factory's templates; the thinking markers come from cot_format."""
    src = _llamafactory_file("data/template.py")
    lf_stops: dict[str, list[str]] = {}
    for block in re.split(r"\nregister_template\(", src)[1:]:
        name = re.search(r'name="([^"]+)"', block)
        stops = re.search(r"stop_words=\[([^\]]*)\]", block)
        if name and stops:
            lf_stops[name.group(1)] = re.findall(r'"([^"]+)"', stops.group(1))
    for fam in families().values():
        if fam.usable:
            assert fam.stop_words, f"{fam.name}: no stop_words"
            assert set(lf_stops.get(fam.template, [])) <= set(fam.stop_words), fam.name
    assert families()["qwen2.5"].stop_words == ("<|im_end|>", "<|endoftext|>")
    assert families()["qwen3"].think_markers == ("<think>", "</think>")
    assert families()["huatuogpt-o1-qwen"].think_markers == ("## Thinking", "## Final Response")
    assert families()["qwen2.5"].think_markers is None
    assert catalog.family_of("no/such-model-anywhere") is None
