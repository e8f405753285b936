"""Optional LLM-as-judge over ``generated_predictions.jsonl`` (through the openai SDK).

Endpoint and model come from options or env ``FACTORY_KIT_JUDGE_BASE_URL`` /
``FACTORY_KIT_JUDGE_MODEL``; the key only from env ``FACTORY_KIT_JUDGE_API_KEY`` or
``OPENAI_API_KEY`` and is never written anywhere. Text is PII-redacted before it is sent.
Every response is appended to ``journal.jsonl`` before it is parsed, and the journal is the
cache: a re-run does not pay again for an answer it already has. Retries on 429/5xx are the SDK's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from factory_kit.core import io, progress
from factory_kit.core.errors import FactoryKitError
from factory_kit.data.judging import CRITERIA, TEMPLATE, parse_scores, render_prompt  # noqa: F401 - re-exported


def settings(model: str | None = None, base_url: str | None = None) -> tuple[str, str, str]:
    base_url = base_url or os.environ.get("FACTORY_KIT_JUDGE_BASE_URL")
    model = model or os.environ.get("FACTORY_KIT_JUDGE_MODEL")
    if not base_url:
        raise FactoryKitError("judge endpoint not set: pass --judge-base-url or set FACTORY_KIT_JUDGE_BASE_URL "
                              "(e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1)")
    if not model:
        raise FactoryKitError("judge model not set: pass --judge-model or set FACTORY_KIT_JUDGE_MODEL")
    key = os.environ.get("FACTORY_KIT_JUDGE_API_KEY") or os.environ.get("OPENAI_API_KEY")
    if not key:
        host = urlparse(base_url).hostname or ""
        if host in ("127.0.0.1", "localhost", "::1"):
            key = "local"  # a local server (llamafactory-cli api, vLLM) needs no key
        else:
            raise FactoryKitError("judge API key not set: export FACTORY_KIT_JUDGE_API_KEY (or OPENAI_API_KEY); "
                                  "keys are read from the environment only")
    return base_url, model, key


def _redactor():
    try:
        from factory_kit.data.pii import redact
    except ImportError:  # pragma: no cover - pii ships with factory-kit
        return lambda text: text
    return lambda text: redact(text)[0]


def _prompt_of(row: dict[str, Any]) -> str:
    """The user's question from LLaMA-Factory's rendered prompt (chat markup stripped)."""
    text = row.get("prompt", "")
    turns = re.findall(r"<\|im_start\|>user\n(.*?)<\|im_end\|>", text, re.DOTALL)
    if turns:
        return turns[-1]
    return re.sub(r"<\|[^|]+\|>", "", text).replace("system\nYou are a helpful assistant.", "").strip()


def _load_journal(path: Path) -> dict[str, dict[str, Any]]:
    cache = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if entry.get("response") is not None:
                cache[entry["key"]] = entry
    return cache


def judge_predictions(predictions: Path, out_dir: Path, *, model: str | None = None, base_url: str | None = None,
                      max_retries: int = 3, timeout: float = 120.0, limit: int | None = None,
                      max_tokens: int = 512) -> dict[str, Any]:
    """Judge each prediction; write ``journal.jsonl``, ``judge.items.jsonl`` and ``judge.json``."""
    import openai

    base_url, model, key = settings(model, base_url)
    if not predictions.is_file():
        raise FactoryKitError(f"{predictions}: no predictions to judge; run `factory-kit eval RECIPE --predict` first")
    rows = [json.loads(l) for l in predictions.read_text(encoding="utf-8").splitlines() if l.strip()]
    if limit:
        rows = rows[:limit]
    out_dir.mkdir(parents=True, exist_ok=True)
    journal_path = out_dir / "journal.jsonl"
    cache = _load_journal(journal_path)
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=max_retries, timeout=timeout)
    redact = _redactor()
    items, last_error = [], None
    with open(journal_path, "a", encoding="utf-8") as journal, \
            progress.bar("judging", total=len(rows), unit="items") as bar:
        for index, row in enumerate(rows):
            prompt = render_prompt(redact(_prompt_of(row)), redact(row.get("label", "")), redact(row.get("predict", "")))
            request_key = hashlib.sha256(json.dumps([model, prompt], ensure_ascii=False).encode()).hexdigest()
            entry = cache.get(request_key)
            cached = entry is not None
            if entry is None:
                started = time.time()
                entry = {"key": request_key, "index": index, "model": model, "time": started, "response": None}
                try:
                    completion = client.chat.completions.create(
                        model=model, messages=[{"role": "user", "content": prompt}], temperature=0.0,
                        max_tokens=max_tokens)
                    choice = completion.choices[0] if completion.choices else None
                    entry["response"] = (choice.message.content if choice and choice.message else None) or ""
                    entry["usage"] = completion.usage.model_dump() if completion.usage else None
                except (openai.APIError, ValueError) as exc:
                    status = getattr(exc, "status_code", None)
                    entry["error"] = (f"{type(exc).__name__}" + (f" {status}" if status else "") + f": {exc}")[:500]
                    last_error = entry["error"]
                entry["seconds"] = round(time.time() - started, 3)
                # journalled before it is used: a crash below never re-pays for this answer
                journal.write(json.dumps(entry, ensure_ascii=False) + "\n")
                journal.flush()
                if entry["response"] is not None:
                    cache[request_key] = entry  # the same question twice is paid once
            item = {"index": index, "key": request_key, "cached": cached}
            if entry.get("response") is None:
                item.update(status="failed", error=entry.get("error"))
            else:
                scores = parse_scores(entry["response"])
                if scores is None:
                    item.update(status="unparseable", response=entry["response"][:1000])
                else:
                    item.update(status="scored", **scores)
            items.append(item)
            bar.advance()
    counts = {s: sum(1 for it in items if it["status"] == s) for s in ("scored", "unparseable", "failed")}
    if items and counts["failed"] == len(items):
        raise FactoryKitError(f"judge {model} at {base_url}: every request failed; last error: {last_error}")
    scored = [it for it in items if it["status"] == "scored"]
    means = {c: (sum(it[c] for it in scored) / len(scored) if scored else None) for c in CRITERIA}
    io.write_text(out_dir / "judge.items.jsonl", "".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items))
    summary = {"kind": "judge", "model": model, "base_url": base_url, "predictions": str(predictions),
               "items": len(items), **counts, "cached": sum(1 for it in items if it["cached"]), "means": means,
               "journal": journal_path.name}
    io.write_json(out_dir / "judge.json", summary)
    return summary


def summary_line(summary: dict[str, Any]) -> str:
    means = ", ".join(f"{k} {v:.2f}" for k, v in summary["means"].items() if v is not None) or "no scores"
    return (f"judge {summary['model']}: {summary['scored']}/{summary['items']} scored ({means}); "
            f"{summary['unparseable']} unparseable, {summary['failed']} failed, {summary['cached']} from the journal")

