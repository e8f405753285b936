"""An embedded default model that needs no hub: a tiny Qwen2-architecture model.

A byte-level BPE tokenizer is trained on the shipped sample corpus and wrapped with a
Qwen-style chat template; the model is randomly initialised. It trains for real with
``llamafactory-cli`` (``template: qwen``) on a CPU in seconds. The result is cached under
the target folder with a fingerprint, so a second call returns at once without importing torch.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from factory_kit.core import paths
from factory_kit.core.paths import SAMPLES_DIR

# Numbers from ENVIRONMENT.md: small enough to train in seconds on 2 CPU cores.
MODEL_CONFIG = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
    tie_word_embeddings=True,
)
VOCAB_SIZE = 3000
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
STAMP = "factory-kit-tiny.json"
# Qwen2.5's chat format (system / user / assistant turns delimited by im_start/im_end).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def default_dir(project: Path | None = None) -> Path:
    """Where the demo recipes look for the tiny model: ``models/tiny-qwen2`` in the project."""
    return paths.models_dir(project) / "tiny-qwen2"


def corpus_files(samples_dir: Path = SAMPLES_DIR) -> list[Path]:
    """Every shipped sample file: the tokenizer learns the vocabulary of the demo data."""
    return sorted(p for p in samples_dir.glob("*") if p.suffix in {".txt", ".jsonl", ".json"})


def fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha256(json.dumps([MODEL_CONFIG, VOCAB_SIZE, CHAT_TEMPLATE]).encode())
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def is_built(target: Path, files: list[Path] | None = None) -> bool:
    stamp = Path(target) / STAMP
    if not stamp.exists():
        return False
    try:
        recorded = json.loads(stamp.read_text())["fingerprint"]
    except (ValueError, KeyError):
        return False
    return recorded == fingerprint(files if files is not None else corpus_files())


def _corpus_lines(files: list[Path]):
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                yield line


def build(target: Path, *, force: bool = False, seed: int = 0) -> tuple[Path, bool]:
    """Build the tiny model into ``target``; returns (path, built_now). Cached by fingerprint."""
    target = Path(target)
    files = corpus_files()
    if not force and is_built(target, files):
        return target, False

    # Imported here: the cached path above must stay instant.
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus_lines(files), trainer=trainer)
    hf_tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        chat_template=CHAT_TEMPLATE,
        model_max_length=MODEL_CONFIG["max_position_embeddings"],
    )
    hf_tokenizer.save_pretrained(tmp)

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(hf_tokenizer),
        bos_token_id=None,
        eos_token_id=hf_tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=hf_tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        **MODEL_CONFIG,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(tmp, safe_serialization=True)
    (tmp / STAMP).write_text(
        json.dumps({"fingerprint": fingerprint(files), "config": MODEL_CONFIG, "vocab": len(hf_tokenizer)}, indent=2)
    )
    if target.is_symlink():
        target.unlink()
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target, True
