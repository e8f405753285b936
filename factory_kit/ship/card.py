"""The model card (the Hub repo's README.md): the training report's data (evaluate/report.py builds
both from the same run record), with what a model card needs on top: Hub metadata, what the repo
holds, intended use and a medical disclaimer."""

from __future__ import annotations

import json
from pathlib import Path

from factory_kit.evaluate import report
from factory_kit.recipe.render import Rendered

DISCLAIMER = ("This model is a research and education artefact. It is **not a medical device**, has not been "
              "clinically validated, and must not be used to diagnose, treat or prescribe. Its answers can be "
              "wrong, incomplete or unsafe (including for Traditional Chinese Medicine herbs, doses and "
              "interactions); a qualified clinician must check anything it says before it affects a patient.")
SAMPLES = 3  # answers shown per generation run


def _front_matter(rendered: Rendered, base: str, project: Path) -> list[str]:
    """Hub metadata; ``base_model`` only for a Hub id (a local folder's path means nothing on the Hub)."""
    ctx = rendered.context
    tags = ["factory-kit", "llama-factory", "medical", ctx["stage"], ctx["method"]]
    local = (project / base).exists() or Path(base).is_absolute()
    lines = ["---"] + ([] if local else [f"base_model: {json.dumps(base, ensure_ascii=False)}"])
    if ctx["adapter"]:
        lines.append("library_name: peft")
    lines += ["pipeline_tag: text-generation", "tags:", *[f"- {t}" for t in tags], "---", ""]
    return lines


def _sample_section(output_dir: Path) -> list[str]:
    """Answers recorded by `factory-kit eval --predict` (a folder per model: ``generation*``), side by side."""
    runs = sorted((output_dir / "eval").glob("generation*/generated_predictions.jsonl"))
    if not runs:
        return []
    lines = ["## Sample answers", ""]
    for path in runs:
        rows = []
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip() and len(rows) < SAMPLES:
                    rows.append(json.loads(line))
        lines += [f"From `{path.parent.name}` ({'before training' if 'base' in path.parent.name else 'this model'}):",
                  ""]
        for row in rows:
            prompt = str(row.get("prompt", "")).strip().replace("\n", " ")[:300]
            lines += [f"- **Prompt:** {prompt}", f"  - **Reference:** {str(row.get('label', '')).strip()[:300]}",
                      f"  - **Answer:** {str(row.get('predict', '')).strip()[:300]}"]
        lines.append("")
    return lines


def build(rendered: Rendered, project: Path, *, contents: list[str], gguf: list[Path] | None = None) -> str:
    """The card for the recipe's run; ``contents`` says what the repo holds (merged weights, adapter, GGUF)."""
    ctx = rendered.context
    output_dir = project / ctx["output_dir"]
    base = ctx["model"]
    name = rendered.recipe.name
    lines = [*_front_matter(rendered, base, project), f"# {name}", "",
             f"Fine-tuned from `{base}` ({ctx['family']} family, template `{ctx['template']}`) with "
             f"factory-kit over LLaMA-Factory: stage `{ctx['stage']}`, method `{ctx['method']}`, "
             f"datasets {', '.join(f'`{d}`' for d in rendered.recipe.data['datasets'])}.", "",
             "## What this repository holds", "", *[f"- {c}" for c in contents], ""]
    if gguf:
        lines += ["Run a GGUF locally with llama.cpp or Ollama (`ollama create NAME -f Modelfile` next to it).", ""]
    lines += ["## Intended use", "",
              "Research on medical (Traditional Chinese Medicine / Chinese clinical) question answering, and a "
              "starting point for further fine-tuning and evaluation. Not for use with patients.", "",
              "## Medical disclaimer", "", DISCLAIMER, ""]
    run_json = output_dir / "run.json"
    if run_json.is_file():
        record = json.loads(run_json.read_text(encoding="utf-8"))
        sections = report.shared_sections(output_dir, record, rendered, project, output_dir / "report")
        lines += [*sections["benchmarks"], *sections["generation"], *sections["judge"], *_sample_section(output_dir),
                  *sections["datasets"], "", *sections["recipe"]]
        lines += ["## Training run", "", f"- Started {record.get('started')}, {record.get('seconds')} s",
                  *[f"- {k} {v}" for k, v in sorted(record.get("packages", {}).items())], ""]
    else:
        lines += ["No training record (`run.json`) was found for this model.", ""]
    return "\n".join(lines).rstrip() + "\n"
