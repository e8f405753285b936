"""Benchmark (GPU): LLaMA-Factory's own example LoRA SFT settings vs factory-kit's rendered `tcm-lora`
defaults, on the same Qwen2.5-architecture model and the same data, in one run (< 8 minutes on an H200).

    .venv/bin/python bench/gpu_throughput.py                 # Qwen2.5-1.5B shape, 60 steps each
    .venv/bin/python bench/gpu_throughput.py --size 7b --steps 30
    .venv/bin/python bench/gpu_throughput.py --smoke         # CPU, tiny model, seconds: the script works

The model is built here with random weights (speed and memory do not depend on the weights; no hub
needed): Qwen2.5's real shapes (hidden, layers, heads, KV heads, intermediate, 151,936-token vocab)
with factory-kit's locally trained byte-level tokenizer. The data are synthetic Chinese clinical QA
rows of varied length. Each configuration runs `llamafactory.train.tuner.run_exp` in its own process
with a callback that records the time and the non-padding tokens seen after every optimizer step and
torch's peak allocated GPU memory.

  example      LLaMA-Factory 0.9.5 examples/train_lora/qwen3_lora_sft.yaml (lora_rank 8, batch 1 x 8
               accumulation, cutoff 2048, bf16, 16 preprocessing workers), num_train_epochs/max_samples
               replaced by the same max_steps and data as the other side
  factory-kit  `factory-kit render` of recipes/tcm-lora.yaml with this model and data (+ max_steps)

Reported per side: tokens/s (non-padding tokens after the warm-up steps / their time), peak memory
(torch.cuda.max_memory_allocated; ru_maxrss on the CPU), MFU (6 x parameters x tokens/s over the
GPU's dense bf16 peak, the PaLM convention: LoRA skips weight gradients, so the work done is nearer
4N), and `factory-kit plan`'s predicted per-GPU memory with its error against the measured peak.
Targets (issue 13): factory-kit >= 1.3x the example's tokens/s at no more memory; plan within 20%.
Writes bench/results/gpu_throughput.json (gpu_throughput-smoke.json with --smoke).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

# Qwen2.5 shapes (config.json of Qwen/Qwen2.5-*-Instruct)
SIZES = {
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, tie_word_embeddings=True),
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, tie_word_embeddings=True),
    "3b": dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
               num_key_value_heads=2, tie_word_embeddings=True),
    "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4, tie_word_embeddings=False),
    "smoke": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, tie_word_embeddings=True),
}
QWEN_VOCAB = 151936
# dense bf16 peak, TFLOP/s (NVIDIA data sheets, without sparsity), matched in torch's device name
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "RTX 4090": 165.0, "A10": 125.0}

# LLaMA-Factory 0.9.5 examples/train_lora/qwen3_lora_sft.yaml, as published (template set for Qwen2.5)
EXAMPLE = {
    "model_name_or_path": None, "trust_remote_code": True,
    "stage": "sft", "do_train": True, "finetuning_type": "lora", "lora_rank": 8, "lora_target": "all",
    "dataset": "bench_qa", "template": "qwen", "cutoff_len": 2048, "overwrite_cache": True,
    "preprocessing_num_workers": 16, "dataloader_num_workers": 4,
    "output_dir": None, "logging_steps": 10, "save_steps": 500, "plot_loss": True, "overwrite_output_dir": True,
    "save_only_model": False, "report_to": "none",
    "per_device_train_batch_size": 1, "gradient_accumulation_steps": 8, "learning_rate": 1.0e-4,
    "num_train_epochs": 3.0, "lr_scheduler_type": "cosine", "warmup_ratio": 0.1, "bf16": True,
    "ddp_timeout": 180000000,
}
# what the example means, as recipe keys (for `plan`'s prediction of the example's memory)
EXAMPLE_AS_RECIPE = ["lora.rank=8", "lora.dropout=0.0", "train.batch_size=1", "train.grad_accum=8",
                     "train.cutoff_len=2048"]

_TERMS = ["头痛", "发热", "恶寒", "咳嗽", "失眠", "心悸", "胃脘痛", "腹泻", "便秘", "眩晕", "乏力", "口干",
          "舌红少苔", "脉细数", "苔白腻", "脉滑", "气虚", "血瘀", "肝郁", "脾虚", "肾阳虚", "阴虚火旺"]
_HERBS = ["黄芪", "人参", "当归", "白术", "茯苓", "甘草", "柴胡", "川芎", "熟地黄", "白芍", "半夏", "陈皮"]

PROBE = r'''
import json, os, resource, sys, time
import torch
from transformers import TrainerCallback
from llamafactory.train.tuner import run_exp

class Probe(TrainerCallback):
    def __init__(self):
        self.steps, self.params = [], 0
    def on_train_begin(self, args, state, control, model=None, **kw):
        if model is not None:
            self.params = sum(p.numel() for p in model.parameters())
        if torch.cuda.is_available():
            torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
        self.steps.append((time.perf_counter(), int(state.num_input_tokens_seen or 0)))
    def on_step_end(self, args, state, control, **kw):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.steps.append((time.perf_counter(), int(state.num_input_tokens_seen or 0)))
    def on_train_end(self, args, state, control, **kw):
        cuda = torch.cuda.is_available()
        out = {"steps": self.steps, "params": self.params, "device": torch.cuda.get_device_name(0) if cuda else "cpu",
               "peak_gib": (torch.cuda.max_memory_allocated() if cuda else
                            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**30,
               "reserved_gib": torch.cuda.max_memory_reserved() / 2**30 if cuda else None}
        with open(sys.argv[2], "w") as fh:
            json.dump(out, fh)

run_exp(json.load(open(sys.argv[1])), callbacks=[Probe()])
'''


def make_rows(path: Path, rows: int, seed: int = 0) -> None:
    """Synthetic clinical QA, 40-900 characters per answer (the lengths SFT data has)."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(rows):
            question = f"患者{i}，{'、'.join(rng.sample(_TERMS, 3))}，应如何辨证用药？"
            words = [f"{rng.choice(_TERMS)}者宜用{rng.choice(_HERBS)}{rng.randint(3, 30)}克" for _ in
                     range(rng.randint(3, 70))]
            fh.write(json.dumps({"instruction": question, "input": "", "output": "，".join(words) + "。",
                                "system": "你是一名中医师。"},
                                ensure_ascii=False) + "\n")


