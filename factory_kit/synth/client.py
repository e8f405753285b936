"""The robust client: the ``openai`` SDK with bounded concurrency, a client-side rate limit,
retries, the journal as a cache, token/cost accounting and a budget.

Retries are ours (the SDK's are off) so that each one is counted and a 429's ``Retry-After``
is honoured exactly: 429, 5xx, timeouts and dropped connections are retried with exponential
backoff and jitter; other 4xx fail at once. A request is only sent when the budget can still
hold its worst case (prompt estimate + ``max_tokens``), so a run stops *before* the budget would
be exceeded. Every answer is journalled (fsync'd) before it is returned.
"""

from __future__ import annotations

import functools
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from factory_kit.synth.endpoints import Endpoint
from factory_kit.synth.journal import Journal, request_key

_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")


@functools.cache
def _tiktoken() -> Any:
    """cl100k when tiktoken is installed and has its data (never downloaded here), else None."""
    try:
        import tiktoken  # optional; never a dependency

        return tiktoken.get_encoding("cl100k_base")
    except Exception:  # noqa: BLE001 - not installed, or no encoding data offline
        return None


def token_counter() -> str:
    return "tiktoken cl100k" if _tiktoken() is not None else "rough (1 per CJK character, 1 per 4 others)"


def estimate_tokens(text: str) -> int:
    """A rough token count without a tokenizer (tiktoken's cl100k when available): ~1 token per
    CJK character, ~1 per 4 other characters. For the dry run, the tpm limit and the budget."""
    enc = _tiktoken()
    if enc is not None:
        return len(enc.encode(text, disallowed_special=()))
    cjk = len(_CJK.findall(text))
    return cjk + (len(text) - cjk + 3) // 4


def messages_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(estimate_tokens(str(m.get("content", ""))) + 4 for m in messages)


