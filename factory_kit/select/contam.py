"""Character n-gram contamination: does a training row contain an evaluation item?

Both sides are normalised the same way (NFKC, so full-width and half-width punctuation and
letters agree; lower case; option labels such as ``A.``/``(B)``/``C、`` removed; then every
character that is not a letter or digit dropped), so copies that differ in punctuation, spacing
or option letters still match. Two rules, either one flags a row:

- span: the row shares an ``n``-character span (default 13, the usual decontamination length)
  with the item's question followed by its options, starting in the question (a span inside one
  option, such as a textbook diagnostic criterion, names no item); the whole item when it is
  shorter than n;
- short question: a question shorter than n (Chinese exam stems often are, ``心在志为（　）``)
  counts when the row contains all of it and, within WINDOW characters after it, all options
  but at most one in any order (a re-lettered or reshuffled copy of the item) or the correct
  option's text (the question with its answer).

Matching uses an Aho-Corasick automaton (pyahocorasick) over every item's spans, so a row costs
one pass over its characters whatever the number of items.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from factory_kit.core.errors import FactoryKitError

DEFAULT_NGRAM = 13
MIN_NGRAM, MAX_NGRAM = 5, 200
MIN_STEM = 4  # shorter questions (after normalising) are too common to name an item
WINDOW = 300  # characters after a short question where its options or answer must appear
_LABEL = re.compile(r"(?<![0-9a-z])[a-z](?=\s*[.、:)\]】])|(?<=[(\[【])[a-z](?=[)\]】])")
_DROP = re.compile(r"[\W_]+")


def normalize(text: str) -> str:
    """Letters and digits only (any script), NFKC-folded and lower-cased, option labels removed."""
    text = unicodedata.normalize("NFKC", text).lower()
    return _DROP.sub("", _LABEL.sub(" ", text))


@dataclass
class Hit:
    item: int  # index into the items given to the Matcher
    rule: str  # "ngram" (a shared span) or "question" (short question + its options)
    span: str  # the normalised text that matched


def _load_automaton():
    try:
        import ahocorasick
    except ImportError:
        raise FactoryKitError("decontamination needs pyahocorasick: pip install pyahocorasick") from None
    return ahocorasick.Automaton()


class Matcher:
    """Built once from the evaluation items; ``find(text)`` -> the first Hit or None."""

    def __init__(self, items: list, n: int = DEFAULT_NGRAM):
        if not MIN_NGRAM <= n <= MAX_NGRAM:
            raise FactoryKitError(f"--ngram {n}: use {MIN_NGRAM}..{MAX_NGRAM} characters (13 is usual)")
        self.n = n
        self._options: list[list[str]] = []
        self._answers: list[str] = []
        automaton = _load_automaton()
        patterns: dict[str, list[tuple[str, int]]] = {}
        for i, item in enumerate(items):
            stem = normalize(item.question)
            opts = [o for o in (normalize(x) for x in item.options) if o]
            self._options.append(opts)
            self._answers.append(normalize(getattr(item, "answer", "") or ""))
            whole = stem + "".join(opts)
            if len(whole) >= n:  # spans that start in the question: an option alone names no item
                for start in range(min(len(stem), len(whole) - n + 1)):
                    patterns.setdefault(whole[start:start + n], []).append(("ngram", i))
            elif len(whole) >= MIN_STEM:
                patterns.setdefault(whole, []).append(("ngram", i))
            if MIN_STEM <= len(stem) < n and (len(opts) >= 2 or self._answers[-1]):
                patterns.setdefault(stem, []).append(("question", i))
        for key, value in patterns.items():
            automaton.add_word(key, (len(key), value))
        self.patterns = len(patterns)
        self._automaton = automaton if patterns else None
        if self._automaton is not None:
            automaton.make_automaton()

    def find(self, text: str) -> Hit | None:
        if self._automaton is None or not text:
            return None
        norm = normalize(text)
        for end, (length, matches) in self._automaton.iter(norm):
            span = norm[end - length + 1:end + 1]
            for rule, i in matches:
                if rule == "ngram":
                    return Hit(i, rule, span)
                after = norm[end + 1:end + 1 + WINDOW]
                opts, answer = self._options[i], self._answers[i]
                if (len(opts) >= 2 and sum(o not in after for o in opts) <= 1) or (answer and answer in after):
                    return Hit(i, rule, span)
        return None