def build_model(folder: Path, size: str) -> int:
    """A Qwen2.5-shaped model with random weights and the local tokenizer; returns its parameter count."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from factory_kit.run import tinymodel

    tok_dir = folder.parent / "tokenizer-src"
    tinymodel.build(tok_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for item in tok_dir.iterdir():
        if item.is_file() and ("token" in item.name or item.name in ("vocab.json", "merges.txt")):
            shutil.copy2(item, folder / item.name)
    smoke = size == "smoke"
    cfg = Qwen2Config(**SIZES[size], vocab_size=tinymodel.VOCAB_SIZE if smoke else QWEN_VOCAB,
                      max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                      bos_token_id=0, eos_token_id=2, pad_token_id=0)
    dtype = torch.float32 if smoke else torch.bfloat16
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    model.save_pretrained(folder)
    params = sum(p.numel() for p in model.parameters())
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return params


def make_project(work: Path, rows: int) -> Path:
    project = work / "project"
    subprocess.run([str(Path(sys.executable).parent / "factory-kit"), "init", str(project)], check=True,
                   capture_output=True)
    make_rows(project / "data" / "bench_qa.jsonl", rows)
    registry = project / "dataset_info" / "dataset_info.json"
    info = json.loads(registry.read_text(encoding="utf-8")) if registry.exists() else {}
    info["bench_qa"] = {"file_name": "../data/bench_qa.jsonl", "formatting": "alpaca", "ranking": False,
                        "columns": {"prompt": "instruction", "query": "input", "response": "output",
                                    "system": "system"}}
    registry.write_text(json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")
    return project


def configs(project: Path, model: Path, steps: int, smoke: bool) -> tuple[dict, dict, list[str]]:
    """(example config, factory-kit config, the recipe --set list) for llamafactory's run_exp."""
    from factory_kit.recipe.render import render

    example = {**EXAMPLE, "model_name_or_path": str(model), "output_dir": str(project / "outputs" / "example"),
               "max_steps": steps, "dataset_dir": str(project / "dataset_info")}
    sets = [f"model={model}", "datasets=[bench_qa]", "eval_datasets=[]", "val_size=0", f"train.max_steps={steps}",
            "overwrite=true", "train.tokenized_cache=false"]
    if smoke:  # CPU: fp32, short sequences, no worker pools
        example.update(bf16=False, cutoff_len=256, preprocessing_num_workers=1, dataloader_num_workers=0)
        sets += ["precision=fp32", "train.cutoff_len=256", "train.workers=1"]
    out = render(project / "recipes" / "tcm-lora.yaml", sets, project=project)
    fk = dict(out.configs["train.yaml"])
    fk.update(output_dir=str(project / fk["output_dir"]), dataset_dir=str(project / fk["dataset_dir"]))
    for side in (example, fk):  # measurement only: count the real (non-padding) tokens, keep the step log quiet
        side.update(include_num_input_tokens_seen="non_padding", report_to="none", save_steps=10**6)
    return example, fk, sets