class RateLimiter:
    """Requests and tokens per minute, spread evenly: each request takes the next free slot."""

    def __init__(self, rpm: float | None, tpm: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.rpm, self.tpm, self.clock, self.sleep = rpm, tpm, clock, sleep
        self._next_req = self._next_tok = 0.0
        self._lock = threading.Lock()

    def wait(self, tokens: int) -> float:
        if not self.rpm and not self.tpm:
            return 0.0
        with self._lock:
            now = self.clock()
            start = now
            if self.rpm:
                start = max(start, self._next_req)
                self._next_req = start + 60.0 / self.rpm
            if self.tpm:
                start = max(start, self._next_tok)
                self._next_tok = start + 60.0 * tokens / self.tpm
        delay = start - now
        if delay > 0:
            self.sleep(delay)
        return max(delay, 0.0)


@dataclass
class Stats:
    """What the run did so far (shown on the progress bar and in the report)."""

    sent: int = 0  # requests that got an answer (paid)
    cached: int = 0  # answers from the journal
    failed: int = 0  # requests given up after their retries
    skipped_budget: int = 0  # requests not sent: the budget could not hold them
    retries: int = 0
    retry_reasons: dict[str, int] = field(default_factory=dict)
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    errors: list[str] = field(default_factory=list)  # first few

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


class BudgetExceeded(Exception):
    """This request would take the run past its budget: it is not sent."""


class Budget:
    """A token and/or money ceiling; requests reserve their worst case before they are sent."""

    def __init__(self, max_tokens: int | None = None, max_cost: float | None = None):
        self.max_tokens, self.max_cost = max_tokens, max_cost
        self.tokens = 0
        self.cost = 0.0
        self._lock = threading.Lock()
        self.reached = False

    def reserve(self, tokens: int, cost: float) -> None:
        with self._lock:
            if (self.max_tokens is not None and self.tokens + tokens > self.max_tokens) or \
                    (self.max_cost is not None and self.cost + cost > self.max_cost):
                self.reached = True
                raise BudgetExceeded
            self.tokens += tokens
            self.cost += cost

    def settle(self, reserved: tuple[int, float], actual: tuple[int, float]) -> None:
        with self._lock:
            self.tokens += actual[0] - reserved[0]
            self.cost += actual[1] - reserved[1]


@dataclass
class Answer:
    key: str
    text: str | None  # None: failed or not sent
    cached: bool = False
    error: str | None = None
    usage: dict[str, int] | None = None


_RETRY_STATUS = {408, 409, 429}


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class Client:
    """``complete(messages)``: one chat completion through the journal; ``map(fn, items)``: run
    ``fn`` over items on ``endpoint.concurrency`` threads, results in order."""

    def __init__(self, endpoint: Endpoint, journal: Journal, budget: Budget | None = None,
                 stats: Stats | None = None, on_change: Callable[[Stats], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep, backoff: float = 0.5, max_backoff: float = 30.0):
        import openai

        self.endpoint, self.journal = endpoint, journal
        self.budget = budget or Budget()
        self.stats = stats or Stats()
        self.on_change = on_change
        self.sleep, self.backoff, self.max_backoff = sleep, backoff, max_backoff
        self.limiter = RateLimiter(endpoint.rpm, endpoint.tpm, sleep=sleep)
        self._openai = openai
        self._client = openai.OpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key(), max_retries=0,
                                     timeout=endpoint.timeout)
        self._lock = threading.Lock()

    def params(self, json_object: bool = False, max_tokens: int | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"temperature": self.endpoint.temperature,
                                  "max_tokens": int(max_tokens or self.endpoint.max_tokens)}
        if json_object and self.endpoint.json_mode:
            params["response_format"] = {"type": "json_object"}
        return params

    def key(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        return request_key(self.endpoint.base_url, self.endpoint.model, messages, params)

    def _changed(self, **delta: Any) -> None:
        with self._lock:
            for k, v in delta.items():
                setattr(self.stats, k, getattr(self.stats, k) + v)
        if self.on_change is not None:
            self.on_change(self.stats)

    def complete(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> Answer:
        key = self.key(messages, params)
        entry = self.journal.get(key)
        if entry is not None:
            self._changed(cached=1)
            return Answer(key, entry["response"], cached=True, usage=entry.get("usage"))
        prompt_tokens = messages_tokens(messages)
        worst = (prompt_tokens + int(params.get("max_tokens") or 0),
                 self.endpoint.cost(prompt_tokens, int(params.get("max_tokens") or 0)))
        try:
            self.budget.reserve(*worst)
        except BudgetExceeded:
            self._changed(skipped_budget=1)
            return Answer(key, None, error="budget")
        try:
            return self._send(key, messages, params, prompt_tokens, worst)
        except BaseException:
            self.budget.settle(worst, (0, 0.0))
            raise

    def _send(self, key: str, messages: list[dict[str, Any]], params: dict[str, Any], prompt_tokens: int,
              worst: tuple[int, float]) -> Answer:
        oa = self._openai
        error = ""
        for attempt in range(1, self.endpoint.max_attempts + 1):
            self.limiter.wait(worst[0])
            started = time.time()
            try:
                completion = self._client.chat.completions.create(model=self.endpoint.model, messages=messages,
                                                                  **params)
            except (oa.APITimeoutError, oa.APIConnectionError, oa.InternalServerError, oa.RateLimitError,
                    oa.APIStatusError) as exc:
                status = getattr(exc, "status_code", None)
                reason = str(status) if status else type(exc).__name__
                error = f"{reason}: {str(exc)[:200]}"
                if isinstance(exc, oa.APIStatusError) and status is not None and status < 500 \
                        and status not in _RETRY_STATUS:
                    break  # 400/401/403/404...: retrying cannot help
                if attempt == self.endpoint.max_attempts:
                    break
                with self._lock:
                    self.stats.retry_reasons[reason] = self.stats.retry_reasons.get(reason, 0) + 1
                self._changed(retries=1)
                delay = _retry_after(exc)
                if delay is None:
                    delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
                self.sleep(min(delay, 300.0))
                continue
            choice = completion.choices[0] if completion.choices else None
            message = choice.message if choice else None
            text = (message.content if message else None) or ""
            reasoning = getattr(message, "reasoning_content", None) if message else None
            if reasoning and "<think>" not in text:
                text = f"<think>\n{reasoning}\n</think>\n{text}"  # deepseek-reasoner's separate field
            usage = completion.usage
            tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0) if usage else prompt_tokens
            tokens_out = int(getattr(usage, "completion_tokens", 0) or 0) if usage else 0
            entry = {"key": key, "time": round(started, 3), "endpoint": self.endpoint.name,
                     "model": self.endpoint.model, "response": text,
                     "finish_reason": getattr(choice, "finish_reason", None),
                     "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out},
                     "seconds": round(time.time() - started, 3), "attempts": attempt}
            self.journal.append(entry)  # durable before it is used
            cost = self.endpoint.cost(tokens_in, tokens_out)
            self.budget.settle(worst, (tokens_in + tokens_out, cost))
            self._changed(sent=1, tokens_in=tokens_in, tokens_out=tokens_out, cost=cost)
            return Answer(key, text, usage=entry["usage"])
        self.budget.settle(worst, (0, 0.0))
        with self._lock:
            if len(self.stats.errors) < 5:
                self.stats.errors.append(error)
        self._changed(failed=1)
        return Answer(key, None, error=error)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        """``fn(item)`` for every item on ``concurrency`` threads, yielded in order; at most
        2 x concurrency items are in flight, so a huge corpus is never all queued at once."""
        width = max(1, int(self.endpoint.concurrency))
        pending: dict[int, Future] = {}
        done: dict[int, Any] = {}
        it = iter(enumerate(items))
        next_out = 0
        pool = ThreadPoolExecutor(max_workers=width, thread_name_prefix="synth")
        try:
            exhausted = False
            while True:
                while not exhausted and len(pending) < 2 * width:
                    try:
                        i, item = next(it)
                    except StopIteration:
                        exhausted = True
                        break
                    pending[i] = pool.submit(fn, item)
                while next_out in done:
                    yield done.pop(next_out)
                    next_out += 1
                if not pending:
                    if exhausted:
                        break
                    continue
                finished, _ = wait(list(pending.values()), return_when=FIRST_COMPLETED)
                for i in [i for i, f in pending.items() if f in finished]:
                    done[i] = pending.pop(i).result()
                while next_out in done:
                    yield done.pop(next_out)
                    next_out += 1
        finally:
            # Ctrl-C / SIGTERM / an error: queued requests are never sent; those in flight finish
            # and are journalled (they are being paid for).
            pool.shutdown(wait=True, cancel_futures=True)
