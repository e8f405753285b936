"""Generation metrics on a held-out split: ``llamafactory-cli train`` with ``do_predict`` and
``predict_with_generate`` (LLaMA-Factory computes BLEU-4 and ROUGE-1/2/L with jieba tokenisation
and writes ``predict_results.json`` + ``generated_predictions.jsonl``; we keep both)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from rich.table import Table

from factory_kit.run import launch
from factory_kit.recipe import lfargs
from factory_kit.core import io, paths, progress
from factory_kit.core.errors import FactoryKitError
from factory_kit.evaluate import follow

NEEDED = {"jieba": "jieba", "nltk": "nltk", "rouge_chinese": "rouge-chinese"}
METRIC_NAMES = ("predict_bleu-4", "predict_rouge-1", "predict_rouge-2", "predict_rouge-l")


def check_dependencies() -> None:
    import importlib.util

    missing = [pkg for mod, pkg in NEEDED.items() if importlib.util.find_spec(mod) is None]
    if missing:
        raise FactoryKitError(f"generation metrics need {', '.join(missing)}: pip install {' '.join(missing)} "
                              "(LLaMA-Factory's do_predict imports them)")


def predict_config(rendered: Any, model: str, adapter: str | None, out_dir: Path, datasets: list[str], *,
                   max_samples: int | None, max_new_tokens: int, batch_size: int) -> dict[str, Any]:
    ctx = rendered.context
    config: dict[str, Any] = {
        "model_name_or_path": str(model),
        "trust_remote_code": True,
        "stage": "sft",
        "do_predict": True,
        "predict_with_generate": True,
        "finetuning_type": ctx["finetuning_type"] if adapter else "full",
        "dataset_dir": str(paths.project_dir() / ctx["dataset_dir"]),
        "eval_dataset": ",".join(datasets),
        "template": ctx["template"],
        "cutoff_len": ctx["cutoff_len"],
        "overwrite_cache": True,
        "preprocessing_num_workers": 1,
        "dataloader_num_workers": 0,
        "output_dir": str(out_dir),
        "overwrite_output_dir": True,
        "per_device_eval_batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "do_sample": False,
        "report_to": "none",
    }
    if adapter:
        config["adapter_name_or_path"] = str(adapter)
    if ctx.get("thinking") is not None:
        config["enable_thinking"] = ctx["thinking"]
    if max_samples:
        config["max_samples"] = max_samples
    if ctx.get("precision") == "bf16" and shutil.which("nvidia-smi"):
        config["bf16"] = True
    problems = lfargs.check(config, "train")
    if problems:
        raise FactoryKitError(f"predict config: {problems[0][1]}")
    return config


def predict(rendered: Any, model: str, adapter: str | None, out_dir: Path, *, datasets: list[str] | None = None,
            max_samples: int | None = None, max_new_tokens: int | None = None, batch_size: int = 4,
            echo: bool = True, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run do_predict; returns and writes ``generation.json`` (metrics, datasets, rows, seconds)."""
    check_dependencies()
    datasets = datasets or list(rendered.recipe.data["eval_datasets"])
    if not datasets:
        raise FactoryKitError(f"{rendered.recipe.path}: no eval_datasets to generate on; "
                              "set `eval_datasets:` in the recipe or pass --predict-dataset NAME")
    from factory_kit.data import registry

    entries = registry.load(paths.project_dir() / rendered.context["dataset_dir"])
    for name in datasets:
        if name not in entries:
            raise FactoryKitError(f"dataset {name!r} is not in dataset_info.json")
    if rendered.recipe.data["stage"] not in ("sft", "pt"):
        pass  # predicting with an SFT-formatted eval split works for any trained model
    max_new_tokens = max_new_tokens or rendered.recipe.data["predict"]["max_new_tokens"]
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    config = predict_config(rendered, model, adapter, out_dir, datasets, max_samples=max_samples,
                            max_new_tokens=max_new_tokens, batch_size=batch_size)
    config_path = out_dir / "predict.yaml"
    io.write_text(config_path, "".join(f"{k}: {json.dumps(v, ensure_ascii=False)}\n" for k, v in config.items()))
    started = time.time()
    with progress.bar("generating", unit="batches") as bar:  # the trainer's prediction bar has no name
        on_line = follow.follower(bar, lambda desc: desc == "", echo=echo)
        launch.llamafactory("train", config_path, cwd=paths.project_dir(), log_path=out_dir / "predict.log",
                            echo=False, on_line=on_line)
    results_file = out_dir / "predict_results.json"
    predictions = out_dir / "generated_predictions.jsonl"
    if not results_file.is_file() or not predictions.is_file():
        raise FactoryKitError(f"llamafactory-cli train (do_predict) exited 0 but wrote no predict_results.json / "
                              f"generated_predictions.jsonl in {out_dir}")
    raw = json.loads(results_file.read_text(encoding="utf-8"))
    rows = sum(1 for line in predictions.read_text(encoding="utf-8").splitlines() if line.strip())
    metrics = {k.removeprefix("predict_"): v for k, v in raw.items() if k in METRIC_NAMES}
    missing = [m for m in METRIC_NAMES if m not in raw]
    if missing:
        raise FactoryKitError(f"{results_file}: no {', '.join(missing)} (is predict_with_generate on?)")
    record = {"kind": "generation", "model": str(model), "adapter": adapter, "datasets": datasets, "rows": rows,
              "max_new_tokens": max_new_tokens, "metrics": metrics, "raw": raw,
              "seconds": round(time.time() - started, 2), "predictions": predictions.name, **(extra or {})}
    io.write_json(out_dir / "generation.json", record)
    return record


def metrics_table(record: dict[str, Any]) -> Table:
    table = Table(title=f"generation metrics ({record['rows']} rows: {', '.join(record['datasets'])})",
                  title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in record["metrics"].items():
        table.add_row(name, f"{value:.2f}")
    return table