def run_side(name: str, config: dict, work: Path, timeout: int) -> dict:
    cfg_path, out_path = work / f"{name}.json", work / f"{name}-probe.json"
    cfg_path.write_text(json.dumps(config), encoding="utf-8")
    env = {**os.environ, "DISABLE_VERSION_CHECK": "1", "WANDB_DISABLED": "true", "CUDA_VISIBLE_DEVICES":
           os.environ.get("CUDA_VISIBLE_DEVICES", "0"), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    started = time.time()
    proc = subprocess.run([sys.executable, "-c", PROBE, str(cfg_path), str(out_path)], cwd=work, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not out_path.exists():
        raise SystemExit(f"{name} failed (exit {proc.returncode}):\n{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}")
    probe = json.loads(out_path.read_text())
    probe["wall_s"] = round(time.time() - started, 1)
    return probe


def summarise(probe: dict, warmup: int, peak_tflops: float | None) -> dict:
    steps = probe["steps"]
    (t0, n0), (t1, n1) = steps[min(warmup, len(steps) - 2)], steps[-1]
    tps = (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0
    mfu = 6 * probe["params"] * tps / (peak_tflops * 1e12) if peak_tflops else None
    return {"tokens_per_s": round(tps, 1), "peak_gib": round(probe["peak_gib"], 3),
            "reserved_gib": round(probe["reserved_gib"], 3) if probe.get("reserved_gib") else None,
            "mfu": round(mfu, 4) if mfu is not None else None, "params": probe["params"],
            "measured_steps": len(steps) - 1 - min(warmup, len(steps) - 2), "wall_s": probe["wall_s"],
            "device": probe["device"]}


def plan_gib(project: Path, sets: list[str]) -> float | None:
    """`factory-kit plan`'s per-GPU memory for the recipe (None when plan is unavailable)."""
    try:
        from factory_kit.recipe import plan
        from factory_kit.recipe.render import render

        out = render(project / "recipes" / "tcm-lora.yaml", sets, project=project, write=False)
        result = plan.plan_recipe(out.recipe, out.context, project, gpus=1, use_recipe_gpu=False)
        return round(result.estimate.total, 3) if result is not None else None
    except Exception as exc:  # the bench still reports speed when plan changes or fails
        print(f"plan unavailable: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None


def peak_for(device: str, override: float | None) -> float | None:
    if override:
        return override
    return next((v for k, v in PEAK_TFLOPS.items() if k.lower() in device.lower()), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="1.5b")
    ap.add_argument("--steps", type=int, default=60, help="optimizer steps per side")
    ap.add_argument("--warmup", type=int, default=5, help="steps left out of tokens/s")
    ap.add_argument("--rows", type=int, default=4000)
    ap.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak (else from its name)")
    ap.add_argument("--smoke", action="store_true", help="CPU check: tiny model, 4 steps, fp32")
    ap.add_argument("--timeout", type=int, default=210, help="seconds per side")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (model, data, outputs)")
    args = ap.parse_args()
    if args.smoke:
        args.size, args.steps, args.warmup, args.rows = "smoke", 4, 1, 64
    work = Path(tempfile.mkdtemp(prefix="fk-gpu-bench-"))
    try:
        project = make_project(work, args.rows)
        t = time.time()
        params = build_model(project / "models" / f"qwen2.5-{args.size}-random", args.size)
        print(f"model qwen2.5-{args.size} (random, {params / 1e9:.3f}B parameters) built in {time.time() - t:.0f}s")
        model = project / "models" / f"qwen2.5-{args.size}-random"
        example, fk, sets = configs(project, model, args.steps, args.smoke)
        sides = {}
        for name, config, recipe_sets in (("example", example, [*sets, *EXAMPLE_AS_RECIPE]), ("factory-kit", fk, sets)):
            probe = run_side(name, config, work, args.timeout)
            sides[name] = summarise(probe, args.warmup, peak_for(probe["device"], args.peak_tflops))
            predicted = plan_gib(project, recipe_sets)
            sides[name]["plan_gib"] = predicted
            if predicted and sides[name]["peak_gib"]:
                sides[name]["plan_error"] = round(predicted / sides[name]["peak_gib"] - 1, 3)
            sides[name]["settings"] = {k: config.get(k) for k in (
                "per_device_train_batch_size", "gradient_accumulation_steps", "cutoff_len", "lora_rank", "packing",
                "neat_packing", "enable_liger_kernel", "flash_attn", "bf16", "preprocessing_num_workers")}
            print(f"{name:12s} {sides[name]['tokens_per_s']:>10.1f} tok/s  peak {sides[name]['peak_gib']:.2f} GiB  "
                  f"plan {predicted} GiB  MFU {sides[name]['mfu']}")
        ratio = sides["factory-kit"]["tokens_per_s"] / max(sides["example"]["tokens_per_s"], 1e-9)
        result = {"size": args.size, "steps": args.steps, "warmup": args.warmup, "rows": args.rows,
                  "smoke": args.smoke, "python": platform.python_version(), "sides": sides,
                  "speedup": round(ratio, 3),
                  "targets": {"speedup_1_3x": ratio >= 1.3,
                              "no_more_memory": sides["factory-kit"]["peak_gib"] <= sides["example"]["peak_gib"],
                              "plan_within_20pct": all(abs(s.get("plan_error", 1)) <= 0.2 for s in sides.values())}}
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / ("gpu_throughput-smoke.json" if args.smoke else "gpu_throughput.json")
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"speedup {ratio:.2f}x; targets {result['targets']}; written {out.relative_to(ROOT)}")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
