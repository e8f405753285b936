"""LLaMA-Factory's web UI on factory-kit's files.

* Mapping tests: rendered train configs (lora, qlora, full + DeepSpeed, dpo, pt) are
  written in the UI's saved-arguments format, loaded back through the UI's own code
  (``Runner.load_args`` of a UI built in-process, no browser), checked against gradio's
  own value checks, and turned back into CLI arguments by ``Runner._parse_train_args``:
  the result must train what the rendered config trains.
* Browser test: ``start_webui`` serves the UI on loopback in a temp project; headless
  Chromium (Debian ``chromium`` + ``chromium-driver``, driven by selenium) sees the
  registered dataset in the Dataset list, loads the rendered recipe with "Load arguments"
  and previews the command the UI would run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from factory_kit.recipe import llamaboard
from factory_kit.run import webui
from factory_kit.recipe.llamaboard import UI_DEFAULTS, llamaboard_config, write_llamaboard_config

CONTEXT = {"recipe_name": "demo", "model": "models/tiny-qwen2", "template": "qwen",
           "method": "lora", "stage": "sft", "family": "qwen2.5"}

_COMMON = {
    "trust_remote_code": True, "do_train": True, "dataset_dir": "dataset_info",
    "cutoff_len": 2048, "overwrite_cache": True, "preprocessing_num_workers": 4,
    "dataloader_num_workers": 0, "logging_steps": 10, "save_steps": 500, "plot_loss": True,
    "overwrite_output_dir": False, "save_only_model": False, "report_to": "none",
    "per_device_train_batch_size": 2, "gradient_accumulation_steps": 8,
    "num_train_epochs": 3.0, "lr_scheduler_type": "cosine", "warmup_ratio": 0.1,
    "weight_decay": 0.0, "max_grad_norm": 1.0, "seed": 42, "ddp_timeout": 180000000,
}
_LORA = {"finetuning_type": "lora", "lora_rank": 16, "lora_alpha": 32, "lora_dropout": 0.05,
         "lora_target": "all"}
_EVAL = {"eval_dataset": "tcm_qa_val", "per_device_eval_batch_size": 2,
         "eval_strategy": "steps", "eval_steps": 200}

# Rendered train.yaml files as factory-kit's templates write them (tcm-*.yaml recipes).
CONFIGS = {
    "lora": {
        **_COMMON, **_LORA, **_EVAL, "model_name_or_path": "Qwen/Qwen2.5-7B-Instruct",
        "stage": "sft", "dataset": "tcm_qa_train,tcm_consultations", "template": "qwen",
        "output_dir": "outputs/tcm-lora", "learning_rate": 1.0e-4, "bf16": True,
        "enable_liger_kernel": True,
    },
    "qlora": {
        **_COMMON, **_LORA, **_EVAL, "model_name_or_path": "Qwen/Qwen2.5-7B-Instruct",
        "quantization_bit": 4, "quantization_method": "bnb", "quantization_type": "nf4",
        "double_quantization": True, "stage": "sft", "dataset": "tcm_qa_train",
        "template": "qwen", "output_dir": "outputs/tcm-qlora", "learning_rate": 1.0e-4,
        "bf16": True,
    },
    "full_z3": {
        **_COMMON, **_EVAL, "model_name_or_path": "Qwen/Qwen2.5-7B-Instruct",
        "finetuning_type": "full", "stage": "sft", "dataset": "tcm_qa_train,tcm_consultations",
        "template": "qwen", "cutoff_len": 4096, "per_device_train_batch_size": 1,
        "per_device_eval_batch_size": 1, "gradient_accumulation_steps": 4,
        "output_dir": "outputs/tcm-full-z3", "learning_rate": 1.0e-5, "num_train_epochs": 2.0,
        "bf16": True, "deepspeed": "build/tcm-full-z3/deepspeed.json",
    },
    "dpo": {
        **_COMMON, **_LORA, "model_name_or_path": "Qwen/Qwen2.5-7B-Instruct", "stage": "dpo",
        "pref_beta": 0.1, "pref_loss": "sigmoid", "pref_ftx": 0.0, "dataset": "tcm_pref",
        "template": "qwen", "output_dir": "outputs/tcm-dpo", "learning_rate": 5.0e-6,
        "per_device_train_batch_size": 1, "num_train_epochs": 2.0, "bf16": True,
    },
    "rm": {
        **_COMMON, **_LORA, "model_name_or_path": "Qwen/Qwen2.5-7B-Instruct", "stage": "rm",
        "dataset": "tcm_pref", "template": "qwen", "output_dir": "outputs/tcm-rm", "learning_rate": 1.0e-4,
        "per_device_train_batch_size": 1, "num_train_epochs": 1.0, "bf16": True,
    },
    "ppo": {
        **_COMMON, **_LORA, "model_name_or_path": "Qwen/Qwen2.5-7B-Instruct", "stage": "ppo",
        "reward_model": "outputs/tcm-rm", "reward_model_type": "lora", "max_new_tokens": 512, "top_k": 0,
        "top_p": 0.9, "dataset": "tcm_qa_train", "template": "qwen", "cutoff_len": 1024,
        "output_dir": "outputs/tcm-ppo", "learning_rate": 1.0e-5, "per_device_train_batch_size": 1,
        "num_train_epochs": 1.0, "bf16": True,
    },
    "pt_val_size": {
        **_COMMON, **_LORA, "model_name_or_path": "Qwen/Qwen2.5-7B", "stage": "pt",
        "lora_rank": 64, "lora_alpha": 128, "dataset": "tcm_herbs", "template": "qwen",
        "cutoff_len": 4096, "output_dir": "outputs/tcm-pt", "learning_rate": 5.0e-5,
        "num_train_epochs": 1.0, "packing": True, "bf16": True, "val_size": 0.05,
        "per_device_eval_batch_size": 2, "eval_strategy": "steps", "eval_steps": 500,
        "max_samples": 2000,
    },
    "tiny_custom": {  # a local model (UI name "Custom"), fp32, numbers outside the UI sliders
        **_COMMON, **_LORA, "model_name_or_path": "models/tiny-qwen2", "stage": "sft",
        "dataset": "tcm_qa_train", "template": "qwen", "cutoff_len": 256,
        "output_dir": "outputs/demo", "learning_rate": 2.0e-3, "logging_steps": 2,
        "save_steps": 20000, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 1,
        "lora_rank": 8, "lora_alpha": 16, "lora_dropout": 0.0, "enable_thinking": False,
        "flash_attn": "sdpa",
    },
}

# The UI's own conversion passes these although no config sets them; each equals
# LLaMA-Factory's default or is harmless (checked below).
_UI_ALWAYS = {"include_num_input_tokens_seen", "max_samples", "cache_dir"}


# --------------------------------------------------------------------------- pure mapping

def test_lora_mapping_uses_ui_names_and_types():
    ui = llamaboard_config(CONFIGS["lora"], CONTEXT)
    assert ui["top.model_name"] == "Qwen2.5-7B-Instruct"
    assert ui["top.model_path"] == "Qwen/Qwen2.5-7B-Instruct"
    assert ui["top.template"] == "qwen"
    assert ui["top.booster"] == "liger_kernel"
    assert ui["train.training_stage"] == "Supervised Fine-Tuning"
    assert ui["train.dataset"] == ["tcm_qa_train", "tcm_consultations"]
    assert ui["train.dataset_dir"] == "dataset_info"
    assert ui["train.learning_rate"] == "0.0001" and float(ui["train.learning_rate"]) == 1e-4
    assert ui["train.num_train_epochs"] == "3.0"
    assert ui["train.compute_type"] == "bf16"
    assert (ui["train.lora_rank"], ui["train.lora_alpha"], ui["train.lora_target"]) == (16, 32, "all")
    extra = json.loads(ui["train.extra_args"])
    assert extra["eval_dataset"] == "tcm_qa_val" and extra["warmup_ratio"] == 0.1
    for key in ("do_train", "trust_remote_code", "ddp_timeout", "plot_loss", "learning_rate"):
        assert key not in extra
    assert set(ui) == set(UI_DEFAULTS) | {"top.model_path", "train.output_dir"}


def test_method_specific_fields():
    q = llamaboard_config(CONFIGS["qlora"], CONTEXT)
    assert (q["top.quantization_bit"], q["top.quantization_method"]) == ("4", "bnb")
    assert json.loads(q["train.extra_args"])["quantization_type"] == "nf4"
    full = llamaboard_config(CONFIGS["full_z3"], CONTEXT)
    assert full["top.finetuning_type"] == "full" and full["top.checkpoint_path"] is None
    assert full["train.ds_stage"] == "none"  # the UI's ds_stage would swap in its own JSON
    assert json.loads(full["train.extra_args"])["deepspeed"] == "build/tcm-full-z3/deepspeed.json"
    dpo = llamaboard_config(CONFIGS["dpo"], CONTEXT)
    assert dpo["train.training_stage"] == "DPO"
    assert (dpo["train.pref_beta"], dpo["train.pref_loss"]) == (0.1, "sigmoid")
    ppo = llamaboard_config(CONFIGS["ppo"], CONTEXT)
    assert ppo["train.training_stage"] == "PPO" and ppo["train.reward_model"] == ["outputs/tcm-rm"]
    assert not {"reward_model", "reward_model_type", "top_k", "top_p"} & set(json.loads(ppo["train.extra_args"]))
    assert llamaboard_config(CONFIGS["rm"], CONTEXT)["train.training_stage"] == "Reward Modeling"
    pt = llamaboard_config(CONFIGS["pt_val_size"], CONTEXT)
    assert pt["train.training_stage"] == "Pre-Training" and pt["train.packing"] is True
    assert pt["train.max_samples"] == "2000"
    assert pt["train.val_size"] == 0.05  # eval_steps == save_steps: the UI's slider reproduces it
    lora = llamaboard_config(CONFIGS["lora"], CONTEXT)
    assert lora["train.val_size"] == 0 and lora["train.max_samples"] == llamaboard.UNLIMITED_SAMPLES
    tiny = llamaboard_config(CONFIGS["tiny_custom"], CONTEXT)
    assert tiny["top.model_name"] == "Custom" and tiny["train.compute_type"] == "fp32"
    assert tiny["train.save_steps"] == 5000  # slider bound; the real value rides in extra_args
    extra = json.loads(tiny["train.extra_args"])
    assert extra["save_steps"] == 20000 and extra["flash_attn"] == "sdpa"
    assert tiny["train.enable_thinking"] is False


def test_write_is_deterministic_sorted_and_loadable(tmp_path):
    path = write_llamaboard_config(tmp_path, "demo", CONFIGS["lora"], CONTEXT)
    assert path == tmp_path / "llamaboard_config" / "demo.yaml"
    first = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    assert write_llamaboard_config(tmp_path, "demo", dict(CONFIGS["lora"]), CONTEXT).read_bytes() == first
    assert path.stat().st_mtime_ns == mtime  # unchanged content: file untouched
    assert first.startswith(b"# LLaMA-Factory web UI arguments for recipe demo")
    keys = [line.split(":")[0] for line in first.decode().splitlines()
            if line and not line.startswith(("#", "-", " "))]
    assert keys == sorted(keys)
    assert yaml.safe_load(first) == llamaboard_config(CONFIGS["lora"], CONTEXT)
    assert [p.name for p in path.parent.iterdir()] == ["demo.yaml"]  # no temp files left


def test_unknown_stage_is_a_clear_error():
    with pytest.raises(ValueError, match="stage 'orpo'"):
        llamaboard_config({**CONFIGS["lora"], "stage": "orpo"}, CONTEXT)


def test_model_names_come_from_llamafactory_constants():
    assert llamaboard.ui_model_name("Qwen/Qwen2.5-7B-Instruct") == "Qwen2.5-7B-Instruct"
    assert llamaboard.ui_model_name("qwen/qwen2.5-7b-instruct") == "Qwen2.5-7B-Instruct"
    assert llamaboard.ui_model_name("/data/models/my-tcm-model") == "Custom"


def test_sync_user_config_records_recipe_models(tmp_path):
    write_llamaboard_config(tmp_path, "a", CONFIGS["lora"], CONTEXT)
    time.sleep(0.01)
    write_llamaboard_config(tmp_path, "b", CONFIGS["tiny_custom"], CONTEXT)
    os.utime(tmp_path / "llamaboard_config" / "b.yaml")
    cache = tmp_path / "llamaboard_cache"
    cache.mkdir()
    (cache / "user_config.yaml").write_text(yaml.safe_dump(
        {"lang": "zh", "hub_name": "huggingface", "last_model": None, "path_dict": {"X": "y"},
         "cache_dir": None}))
    config = yaml.safe_load(webui.sync_user_config(tmp_path).read_text())
    assert config["lang"] == "zh"
    assert config["path_dict"] == {"X": "y", "Qwen2.5-7B-Instruct": "Qwen/Qwen2.5-7B-Instruct",
                                   "Custom": "models/tiny-qwen2"}
    assert config["last_model"] == "Custom"


def test_command_runs_llamafactory_cli_main_with_dataset_dir():
    cmd = webui.command()
    assert cmd[1] == "-c" and "llamafactory.cli import main" in cmd[2]
    assert cmd[3:] == ["dataset_info", "webui"]
    assert Path(cmd[0]).exists()


# --------------------------------------------------------------- the UI's own loading code

@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """The real web UI (gradio Blocks) built in-process: its Runner and Manager."""
    pytest.importorskip("gradio")
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("ui"))  # Engine() writes llamaboard_cache/ into the cwd
    try:
        from llamafactory.webui.interface import create_ui

        demo = create_ui()
    finally:
        os.chdir(cwd)
    save = next(d for d in demo.fns.values() if getattr(d.fn, "__name__", "") == "save_args")
    runner = save.fn.__self__
    inputs = [runner.manager.get_id_by_elem(elem) for elem in save.inputs]
    return runner, inputs


def test_ui_defaults_table_matches_installed_ui(ui):
    runner, inputs = ui
    skipped = {"top.lang", "top.model_path", "train.output_dir", "train.config_path",
               "train.swanlab_link"}
    assert set(inputs) - skipped == set(UI_DEFAULTS)
    for elem_id, default in UI_DEFAULTS.items():
        value = runner.manager.get_elem_by_id(elem_id).value
        assert (value if value is not None else ("" if isinstance(default, str) else None)) == default, elem_id
    stage_choices = [c[1] for c in runner.manager.get_elem_by_id("train.training_stage").choices]
    assert set(llamaboard.ui_stages().values()) == set(stage_choices)
    for elem_id, (low, high) in llamaboard.UI_SLIDERS.items():
        elem = runner.manager.get_elem_by_id(elem_id)
        assert (elem.minimum, elem.maximum) == (low, high), elem_id


def _lf_defaults() -> dict:
    from llamafactory.hparams import (DataArguments, FinetuningArguments, ModelArguments,
                                      TrainingArguments)

    defaults = {}
    for cls in (TrainingArguments, ModelArguments, DataArguments, FinetuningArguments):
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                defaults.setdefault(f.name, f.default)
    return defaults


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_ui_loads_recipe_and_trains_the_same_config(ui, name, tmp_path, monkeypatch):
    from gradio.exceptions import Error as GradioError
    from llamafactory.webui.common import _clean_cmd

    runner, inputs = ui
    manager = runner.manager
    config = CONFIGS[name]
    write_llamaboard_config(tmp_path, name, config, CONTEXT)
    monkeypatch.chdir(tmp_path)
    loaded = runner.load_args("en", f"{name}.yaml")  # the "Load arguments" button's handler
    output_box = manager.get_elem_by_id("train.output_box")
    assert loaded[output_box] == "Arguments have been restored."
    input_elems = {manager.get_elem_by_id(i) for i in inputs}
    assert set(loaded) - {output_box} <= input_elems  # gradio refuses outputs not declared

    data = {elem: elem.value for elem in input_elems}  # a fresh page ...
    data[manager.get_elem_by_id("top.lang")] = "en"
    data[manager.get_elem_by_id("train.config_path")] = f"{name}.yaml"
    data.update({elem: value for elem, value in loaded.items() if elem is not output_box})
    for elem, value in data.items():  # ... and gradio's own checks of each value
        if type(elem).__name__ in ("Slider", "Dropdown"):
            try:
                elem.preprocess(value)
            except GradioError as exc:
                pytest.fail(f"{manager.get_id_by_elem(elem)}={value!r}: {exc}")

    assert runner._initialize(data, do_train=True, from_preview=True) == ""
    args = _clean_cmd(runner._parse_train_args(data))  # what the UI passes to llamafactory-cli train

    for key, value in config.items():
        if key == "double_quantization":
            assert args[key] is True
            continue
        got = args.get(key)
        if (value is False or value is None) and key not in args:
            continue  # the UI drops False/None arguments: LLaMA-Factory's default applies
        if isinstance(value, float) or isinstance(got, float):
            assert got is not None and float(got) == pytest.approx(float(value)), key
        else:
            assert got == value, f"{key}: UI gives {got!r}, config has {value!r}"
    defaults = _lf_defaults()
    for key, value in args.items():
        if key in config or key in _UI_ALWAYS:
            continue
        if key == "packing":
            assert value == (config["stage"] == "pt")
        elif key == "output_dir":
            continue
        else:
            assert key in defaults and value == defaults[key], f"UI adds {key}={value!r}"
    assert args["max_samples"] == int(config.get("max_samples", llamaboard.UNLIMITED_SAMPLES))


# ------------------------------------------------------------------------ real browser

def _chromium_or_skip():
    webdriver = pytest.importorskip("selenium.webdriver")
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        message = ("headless Chromium not installed: apt-get install chromium chromium-driver "
                   "(scripts/install-system-deps.sh)")
        if os.environ.get("FACTORY_KIT_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return webdriver, browser, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def webui_project(tmp_path):
    project = tmp_path / "proj"
    (project / "data").mkdir(parents=True)
    (project / "dataset_info").mkdir()
    rows = [{"instruction": "气虚的常见表现有哪些？", "input": "", "output": "乏力、气短、自汗。"},
            {"instruction": "当归的主要功效是什么？", "input": "", "output": "补血活血，调经止痛。"}]
    (project / "data" / "tcm_qa_train.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    registry = {
        "tcm_qa_train": {"file_name": "../data/tcm_qa_train.jsonl", "formatting": "alpaca",
                         "columns": {"prompt": "instruction", "query": "input", "response": "output"}},
        "tcm_pref": {"file_name": "../data/tcm_pref.jsonl", "formatting": "alpaca", "ranking": True,
                     "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen",
                                 "rejected": "rejected"}},
    }
    (project / "dataset_info" / "dataset_info.json").write_text(json.dumps(registry), encoding="utf-8")
    write_llamaboard_config(project, "demo", CONFIGS["tiny_custom"], CONTEXT)
    return project


@pytest.mark.timeout(300)
def test_browser_sees_dataset_and_loads_recipe(webui_project, monkeypatch):
    webdriver, browser, driver_path = _chromium_or_skip()
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    monkeypatch.setenv("BROWSER", "true")  # gradio's inbrowser=True: open nothing
    started = time.monotonic()
    proc = webui.start_webui(port=_free_port(), host="127.0.0.1", project=webui_project, wait=False)
    driver = None
    try:
        webui.wait_until_ready(proc, timeout=180)
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1600,2400",
                    f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}"):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        wait = WebDriverWait(driver, 60, poll_frequency=0.25)
        driver.get(proc.url + "/")
        wait.until(lambda d: "LLaMA Factory" in d.title)  # set by the page script

        def field(label):
            return driver.find_element(
                By.XPATH, f"//span[@data-testid='block-info' and normalize-space()='{label}']"
                          "/ancestor::div[contains(@class,'block')][1]//*[self::input or self::textarea]")

        def value(label):
            try:
                return field(label).get_property("value")
            except Exception:  # not rendered yet
                return None

        def options_shown():  # read in one script: the list re-renders while choices arrive
            return driver.execute_script(
                "return [...document.querySelectorAll('ul.options li')]"
                ".map(e => e.textContent.replace('\u2713', '').trim())")  # drop the hidden check mark

        def open_list(label, expected):
            """Focus a dropdown until its list shows ``expected`` (choices arrive on focus)."""
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    field(label).click()
                except Exception:  # re-rendered under us: try again
                    pass
                end = time.monotonic() + 5
                while time.monotonic() < end:
                    if expected in options_shown():
                        return options_shown()
                    time.sleep(0.2)
                driver.find_element(By.TAG_NAME, "h1").click() if driver.find_elements(By.TAG_NAME, "h1") \
                    else driver.execute_script("document.activeElement.blur()")
            raise AssertionError(f"{label}: {expected!r} never listed; shown: {options_shown()}")

        def pick(option):
            def click(d):
                try:
                    for li in d.find_elements(By.CSS_SELECTOR, "ul.options li"):
                        if li.text.strip() == option:
                            li.click()
                            return True
                except StaleElementReferenceException:
                    pass
                return False
            wait.until(click)

        # The page opens on the project's registry, with the newest recipe's model selected.
        wait.until(lambda d: value("Model path") == "models/tiny-qwen2")
        assert value("Data dir") == "dataset_info"
        assert value("Model name") == "Custom"

        # The Dataset list (filled on focus from dataset_info/dataset_info.json) shows the
        # SFT dataset; the ranking (DPO) one is left out for the SFT stage, as the UI does.
        shown = open_list("Dataset", "tcm_qa_train")
        assert "tcm_pref" not in shown
        driver.execute_script("document.activeElement.blur()")

        # Load the rendered recipe: Config path -> demo.yaml -> Load arguments.
        wait.until(lambda d: not options_shown())
        open_list("Config path", "demo.yaml")
        pick("demo.yaml")
        wait.until(lambda d: value("Config path") == "demo.yaml")
        driver.find_element(By.XPATH, "//button[normalize-space()='Load arguments']").click()
        wait.until(lambda d: d.find_elements(By.XPATH, "//*[contains(text(),'Arguments have been restored')]"))
        wait.until(lambda d: value("Learning rate") == "0.002")
        assert value("Chat template") == "qwen"
        assert value("Cutoff length") == "256"
        assert value("Data dir") == "dataset_info"
        assert value("Model path") == "models/tiny-qwen2"
        tokens = driver.find_elements(
            By.XPATH, "//span[@data-testid='block-info' and normalize-space()='Dataset']"
                      "/ancestor::div[contains(@class,'block')][1]//div[contains(@class,'token')]")
        assert "tcm_qa_train" in [t.text.strip() for t in tokens]

        # The UI accepts every loaded value: its command preview is the recipe's command.
        driver.find_element(By.XPATH, "//button[normalize-space()='Preview command']").click()
        preview = wait.until(lambda d: d.find_elements(By.XPATH, "//*[contains(text(),'llamafactory-cli train')]"))
        text = preview[0].text
        for expected in ("--template qwen", "--learning_rate 0.002", "--dataset_dir dataset_info",
                         "--dataset tcm_qa_train", "--model_name_or_path models/tiny-qwen2",
                         "--save_steps 20000", "--flash_attn sdpa", "--output_dir outputs/demo"):
            assert expected in text, f"{expected!r} not in the UI's command preview:\n{text}"
    except Exception:
        print(Path(proc.log_path).read_text(encoding="utf-8", errors="replace")[-4000:])
        raise
    finally:
        if driver is not None:
            driver.quit()
        webui.stop_webui(proc)
    assert proc.poll() is not None
    print(f"browser test: {time.monotonic() - started:.1f} s")
