"""Helpers for the evaluation tests: degenerate models and small benchmark/dataset files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def always_a_model(src: Path, dest: Path, letter: str = "A", letters: str = "ABCDEFGH") -> Path:
    """A copy of the tiny model that prefers the answer " A" (or `` letter``) after any prompt.

    The last layer's value projection is zeroed and given a large constant bias, so attention
    writes the same big vector into the residual stream whatever the input; the final hidden
    state then points along one axis, and the (tied) embedding rows of the tokens that spell
    " A" get a large positive weight on that axis, those of " B"/" C"/... a negative one.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest)
    tok = AutoTokenizer.from_pretrained(dest)
    model = AutoModelForCausalLM.from_pretrained(dest, dtype=torch.float32)
    with torch.no_grad():
        attn = model.model.layers[-1].self_attn
        attn.v_proj.weight.zero_()
        attn.v_proj.bias.fill_(100.0)
        attn.o_proj.weight.zero_()
        attn.o_proj.weight[0, :] = 1.0
        emb = model.get_input_embeddings().weight
        ids = {x: tok(" " + x, add_special_tokens=False)["input_ids"] for x in letters}
        shared = set.intersection(*(set(v) for v in ids.values()))
        for x, token_ids in ids.items():
            for tid in token_ids:
                if tid not in shared:
                    emb[tid, 0] = 5.0 if x == letter else -5.0
    model.save_pretrained(dest)
    return dest


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path
