"""Synthesis: grow QA data through any OpenAI-compatible API, safely, resumably, within budget.

``endpoints`` (YAML presets) -> ``client`` (concurrency, rate limit, retries, journal, budget)
-> ``parse`` (strict JSON, one repair) -> ``modes`` (docs / topics / augment) -> ``pipeline``
(gates, judge, the normal import) -> ``report``. May import core and data only.
"""
