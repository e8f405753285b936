"""The sample medical data shipped in ``data/samples/``, under the names the shipped recipes use."""

from __future__ import annotations

from pathlib import Path

from factory_kit.core import paths

# (sample file, dataset name, format, import options)
SAMPLE_SOURCES = [
    ("tcm_qa.jsonl", "tcm_qa", "alpaca", {"split": (0.9, 0.1), "seed": 42}),
    ("consultations.json", "tcm_consultations", "sharegpt", {}),
    ("medical_o1_cot.jsonl", "medical_o1_cot", "cot", {}),
    ("exam_mcq.jsonl", "tcm_exam", "mcq", {}),
    ("herb_monographs.txt", "tcm_herbs", "text", {}),
    ("preference_pairs.jsonl", "tcm_pref", "preference", {}),
]


def import_samples(project: Path | None = None) -> list:
    """Import every shipped sample source into the project's data/ and dataset_info/."""
    from factory_kit.data.importer import import_source  # lazy: `check` reads only the names

    return [
        import_source(paths.SAMPLES_DIR / file, name, fmt, project=project, **options)
        for file, name, fmt, options in SAMPLE_SOURCES
    ]


def sample_dataset_names() -> set[str]:
    """Names `factory-kit data samples` (and the demo) register, splits included."""
    return {f"{name}{suffix}" for _, name, _, _ in SAMPLE_SOURCES for suffix in ("", "_train", "_val", "_test")}
