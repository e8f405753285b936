"""The options of `data select`, declared once: each field is its command-line flag too
(cli/options.py builds the click options). Kept apart from recall.py so the CLI can read them
without importing numpy or faiss."""

from __future__ import annotations

from dataclasses import dataclass

from factory_kit.core.errors import FactoryKitError
from factory_kit.core.options import option
from factory_kit.select.contam import DEFAULT_NGRAM, MAX_NGRAM, MIN_NGRAM


@dataclass
class Options:
    """What `data select` takes; each field is also its command-line option (cli/options.py)."""

    top_k: int = option(20, "--top-k", type=int, show_default=True, help="Rows recalled per evaluation item.")
    min_similarity: float | None = option(
        None, "--min-similarity", type=float,
        help="Floor: recall no row below this cosine (default: none, rank only; use-m3 scores unrelated text 0.2-0.55).")
    max_similarity: float | None = option(
        0.9, "--max-similarity", type=float, show_default=True,
        help="Ceiling: drop rows at or above this cosine to any eval item (near-copies).")
    random_ratio: float = option(0.2, "--random-ratio", type=float, show_default=True,
                                 help="Share of the output that is random pool rows (0 <= r < 1; 0.2-0.3 is usual).")
    seed: int = option(42, "--seed", type=int, show_default=True, help="Seed for the random rows and the control arm.")
    ngram: int = option(DEFAULT_NGRAM, "--ngram", type=int, show_default=True,
                        help="Decontamination span in characters of normalised text.")
    decontaminate: bool = option(True, "--decontaminate/--no-decontaminate", show_default=True,
                                 help="Drop rows sharing a long span with an eval item (n-gram decontamination).")

    def check(self) -> None:
        """Every value in range, or one line saying which and what is allowed."""
        if not isinstance(self.top_k, int) or self.top_k < 1:
            raise FactoryKitError(f"--top-k {self.top_k}: use a whole number >= 1")
        for flag, value in (("--min-similarity", self.min_similarity), ("--max-similarity", self.max_similarity)):
            if value is not None and not -1.0 <= value <= 1.0:  # NaN fails too
                raise FactoryKitError(f"{flag} {value}: cosine similarity lies in -1..1")
        if self.min_similarity is not None and self.max_similarity is not None \
                and self.min_similarity >= self.max_similarity:
            raise FactoryKitError(f"--min-similarity {self.min_similarity} must be below "
                                  f"--max-similarity {self.max_similarity}")
        if not MIN_NGRAM <= self.ngram <= MAX_NGRAM:
            raise FactoryKitError(f"--ngram {self.ngram}: use {MIN_NGRAM}..{MAX_NGRAM} characters (13 is usual)")
        if not 0.0 <= self.random_ratio < 1.0:
            raise FactoryKitError(f"--random-ratio {self.random_ratio}: use 0 <= ratio < 1 "
                                  "(0.2-0.3 is the usual advice)")
