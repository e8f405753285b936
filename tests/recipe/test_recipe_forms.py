"""What demanding users type: list forms, any case, LLaMA-Factory's own names, raw keys out of range."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from factory_kit.cli import main
from factory_kit.core.errors import FactoryKitError
from factory_kit.recipe import catalog, lfargs, schema
from factory_kit.recipe.load import load
from factory_kit.recipe.render import render


def _recipe(project, text: str, name: str = "r.yaml") -> str:
    (project / "recipes" / name).write_text("model: Qwen/Qwen2.5-7B-Instruct\n" + text, encoding="utf-8")
    return f"recipes/{name}"


# ---------------------------------------------------------------- list keys: one name, or a,b

def test_a_list_key_takes_one_name_or_comma_separated_values(project):
    path = _recipe(project, "datasets: tcm_qa_train\neval_datasets: tcm_qa_val\n")
    r = load(path)
    assert r.data["datasets"] == ["tcm_qa_train"] and r.data["eval_datasets"] == ["tcm_qa_val"]
    assert load(path, ["datasets=a,b"]).data["datasets"] == ["a", "b"]
    assert load(path, ["datasets= a , b ,"]).data["datasets"] == ["a", "b"]
    assert load(path, ["datasets=[a, b]"]).data["datasets"] == ["a", "b"]
    assert load(path, ["eval_datasets="]).data["eval_datasets"] == []
    assert load(path, ["datasets=2024,tcm"]).data["datasets"] == ["2024", "tcm"]  # names stay names
    probs = load(path, ["mix.strategy=interleave_under", "mix.probs=0.8,0.2"]).data["mix"]["probs"]
    assert probs == [0.8, 0.2]
    assert load(_recipe(project, "datasets: a, b\n", "c.yaml")).data["datasets"] == ["a", "b"]


def test_list_items_of_the_wrong_kind_say_the_accepted_form(project):
    path = _recipe(project, "datasets: [tcm_qa_train]\n")
    with pytest.raises(FactoryKitError, match=r"`datasets` must be a list of names, got 1 in it \(write `\[a, b\]`"):
        load(path, ["datasets=[1, 2]"])
    with pytest.raises(FactoryKitError, match="`mix.probs` must be a list of numbers, got 'x'"):
        load(path, ["mix.probs=[x, 0.2]"])


# ---------------------------------------------------------------- choices: any case, "known values"

def test_choices_are_not_case_sensitive(project):
    path = _recipe(project, "datasets: [x]\nmethod: LoRA\nstage: SFT\nhardware: DS-Z3\nprecision: BF16\n")
    d = load(path).data
    assert (d["method"], d["stage"], d["hardware"], d["precision"]) == ("lora", "sft", "ds-z3", "bf16")
    assert load(path, ["method=QLoRA"]).data["method"] == "qlora"


def test_a_wrong_choice_lists_the_known_values_not_keys(project):
    path = _recipe(project, "datasets: [x]\nmethod: lroa\n")
    with pytest.raises(FactoryKitError) as exc:
        load(path)
    message = str(exc.value)
    assert "`method: lroa` is not one of the known values (lora, qlora, dora, full, freeze)" in message
    assert "did you mean `lora`?" in message and "known keys" not in message
    with pytest.raises(FactoryKitError) as exc:
        load(path, ["method=zzz"])
    assert "known values" in str(exc.value) and "known keys" not in str(exc.value)


# ---------------------------------------------------------------- --set (and files): did you mean

@pytest.mark.parametrize("assignment, meant", [
    ("train.lr=1e-5", "train.learning_rate"),  # a short form
    ("lr=1e-5", "train.learning_rate"),
    ("train.rank=8", "lora.rank"),  # the right name in another section
    ("train.lora_rank=8", "lora.rank"),  # LLaMA-Factory's name
    ("train.per_device_train_batch_size=1", "train.batch_size"),
    ("gradient_accumulation_steps=4", "train.grad_accum"),
    ("train.lerning_rate=1e-5", "train.learning_rate"),  # a typo
    ("trian.epochs=2", "train"),
])
def test_set_gets_did_you_mean(project, assignment, meant):
    path = _recipe(project, "datasets: [x]\n")
    with pytest.raises(FactoryKitError, match=rf"--set: unknown key .*; did you mean `{meant}`\?"):
        load(path, [assignment])


def test_recipe_files_get_the_same_did_you_mean(project):
    path = _recipe(project, "datasets: [x]\ntrain: {lr: 1.0e-5}\n")
    with pytest.raises(FactoryKitError, match=r"r.yaml: unknown key `train.lr`; did you mean `train.learning_rate`\?"):
        load(path)


def test_aliases_name_real_keys():
    keys = {x.key for x in schema.FIELDS if not x.refused} | set(schema.SECTIONS)
    assert not [target for target in schema.ALIASES.values() if target not in keys]


# ---------------------------------------------------------------- learning rates and raw keys in range

def test_a_learning_rate_of_3_is_refused_in_the_recipe_and_under_llamafactory(registry_project):
    with pytest.raises(FactoryKitError, match=r"`train.learning_rate: 3` must be in \(0, 1\)"):
        render("recipes/tcm-lora.yaml", ["train.learning_rate=3"], write=False)
    (registry_project / "recipes" / "raw.yaml").write_text(
        "extends: tcm-lora.yaml\nllamafactory: {learning_rate: 3}\n", encoding="utf-8")
    with pytest.raises(FactoryKitError) as exc:
        render("recipes/raw.yaml", write=False)
    message = str(exc.value)
    assert message.startswith("recipes/raw.yaml: `llamafactory.learning_rate: 3` is out of range")
    assert "> 0 and < 1" in message and "\n" not in message
    result = CliRunner().invoke(main, ["check", "recipes/raw.yaml"])
    assert result.exit_code == 2 and "out of range" in result.output
    for bad in ("lora_dropout=1.5", "per_device_train_batch_size=0", "top_p=0", "num_train_epochs=-1"):
        with pytest.raises(FactoryKitError, match="out of range"):
            render("recipes/tcm-lora.yaml", [f"llamafactory.{bad}"], write=False)
    ok = render("recipes/tcm-lora.yaml", ["llamafactory.learning_rate=2.0e-5"], write=False)
    assert ok.configs["train.yaml"]["learning_rate"] == 2.0e-5
    with pytest.raises(FactoryKitError, match="expected float, got str"):  # types: lf_args.json
        render("recipes/tcm-lora.yaml", ["llamafactory.learning_rate=fast"], write=False)


def test_every_ranged_raw_key_is_a_llamafactory_train_key():
    train = lfargs.snapshot()["train"]
    ranges = catalog.raw_ranges()
    assert "learning_rate" in ranges
    assert not [key for key in ranges if key not in train]
    assert not [key for key in ranges if not {"int", "float"} & set(train[key]["types"])]


# ---------------------------------------------------------------- checkpoints do not pile up

def test_save_total_limit_renders_with_a_default_of_3(registry_project):
    assert render("recipes/tcm-lora.yaml", write=False).configs["train.yaml"]["save_total_limit"] == 3
    five = render("recipes/tcm-lora.yaml", ["train.save_total_limit=5"], write=False)
    assert five.configs["train.yaml"]["save_total_limit"] == 5
    with pytest.raises(FactoryKitError, match="`train.save_total_limit: 0` must be greater than 0"):
        render("recipes/tcm-lora.yaml", ["train.save_total_limit=0"], write=False)


def test_model_families_match_in_any_case():
    assert catalog.resolve("QWEN/QWEN2.5-7B-INSTRUCT").family.name == "qwen2.5"
    assert catalog.resolve("deepseek-ai/deepseek-r1-distill-llama-8b").family.name == "deepseek-r1-distill-llama"
