"""The tokenised-data cache: a second run reuses LLaMA-Factory's saved tokens; anything that shapes the tokens
(dataset content, tokenizer, template, cutoff_len...) gives a new key, other settings keep it."""

from __future__ import annotations

import json
import re

import pytest

from factory_kit.recipe.render import render
from factory_kit.run import tokcache, train


def _key(project, *sets):
    out = render("recipes/demo-tiny.yaml", ["eval_datasets=[]", *sets], project=project, write=False)
    return tokcache.cache_key(out.configs["train.yaml"], project)


@pytest.fixture
def model_project(registry_project):
    """The project with a small local "model" folder: its tokenizer files are part of the key."""
    folder = registry_project / "models" / "tiny-qwen2"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]}))
    (folder / "tokenizer.json").write_text('{"version": "1.0"}')
    return registry_project


def test_the_key_follows_what_shapes_the_tokens(model_project):
    base = _key(model_project)
    assert re.fullmatch(r"[0-9a-f]{16}", base)
    assert _key(model_project) == base  # deterministic
    for same in ("train.learning_rate=1.0e-3", "train.epochs=7", "train.batch_size=1", "train.workers=3",
                 "lora.rank=4", "output_dir=outputs/elsewhere", "train.logging_steps=5"):
        assert _key(model_project, same) == base, same
    changed = {_key(model_project, *other.split()) for other in (
        "train.cutoff_len=77", "template=llama3", "train.max_samples=5", "stage=pt datasets=[tcm_herbs]",
        "datasets=[tcm_qa_train]", "train.packing=true", "val_size=0.2", "train.seed=7", "llamafactory.train_on_prompt=true")}
    assert base not in changed and len(changed) == 9
    info = json.loads((model_project / "dataset_info" / "dataset_info.json").read_text())
    data = model_project / "dataset_info" / info["tcm_qa_train"]["file_name"]
    data.write_text(data.read_text(encoding="utf-8") + data.read_text(encoding="utf-8").splitlines()[0] + "\n",
                    encoding="utf-8")  # one more row: new content, new key
    edited = _key(model_project)
    assert edited != base
    (model_project / "models" / "tiny-qwen2" / "tokenizer.json").write_text('{"version": "1.1"}')
    assert _key(model_project) not in (base, edited)


def test_no_key_for_data_that_is_not_local(model_project):
    config = render("recipes/demo-tiny.yaml", ["eval_datasets=[]"], write=False).configs["train.yaml"]
    assert tokcache.cache_key({**config, "streaming": True}, model_project) is None
    assert tokcache.cache_key({**config, "dataset": "no_such_dataset"}, model_project) is None


def test_an_unsealed_cache_folder_is_removed(tmp_path):
    rel, complete = tokcache.prepare("abc", tmp_path)
    assert rel == ".cache/tokenized/abc" and not complete
    folder = tmp_path / rel
    (folder / "train").mkdir(parents=True)
    (folder / "dataset_dict.json").write_text("{}")  # a save cut off: LLaMA-Factory would load it as complete
    assert tokcache.prepare("abc", tmp_path) == (rel, False) and not folder.exists()
    (folder / "train").mkdir(parents=True)
    assert not tokcache.seal(folder, "no save logged")
    log = tmp_path / "factory-kit.log"
    log.write_text("[INFO] loading\n[INFO] Tokenized dataset is saved at .cache/tokenized/abc.\n[INFO] step 1\n")
    assert not tokcache.seal(folder, tmp_path / "missing.log")
    assert tokcache.seal(folder, log)
    assert tokcache.prepare("abc", tmp_path) == (rel, True)


def test_a_second_run_reuses_the_tokenised_data(registry_project, tiny_model):
    """For real: the first run tokenises and saves, the second loads the tokens and runs no tokenizer pass;
    a changed dataset gets a new folder (measured on 20k rows: preprocessing ~20 s -> a load of under 1 s)."""
    (registry_project / "models").mkdir()
    (registry_project / "models" / "tiny-qwen2").symlink_to(tiny_model)
    sets = ("eval_datasets=[]", "train.max_steps=1", "train.logging_steps=1", "train.cutoff_len=64",
            "train.batch_size=4")
    first = train.train("recipes/demo-tiny.yaml", sets)
    folders = list((registry_project / ".cache" / "tokenized").iterdir())
    assert len(folders) == 1 and (folders[0] / tokcache.COMPLETE).exists()
    log = (first.output_dir / "factory-kit.log").read_text(encoding="utf-8")
    assert "Tokenized dataset is saved at" in log and "Running tokenizer on dataset" in log
    saved = (folders[0] / "dataset_dict.json").stat().st_mtime_ns
    second = train.train("recipes/demo-tiny.yaml", sets)
    log = (second.output_dir / "factory-kit.log").read_text(encoding="utf-8")
    assert f"Loaded tokenized dataset from .cache/tokenized/{folders[0].name}" in log
    assert "Running tokenizer on dataset" not in log and "Converting format" not in log
    assert (folders[0] / "dataset_dict.json").stat().st_mtime_ns == saved  # used, not written again
    assert second.losses
    info = json.loads((registry_project / "dataset_info" / "dataset_info.json").read_text())
    data = registry_project / "dataset_info" / info["tcm_qa_train"]["file_name"]
    data.write_text("".join(data.read_text(encoding="utf-8").splitlines(keepends=True)[:-1]), encoding="utf-8")
    speed, cache = train._speed_overrides(render("recipes/demo-tiny.yaml", sets, write=False), registry_project)
    assert cache is not None and cache.name != folders[0].name  # what the next run would use: a new folder
    assert f"llamafactory.tokenized_path=.cache/tokenized/{cache.name}" in speed


def test_preprocessing_workers_sized_to_the_machine(model_project):
    """Unset `train.workers`: one per CPU (at most 16) for data of 4 MB or more, one below; a recipe's own
    value always wins."""
    assert train.machine_workers(1 << 20, cpus=64) == 1
    assert train.machine_workers(8 << 20, cpus=64) == 16 and train.machine_workers(8 << 20, cpus=4) == 4
    tcm = render("recipes/tcm-lora.yaml", ["eval_datasets=[]"], write=False)
    speed, _ = train._speed_overrides(tcm, model_project)
    assert "train.workers=1" in speed  # the sample data are small
    speed, _ = train._speed_overrides(render("recipes/tcm-lora.yaml", ["train.workers=3"], write=False),
                                      model_project)
    assert not any(s.startswith("train.workers=") for s in speed)
