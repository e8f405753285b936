"""The sample medical data shipped in ``data/samples/``, under the names the shipped recipes use."""

from __future__ import annotations

from pathlib import Path

from factory_kit.core import paths
from factory_kit.core.errors import FactoryKitError

# (sample file, dataset name, format, import options)
SAMPLE_SOURCES = [
    ("tcm_qa.jsonl", "tcm_qa", "alpaca", {"split": (0.9, 0.1), "seed": 42}),
    ("consultations.json", "tcm_consultations", "sharegpt", {}),
    ("medical_o1_cot.jsonl", "medical_o1_cot", "cot", {}),
    ("exam_mcq.jsonl", "tcm_exam", "mcq", {}),
    ("herb_monographs.txt", "tcm_herbs", "text", {}),
    ("preference_pairs.jsonl", "tcm_pref", "preference", {}),
]


def _own_data_under_sample_names(project: Path) -> list[str]:
    """Sample names (or their splits) that already hold a dataset not imported from the samples."""
    from factory_kit.data import registry, store

    registered = registry.load(paths.registry_dir(project))
    taken = []
    for file, name, _, _ in SAMPLE_SOURCES:
        if not any(f"{name}{suffix}" in registered for suffix in ("", "_train", "_val", "_test")):
            continue
        sources = (store.read_meta(project, name) or {}).get("sources") or []
        if not sources or any(Path(src).name != file or Path(src).parent.resolve() != paths.SAMPLES_DIR.resolve()
                              for src in sources):
            origin = ", ".join(paths.relative(Path(src), project) for src in sources) or "registered by hand"
            taken.append(f"{name} ({origin})")
    return taken


def import_samples(project: Path | None = None, *, force: bool = False) -> list:
    """Import every shipped sample source into the project's data/ and dataset_info/; refuses to
    replace a user's own dataset that shares a sample's name unless ``force``."""
    from factory_kit.data.importer import import_source  # lazy: `check` reads only the names

    project = Path(project or paths.project_dir())
    taken = [] if force else _own_data_under_sample_names(project)
    if taken:
        raise FactoryKitError(f"{'; '.join(taken)}: your own data already uses the sample name(s) that the demo and "
                              "`data samples` import; the samples would replace it. Run them in a fresh folder, "
                              "import yours under another name, or replace it with `factory-kit data samples --force`")
    return [
        import_source(paths.SAMPLES_DIR / file, name, fmt, project=project, **options)
        for file, name, fmt, options in SAMPLE_SOURCES
    ]


def sample_dataset_names() -> set[str]:
    """Names `factory-kit data samples` (and the demo) register, splits included."""
    return {f"{name}{suffix}" for _, name, _, _ in SAMPLE_SOURCES for suffix in ("", "_train", "_val", "_test")}
