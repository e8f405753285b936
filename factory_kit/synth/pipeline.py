"""``factory-kit synth``: requests -> replies (journalled) -> strict JSON -> items -> quality gates
(length, language, dedup within the run and against the project's datasets, optional LLM judge)
-> ``synth/NAME/generated.jsonl`` -> the normal import (validation, quarantine, dedup, PII,
registry) as dataset NAME. Provenance (endpoint, model, template and its hash, source chunk or
row, request keys, judge scores) goes to ``synth/NAME/provenance.jsonl``, one line per generated
row, joined to ``data/NAME.jsonl`` on ``source_row`` (the importer keeps no extra fields).

Re-running is free for every answer already in the journal, and rewrites the outputs whole, so a
run killed at any moment and run again repeats no paid call and writes no row twice.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory_kit.core import interrupts, paths, progress
from factory_kit.core.errors import FactoryKitError
from factory_kit.data import judging
from factory_kit.synth import endpoints, modes, report
from factory_kit.synth.client import (
    Answer,
    Budget,
    Client,
    Stats,
    messages_tokens,
    token_counter,
)
from factory_kit.synth.journal import Journal
from factory_kit.synth.parse import ParseError, parse_json

JUDGE = "judge"
_EXPLAINED = re.compile(r"(解析|解释|Explanation)\s*[:：]")


@dataclass
class Options:
    mode: str  # docs | topics | augment
    source: str  # corpus path, topics file, or dataset name / JSONL path
    name: str
    endpoint: str = "local"
    model: str | None = None
    base_url: str | None = None
    concurrency: int | None = None
    max_tokens: int | None = None
    questions: int = 3  # docs: questions per chunk
    chunk_chars: int = 1500
    count: int = 10  # topics: pairs per topic when the list gives none
    per_request: int = 5  # topics: pairs asked per request
    task: str = "explain"  # augment: explain | cot | rewrite
    limit: int | None = None  # first N chunks / topics / rows
    budget_tokens: int | None = None
    budget_cost: float | None = None
    dry_run: bool = False
    redact: bool = True
    cache: Path | None = None  # the journal (default synth/journal.jsonl in the project)
    judge: bool = False
    judge_threshold: float = 3.5
    judge_endpoint: str | None = None  # another preset/file for the judge (default: the same endpoint)
    min_chars: int = 4
    lang: str = "zh"  # zh | en | any
    dedup_existing: bool = True
    force: bool = False


@dataclass
class StageCounts:
    requests: int = 0
    sent: int = 0
    cached: int = 0
    failed: int = 0
    not_sent_budget: int = 0
    parsed: int = 0
    repaired: int = 0
    unparseable: int = 0
    wrong_count: int = 0
    items: int = 0
    bad_items: int = 0
    extra_dropped: int = 0


@dataclass
class Run:
    opts: Options
    project: Path
    endpoint: endpoints.Endpoint
    env: Any
    redactor: Any
    client: Client | None = None
    judge_client: Client | None = None  # --judge-endpoint: shares the stats and the budget
    stages: dict[str, StageCounts] = field(default_factory=dict)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    reasons: Counter = field(default_factory=Counter)
    hashes: dict[str, str] = field(default_factory=dict)

    # -- prompts -------------------------------------------------------------------------------
    def clean(self, text: str) -> str:
        """What is sent out: PII-redacted (the importer's redactor) unless --no-redact."""
        return self.redactor(text) if self.redactor is not None else text

    def template_hash(self, name: str) -> str:
        if name not in self.hashes:
            source = self.env.loader.get_source(self.env, name)[0]
            self.hashes[name] = hashlib.sha256(source.encode("utf-8")).hexdigest()[:12]
        return self.hashes[name]

    def request(self, job: modes.Job) -> tuple[list[dict[str, str]], dict[str, Any]]:
        template = judging.TEMPLATE if job.stage == JUDGE else modes.SPECS[job.stage].template
        prompt = self.env.get_template(template).render(**job.variables).strip() + "\n"
        messages = [{"role": "user", "content": prompt}]
        if job.stage == JUDGE:
            params = {"temperature": 0.0, "max_tokens": 256}
        else:
            params = {"temperature": self.endpoint.temperature,
                      "max_tokens": int(self.opts.max_tokens or self.endpoint.max_tokens)}
            if self.endpoint.json_mode:
                params["response_format"] = {"type": "json_object"}
        return messages, params

    def client_for(self, stage: str) -> Client:
        client = self.judge_client if stage == JUDGE and self.judge_client is not None else self.client
        assert client is not None
        return client

    def _ask(self, job: modes.Job) -> tuple[modes.Job, Answer]:
        return job, self.client_for(job.stage).complete(*self.request(job))

    def reject(self, stage: str, reason: str, detail: dict[str, Any]) -> None:
        self.reasons[f"{stage}: {reason}"] += 1
        self.rejected.append({"stage": stage, "reason": reason, **detail})

    # -- one stage: every job through the client, replies parsed ---------------------------------
    def stage(self, name: str, jobs: list[modes.Job]) -> list[tuple[modes.Job, list[dict[str, Any]], str]]:
        client = self.client_for(name)
        counts = self.stages.setdefault(name, StageCounts())
        counts.requests += len(jobs)
        out = []
        stats = client.stats
        with progress.bar(f"synth {name}", total=len(jobs), unit="requests") as bar:
            for job, answer in client.map(self._ask, jobs):
                bar.advance()
                bar.update(description=f"synth {name}: {stats.sent} sent, {stats.cached} cached, {stats.failed} failed"
                                       f", {stats.tokens_in + stats.tokens_out:,} tokens, "
                                       f"{stats.cost:.4f} {self.endpoint.currency}")
                items = self._items(name, job, answer, counts)
                if items is not None:
                    out.append((job, items, answer.key))
        return out

    def _items(self, name: str, job: modes.Job, answer: Answer, counts: StageCounts) -> list[dict[str, Any]] | None:
        if answer.text is None:
            if answer.error == "budget":
                counts.not_sent_budget += 1
            else:
                counts.failed += 1
                self.reject(name, "request failed", {"error": answer.error, **job.meta})
            return None
        counts.cached += answer.cached
        counts.sent += not answer.cached
        if name == JUDGE:
            scores = judging.parse_scores(answer.text)
            if scores is None:
                counts.unparseable += 1
                return None
            counts.parsed += 1
            return [scores]
        try:
            value, repaired = parse_json(answer.text, modes.SPECS[name].kind)
        except ParseError as exc:
            counts.unparseable += 1
            self.reject(name, "unparseable reply", {"error": str(exc), "response": answer.text[:500], **job.meta})
            return None
        counts.parsed += 1
        counts.repaired += repaired
        items, bad = modes.items_of(name, value)
        for why in bad:
            counts.bad_items += 1
            self.reject(name, "bad item", {"error": why, **job.meta})
        if job.expect is not None and len(items) + len(bad) != job.expect:
            counts.wrong_count += 1
            if len(items) > job.expect:
                counts.extra_dropped += len(items) - job.expect
                items = items[: job.expect]
        counts.items += len(items)
        return items


def _environment(project: Path):
    """The shipped templates, with the project's own ``templates/`` first (copied and edited)."""
    import jinja2

    from factory_kit.core.templates import environment

    base = environment()
    own = project / "templates"
    loaders = [jinja2.FileSystemLoader(str(own))] if own.is_dir() and own.resolve() != paths.TEMPLATES_DIR.resolve() \
        else []
    return base.overlay(loader=jinja2.ChoiceLoader([*loaders, base.loader]))


def out_dir(project: Path, name: str) -> Path:
    return project / "synth" / name


def _first_jobs(run: Run) -> list[modes.Job]:
    """The jobs a mode starts with (docs: the question requests)."""
    o = run.opts
    if o.mode == "docs":
        found = []
        for chunk in modes.chunks(Path(o.source), o.chunk_chars):
            if o.limit and len(found) >= o.limit:
                break
            found.append(modes.Job("questions", {"chunk": run.clean(chunk["text"]), "n": o.questions}, o.questions,
                                   {"chunk": chunk["id"]}))
        if not found:
            raise FactoryKitError(f"{o.source}: no text to chunk")
        return found
    if o.mode == "topics":
        jobs = []
        for topic, count in modes.topics(Path(o.source), o.count)[: o.limit or None]:
            for part, start in enumerate(range(0, count, o.per_request)):
                n = min(o.per_request, count - start)
                jobs.append(modes.Job("topic", {"topic": run.clean(topic), "n": n}, n, {"topic": topic, "part": part}))
        return jobs
    if o.mode == "augment":
        if o.task not in modes.TASKS:
            raise FactoryKitError(f"--task {o.task}: choose one of {', '.join(modes.TASKS)}")
        src = Path(o.source)
        if not src.suffix:
            from factory_kit.data.store import data_file

            src = data_file(run.project, o.source)
        jobs = []
        for row in modes.source_rows(src):
            if o.limit and len(jobs) >= o.limit:
                break
            if o.task == "explain" and _EXPLAINED.search(row["answer"]):
                run.reject("input", "already has an explanation", {"row": row["id"]})
                continue
            q, a = run.clean(row["question"]), run.clean(row["answer"])
            jobs.append(modes.Job(o.task, {"question": q, "answer": a}, None, {"row": row["id"], "question": q,
                                                                                "answer": a}))
        if not jobs:
            raise FactoryKitError(f"{src}: no question/answer rows to augment"
                                  + (" (every row already has an explanation)" if run.rejected else ""))
        return jobs
    raise FactoryKitError(f"mode {o.mode!r}: choose one of {', '.join(modes.MODES)}")


def _candidates(run: Run, first: list[modes.Job]) -> list[dict[str, Any]]:
    """Generated items as rows to gate: question, answer, the row to import, provenance."""
    o = run.opts
    cands = []
    base = {"endpoint": run.endpoint.name, "base_url": run.endpoint.base_url, "model": run.endpoint.model}
    if o.mode == "docs":
        answer_jobs = []
        for job, items, key in run.stage("questions", first):
            for item in items:
                q = run.clean(item["question"])
                answer_jobs.append(modes.Job("answer", {"chunk": job.variables["chunk"], "question": q}, None,
                                             {**job.meta, "question": q, "question_request": key}))
        t1, t2 = modes.SPECS["questions"].template, modes.SPECS["answer"].template
        for job, items, key in run.stage("answer", answer_jobs):
            q, a = job.meta["question"], items[0]["answer"]
            cands.append({"question": q, "answer": a, "row": modes.row_for("qa", q, a, {}),
                          "prov": {**base, "template": [t1, t2], "template_hash": [run.template_hash(t1),
                                                                                   run.template_hash(t2)],
                                   "chunk": job.meta["chunk"], "requests": [job.meta["question_request"], key]}})
        return cands
    stage = "topic" if o.mode == "topics" else o.task
    template = modes.SPECS[stage].template
    for job, items, key in run.stage(stage, first):
        for item in items:
            if o.mode == "topics" or o.task == "rewrite":
                q, a = item["question"], item["answer"]
            else:
                q, a = job.meta["question"], job.meta["answer"]
            row = modes.row_for(stage, q, a, item)
            shown = row.get("output") or f"<think>\n{item.get('cot', '')}\n</think>\n\n{a}"
            where = {"topic": job.meta["topic"]} if o.mode == "topics" else {"source_row": job.meta["row"]}
            cands.append({"question": q, "answer": shown, "row": row,
                          "prov": {**base, "template": template, "template_hash": run.template_hash(template),
                                   **where, "requests": [key]}})
    return cands


_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")
_NORM = re.compile(r"[\s\W_]+", re.UNICODE)


def _norm(text: str) -> str:
    return _NORM.sub("", text).lower()


def _dedup_key(mode: str, task: str, question: str, answer: str) -> str:
    if mode == "augment" and task in ("explain", "cot"):
        return _norm(question) + "\0" + _norm(answer)
    return _norm(question)


def _existing_keys(run: Run) -> set[str]:
    """Dedup keys of the project's other datasets (data/*.jsonl), so synthesis adds only new items."""
    keys: set[str] = set()
    data = paths.data_dir(run.project)
    if not run.opts.dedup_existing or not data.is_dir():
        return keys
    for f in sorted(data.glob("*.jsonl")):
        if f.stem == run.opts.name:
            continue
        for row in modes.source_rows(f):
            keys.add(_dedup_key(run.opts.mode, run.opts.task, row["question"], row["answer"]))
    return keys


def _gates(run: Run, cands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Length, language, dedup (within the run, then against the project's datasets)."""
    o = run.opts
    existing = _existing_keys(run)
    seen: set[str] = set()
    kept = []
    for c in cands:
        text = c["question"] + c["answer"]
        why = None
        if len(c["question"].strip()) < o.min_chars or len(c["answer"].strip()) < o.min_chars:
            why = f"too short (under {o.min_chars} characters)"
        elif o.lang != "any":
            cjk, latin = len(_CJK.findall(text)), len(_LATIN.findall(text))
            share = cjk / max(1, cjk + latin / 4)
            if (o.lang == "zh" and share < 0.3) or (o.lang == "en" and share > 0.3):
                why = f"not {o.lang} text"
        if why is None:
            key = _dedup_key(o.mode, o.task, c["question"], c["answer"])
            if key in seen:
                why = "duplicate within this run"
            elif key in existing:
                why = "duplicate of an existing dataset"
            seen.add(key)
        if why is None:
            kept.append(c)
        else:
            run.reject("gate", why, {"question": c["question"][:300], "answer": c["answer"][:300], **c["prov"]})
    return kept


def _judge(run: Run, cands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The evaluation judge's prompt and score parsing, through this run's client; rows whose
    mean score is under the threshold are rejected, the scores kept in provenance."""
    jobs = [modes.Job(JUDGE, {"question": run.clean(c["question"]), "reference": "", "answer": run.clean(c["answer"])},
                      None, {"index": i}) for i, c in enumerate(cands)]
    scored: dict[int, dict[str, Any]] = {}
    for job, items, key in run.stage(JUDGE, jobs):
        scored[job.meta["index"]] = {**items[0], "request": key}
    kept = []
    for i, c in enumerate(cands):
        s = scored.get(i)
        if s is None:
            run.reject("judge", "no score (unparseable or failed)", {"question": c["question"][:300], **c["prov"]})
            continue
        s["mean"] = round(sum(s[k] for k in judging.CRITERIA) / len(judging.CRITERIA), 3)
        c["prov"]["judge"] = s
        if s["mean"] < run.opts.judge_threshold:
            run.reject("judge", f"mean score under {run.opts.judge_threshold}",
                       {"question": c["question"][:300], "scores": s, **c["prov"]})
        else:
            kept.append(c)
    return kept


def estimate(run: Run, first: list[modes.Job], journal: Journal | None) -> dict[str, Any]:
    """--dry-run: requests, tokens and cost before anything is sent (answers in the journal free)."""
    o, ep = run.opts, run.endpoint
    max_out = int(o.max_tokens or ep.max_tokens)
    rows: dict[str, dict[str, int]] = {}

    def add(stage: str, prompt_tokens: int, expect: int | None, cached: bool) -> None:
        r = rows.setdefault(stage, {"requests": 0, "cached": 0, "tokens_in": 0, "tokens_out": 0, "tokens_out_max": 0})
        if cached:
            r["cached"] += 1
            return
        r["requests"] += 1
        r["tokens_in"] += prompt_tokens
        r["tokens_out"] += min(max_out, modes.SPECS[stage].per_item_tokens * (expect or 1))
        r["tokens_out_max"] += max_out

    for job in first:
        messages, params = run.request(job)
        key = run.client.key(messages, params) if run.client else None
        cached = journal is not None and key is not None and journal.get(key) is not None
        add(job.stage, messages_tokens(messages), job.expect, cached)
        if o.mode == "docs":
            answer = modes.Job("answer", {"chunk": job.variables["chunk"], "question": "问" * 30})
            tokens = messages_tokens(run.request(answer)[0])
            for _ in range(o.questions):
                add("answer", tokens, None, False)
    if o.judge:
        n = sum(r["requests"] * (1 if s in ("answer", "explain", "cot", "rewrite") else 0) +
                (r["requests"] * o.per_request if s == "topic" else 0) for s, r in rows.items())
        rows[JUDGE] = {"requests": n, "cached": 0, "tokens_in": n * 600, "tokens_out": n * 60, "tokens_out_max": n * 256}
    total = {k: sum(r[k] for r in rows.values()) for k in ("requests", "cached", "tokens_in", "tokens_out",
                                                              "tokens_out_max")}
    return {"dry_run": True, "name": o.name, "mode": o.mode, "endpoint": ep.name, "model": ep.model,
            "currency": ep.currency, "stages": rows, **total,
            "cost": round(ep.cost(total["tokens_in"], total["tokens_out"]), 6),
            "cost_max": round(ep.cost(total["tokens_in"], total["tokens_out_max"]), 6),
            "token_count": token_counter()}


def synthesize(opts: Options, project: Path | None = None, **client_kwargs: Any) -> dict[str, Any]:
    """Run one synthesis (or estimate it with ``dry_run``); returns the report (also written)."""
    from factory_kit.data.pii import Redactor

    started = time.monotonic()
    project = Path(project) if project is not None else paths.project_dir()
    ep = endpoints.load(opts.endpoint, model=opts.model, base_url=opts.base_url, concurrency=opts.concurrency)
    run = Run(opts, project, ep, _environment(project), Redactor() if opts.redact else None)
    first = _first_jobs(run)
    cache = Path(opts.cache) if opts.cache else project / "synth" / "journal.jsonl"
    if opts.dry_run:
        journal = Journal(cache) if cache.is_file() else None
        run.client = _client(run, journal or _NoJournal(), client_kwargs, keyless=True)
        return {**estimate(run, first, journal), "redactions": dict(run.redactor.counts) if run.redactor else {}}
    run.client = _client(run, Journal(cache), client_kwargs)
    if opts.judge and opts.judge_endpoint:
        judge_ep = endpoints.load(opts.judge_endpoint)
        run.judge_client = Client(judge_ep, run.client.journal, run.client.budget, run.client.stats, **client_kwargs)
    with interrupts.terminate_as_interrupt():  # SIGTERM stops like Ctrl-C: nothing queued is sent
        cands = _candidates(run, first)
        generated = len(cands)
        cands = _gates(run, cands)
        gated = len(cands)
        if opts.judge and cands:
            cands = _judge(run, cands)
        return report.finish(run, cands, {"generated": generated, "after_gates": gated, "after_judge": len(cands)},
                             cache, time.monotonic() - started)


class _NoJournal:
    def get(self, key: str) -> None:
        return None


def _client(run: Run, journal: Any, kwargs: dict[str, Any], keyless: bool = False) -> Client:
    ep = run.endpoint
    if keyless:  # the dry run sends nothing: it needs no key
        import dataclasses

        ep = dataclasses.replace(ep, api_key_env=None, base_url="http://127.0.0.1/v1")
        client = Client(ep, journal, **kwargs)
        client.endpoint = run.endpoint  # keys of requests are computed for the real endpoint
        return client
    o = run.opts
    return Client(ep, journal, Budget(o.budget_tokens, o.budget_cost), Stats(), **kwargs)
