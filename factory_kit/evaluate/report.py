"""`factory-kit report RUN`: one Markdown (+ HTML) page per training run.

Recipe, rendered config, dataset cards (rows, file, hash, text lengths), loss and eval-loss
curves (PNG, from LLaMA-Factory's ``trainer_log.jsonl``), benchmark / generation / judge
results found under ``<output_dir>/eval/``, and the versions and hashes from ``run.json``.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import shlex
from pathlib import Path
from typing import Any

from factory_kit.core import io, paths
from factory_kit.data import registry
from factory_kit.core.errors import FactoryKitError


def _find_run(run: str, project: Path) -> tuple[Path, dict[str, Any], Any]:
    """(output_dir, run.json record, Rendered or None) for a recipe or an output folder."""
    candidate = Path(run).expanduser()
    if not candidate.is_absolute():
        candidate = project / candidate
    rendered = None
    if candidate.is_dir():
        output_dir = candidate
    else:  # a recipe file, or a bare recipe name (`tcm-lora`, `qwen2.5-7b-lora-sft`)
        from factory_kit.recipe.render import render

        try:
            rendered = render(run, (), project=project, write=False, check_data=False)
        except FactoryKitError as exc:
            if candidate.exists():
                raise
            raise FactoryKitError(f"{run}: neither an output folder nor a recipe ({exc})") from None
        output_dir = project / rendered.context["output_dir"]
    run_json = output_dir / "run.json"
    if not run_json.is_file():
        raise FactoryKitError(f"{output_dir}: no run.json; train it first (`factory-kit train RECIPE`)")
    record = json.loads(run_json.read_text(encoding="utf-8"))
    if record.get("kind") == "eval":
        raise FactoryKitError(f"{run}: this folder holds `factory-kit eval` results, not a training run; pass the "
                              "recipe (or its training output folder): its report includes the results in "
                              "<output_dir>/eval/, or compare result files with `factory-kit compare A B`")
    if rendered is None and record.get("recipe"):
        from factory_kit.recipe.render import render

        recipe_path = Path(record["recipe"])
        if not recipe_path.is_absolute():
            recipe_path = project / recipe_path
        if recipe_path.is_file():
            try:
                rendered = render(recipe_path, (), project=project, write=False, check_data=False)
            except FactoryKitError:
                rendered = None
    return output_dir, record, rendered


def loss_chart(output_dir: Path, path: Path, title: str) -> Path | None:
    from factory_kit.run.records import read_losses

    losses, eval_losses = read_losses(output_dir)
    if not losses and not eval_losses:
        return None
    from factory_kit.core import charts

    plt = charts.pyplot()  # Agg, and a CJK font for Chinese names when one is installed

    fig, ax = plt.subplots(figsize=(7, 4))
    if losses:
        ax.plot([s for s, _ in losses], [v for _, v in losses], label="train loss", color="#2f7ed8", linewidth=1.5)
    if eval_losses:
        ax.plot([s for s, _ in eval_losses], [v for _, v in eval_losses], "o-", label="eval loss", color="#e36209")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def dataset_card(name: str, entry: dict[str, Any] | None, reg_dir: Path, digest: str | None) -> dict[str, Any]:
    card: dict[str, Any] = {"name": name, "sha256": digest}
    if entry is None:
        card["note"] = "not in dataset_info.json"
        return card
    card["file"] = entry.get("file_name")
    card["formatting"] = entry.get("formatting", "alpaca")
    card["source"] = entry.get("source") or entry.get("description") or entry.get("hf_hub_url") or card["file"]
    path = reg_dir / entry["file_name"] if entry.get("file_name") else None
    if path and path.is_file():
        from factory_kit.data import stats

        rows, chars = stats.char_counts(entry, path)  # counted as `data stats` counts them
        card["rows"] = rows
        if rows:
            card["chars"] = {"min": chars["min"], "median": chars["p50"], "max": chars["max"]}
    return card


def _result_files(eval_dir: Path) -> list[Path]:
    if not eval_dir.is_dir():
        return []
    return sorted(p for p in eval_dir.glob("*.json")
                  if not p.name.startswith(("before-after", "compare-")) and p.is_file())


def _md_table(header: list[str], rows: list[list[Any]], align: str = "") -> list[str]:
    align = align or "l" * len(header)
    sep = ["---:" if a == "r" else "---" for a in align]
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |",
            *["| " + " | ".join(str(c) for c in row) + " |" for row in rows], ""]


def build_markdown(output_dir: Path, record: dict[str, Any], rendered: Any, project: Path, out_dir: Path) -> str:
    """The report page: one section per concern, in reading order."""
    name = rendered.recipe.name if rendered else output_dir.name
    eval_dir = output_dir / "eval"
    results, stale = _split_stale(_benchmark_results(eval_dir), output_dir)
    lines = [*_run_section(name, output_dir, record, project, rendered),
             *_loss_section(name, output_dir, out_dir),
             *_benchmark_section(results, eval_dir, project, out_dir, output_dir),
             *_stale_section(stale, output_dir, project, rendered),
             *_generation_section(eval_dir, project, output_dir),
             *_judge_section(eval_dir),
             *_recipe_section(output_dir, record, rendered, project),
             *_config_section(output_dir, record, rendered, project),
             *_dataset_section(record, rendered, project),
             *_reproduce_section(record, rendered, results, project)]
    return "\n".join(lines)


def find_run(run: str, project: Path) -> tuple[Path, dict[str, Any], Any]:
    """(output_dir, run.json record, Rendered or None) for a recipe or an output folder."""
    return _find_run(run, project)


def shared_sections(output_dir: Path, record: dict[str, Any], rendered: Any, project: Path,
                    out_dir: Path) -> dict[str, list[str]]:
    """The sections the report and the model card (ship/card.py) share: one run record, two views."""
    eval_dir = output_dir / "eval"
    results, _ = _split_stale(_benchmark_results(eval_dir), output_dir)
    return {"benchmarks": _benchmark_section(results, eval_dir, project, out_dir, output_dir),
            "generation": _generation_section(eval_dir, project, output_dir),
            "judge": _judge_section(eval_dir),
            "recipe": _recipe_section(output_dir, record, rendered, project),
            "datasets": _dataset_section(record, rendered, project)}


def _run_section(name: str, output_dir: Path, record: dict[str, Any], project: Path, rendered: Any) -> list[str]:
    from factory_kit.run.records import status_of

    state = status_of(record)
    status = {"succeeded": "succeeded", "interrupted": f"interrupted (exit {record.get('exit_code')})"}.get(
        state, f"FAILED (exit {record.get('exit_code')})")
    resume = []
    if state == "interrupted":
        recipe = paths.relative(rendered.recipe.path, project) if rendered else "RECIPE"
        resume = [f"- Continue it from its last checkpoint: `factory-kit train {recipe} --resume`"]
    return [f"# Training report: {name}", "",
            f"- Run {status}: started {record.get('started')}, ended {record.get('ended')} "
            f"({record.get('seconds')} s)", *resume,
            f"- Output folder: `{paths.relative(output_dir, project)}`",
            f"- Command: `{' '.join(record.get('command', []))}`",
            f"- Git commit: `{record.get('git_commit') or 'unknown'}`", ""]


def _loss_section(name: str, output_dir: Path, out_dir: Path) -> list[str]:
    from factory_kit.run.records import read_losses

    losses, eval_losses = read_losses(output_dir)
    lines = ["## Loss", ""]
    chart = loss_chart(output_dir, out_dir / "loss.png", f"{name}: loss")
    if not chart:
        return [*lines, "No losses logged (trainer_log.jsonl missing or empty).", ""]
    lines += [f"![loss curves]({chart.name})", ""]
    if losses:
        lines.append(f"Train loss {losses[0][1]:.4f} (step {losses[0][0]}) -> {losses[-1][1]:.4f} "
                     f"(step {losses[-1][0]}), {len(losses)} points.")
    if eval_losses:
        best = min(eval_losses, key=lambda x: x[1])
        lines.append(f"Eval loss {eval_losses[0][1]:.4f} -> {eval_losses[-1][1]:.4f}; best {best[1]:.4f} "
                     f"at step {best[0]}.")
    return [*lines, ""]


def _benchmark_results(eval_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The benchmark result files under ``eval/`` (not compare summaries), read."""
    results = []
    for path in _result_files(eval_dir):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and data.get("kind") == "benchmark":
            results.append((path, data))
    return results


def _scores_other_weights(data: dict[str, Any], path: Path, output_dir: Path) -> bool:
    """Whether a result (benchmark or generation) scored other trained weights than the ones in
    ``output_dir`` now, e.g. the adapter before a `train --resume`. Base-model results score no
    trained weights; a result written before results recorded them is judged by its time."""
    from factory_kit.run import records

    if data.get("label") == "base":
        return False
    same = records.same_weights(data.get("trained_weights"), output_dir)
    if same is not None:
        return not same
    if data.get("trained_weights") is None and "trained_weights" in data:
        return False  # recorded as scoring no trained weights (a hub model, say)
    current = records.weights_identity(output_dir)
    return bool(current and path.stat().st_mtime_ns < current["mtime_ns"])


def _split_stale(results: list[tuple[Path, dict[str, Any]]], output_dir: Path):
    """(this run's results, results of other trained weights)."""
    current, stale = [], []
    for path, data in results:
        (stale if _scores_other_weights(data, path, output_dir) else current).append((path, data))
    return current, stale


def _stale_section(stale: list[tuple[Path, dict[str, Any]]], output_dir: Path, project: Path,
                   rendered: Any) -> list[str]:
    if not stale:
        return []
    from factory_kit.run.records import weights_identity

    current = weights_identity(output_dir) or {}
    recipe = paths.relative(rendered.recipe.path, project) if rendered else "RECIPE"
    lines = ["### Stale results (not this run's)", "",
             f"These scored other weights than `{current.get('file', 'the weights')}` now in "
             f"`{paths.relative(output_dir, project)}` (sha256 `{(current.get('sha256') or '')[:16]}`, "
             f"{current.get('mtime', '?')}), e.g. the adapter before a `train --resume`; they are left out "
             f"above. Score this run with `factory-kit eval {recipe} --baseline`.", ""]
    for path, data in stale:
        scored = data.get("trained_weights") or {}
        overall = data.get("overall", {}).get("accuracy")
        lines.append(f"- `{path.name}`: {data.get('label', path.stem)}"
                     + (f", {100 * overall:.1f}% overall" if isinstance(overall, (int, float)) else "")
                     + (f", scored sha256 `{scored['sha256'][:16]}` ({scored.get('mtime')})"
                        if scored.get("sha256") else ", written before the current weights"))
    return [*lines, ""]


def _benchmark_section(results: list[tuple[Path, dict[str, Any]]], eval_dir: Path, project: Path,
                       out_dir: Path, output_dir: Path | None = None) -> list[str]:
    from factory_kit.run.records import weights_identity

    lines = ["## Benchmarks", ""]
    if not results:
        return [*lines, "No benchmark results yet (`factory-kit eval RECIPE --baseline`).", ""]
    benches = sorted({b for _, d in results for b in d["benchmarks"]})
    header = ["Benchmark / subject", "N"] + [d.get("label", p.stem) for p, d in results]
    rows = []
    for bench in benches:
        subjects = sorted({s for _, d in results for s in d["benchmarks"].get(bench, {}).get("subjects", {})})
        for subject in subjects:
            cells = []
            n = ""
            for _, d in results:
                s = d["benchmarks"].get(bench, {}).get("subjects", {}).get(subject)
                cells.append(f"{100 * s['accuracy']:.1f}" if s else "n/a")
                n = n or (s["n"] if s else "")
            rows.append([f"{bench} / {subject}", n, *cells])
        cells = [f"**{100 * d['benchmarks'][bench]['accuracy']:.1f}**" if bench in d["benchmarks"] else "n/a"
                 for _, d in results]
        rows.append([f"**{bench} (all)**", next((d['benchmarks'][bench]['n'] for _, d in results
                                                  if bench in d['benchmarks']), ""), *cells])
    lines += _md_table(header, rows, "lr" + "r" * len(results))
    lines += [f"- `{p.name}`: {d.get('mode')}, {d.get('shots')}-shot, model `{d.get('model')}`"
              + (f" + adapter `{d.get('adapter')}`" if d.get("adapter") else "") for p, d in results]
    lines.append("")
    weights = weights_identity(output_dir) if output_dir else None
    for md in sorted(eval_dir.glob("before-after*.md")) + sorted(eval_dir.glob("compare-*.md")):
        png = md.with_suffix(".png")
        if weights and png.is_file() and png.stat().st_mtime_ns < weights["mtime_ns"]:
            continue  # compares an older adapter (before a `train --resume`): not this run's
        if png.is_file():
            io.write_bytes(out_dir / png.name, png.read_bytes())
            lines += [f"Before/after (`{paths.relative(md, project)}`):", "", f"![before/after]({png.name})", ""]
    return lines


def _generation_section(eval_dir: Path, project: Path, output_dir: Path) -> list[str]:
    gen = eval_dir / "generation" / "generation.json"
    lines = ["## Generation metrics", ""]
    if not gen.is_file():
        return [*lines, "No generation metrics yet (`factory-kit eval RECIPE --predict`).", ""]
    data = json.loads(gen.read_text(encoding="utf-8"))
    if _scores_other_weights(data, gen, output_dir):
        return [*lines, f"Stale: `{paths.relative(gen, project)}` scored other weights than this run's (e.g. the "
                "adapter before a `train --resume`); run `factory-kit eval RECIPE --no-benchmarks --predict` again.",
                ""]
    metrics = data.get("metrics", {})
    lines += _md_table(["Metric", "Value"], [[k, f"{v:.2f}" if isinstance(v, float) else v]
                                             for k, v in sorted(metrics.items())], "lr")
    return [*lines, f"Datasets: {', '.join(data.get('datasets', []))}; {data.get('rows')} rows; predictions in "
            f"`{paths.relative(eval_dir / 'generation' / 'generated_predictions.jsonl', project)}`.", ""]


def _judge_section(eval_dir: Path) -> list[str]:
    judge = eval_dir / "judge" / "judge.json"
    if not judge.is_file():
        return []
    data = json.loads(judge.read_text(encoding="utf-8"))
    lines = ["## LLM judge", ""]
    lines += _md_table(["Criterion", "Mean (1-5)"], [[k, "n/a" if v is None else f"{v:.2f}"]
                                                     for k, v in data.get("means", {}).items()], "lr")
    return [*lines, f"Judge `{data.get('model')}`: {data.get('scored')} scored, {data.get('unparseable')} unparseable, "
            f"{data.get('failed')} failed requests.", ""]


def _recipe_section(output_dir: Path, record: dict[str, Any], rendered: Any, project: Path) -> list[str]:
    """What the run kept in <output_dir>/rendered/ (train copies it there), so a later render of the
    recipe cannot change what this report says the run used; else the recipe files as they are now."""
    kept = output_dir / "rendered" / "recipe.yaml"
    lines = ["## Recipe", ""]
    if kept.is_file():
        return [*lines, f"`{paths.relative(kept, project)}` (merged, each value with its origin, as trained):", "",
                "```yaml", kept.read_text(encoding="utf-8").rstrip(), "```", ""]
    recipe_path = Path(record.get("recipe", ""))
    if recipe_path and not recipe_path.is_absolute():
        recipe_path = project / recipe_path
    chain = list(rendered.recipe.chain) if rendered else ([recipe_path] if recipe_path.is_file() else [])
    for path in chain:
        lines += [f"`{paths.relative(path, project)}` (as it is now):", "", "```yaml",
                  path.read_text(encoding="utf-8").rstrip(), "```", ""]
    if not chain:
        lines += [f"Recipe file `{record.get('recipe')}` not found.", ""]
    return lines


def _config_section(output_dir: Path, record: dict[str, Any], rendered: Any, project: Path) -> list[str]:
    lines = ["## Rendered config", ""]
    config = output_dir / "rendered" / "train.yaml"
    if not config.is_file() and rendered:
        config = project / rendered.context["build_dir"] / "train.yaml"
    if not config.is_file():
        config = output_dir / "training_args.yaml"
    if not config.is_file():
        return [*lines, "Rendered config not found.", ""]
    recorded = record.get("rendered", {}).get("train.yaml", "")
    actual = hashlib.sha256(config.read_bytes()).hexdigest()
    lines += [f"`{paths.relative(config, project)}`" + (f" (sha256 `{recorded[:16]}`)" if recorded else "") + ":", ""]
    if recorded and config.name == "train.yaml" and actual != recorded:
        lines += [f"**Warning:** `{paths.relative(config, project)}` changed since this run (sha256 `{actual[:16]}`, "
                  f"the run used `{recorded[:16]}`); showing the current file.", ""]
    return [*lines, "```yaml", config.read_text(encoding="utf-8").rstrip(), "```", ""]


def _dataset_section(record: dict[str, Any], rendered: Any, project: Path) -> list[str]:
    lines = ["## Datasets", ""]
    hashes = record.get("datasets", {})
    names = []
    if rendered:
        names = [*rendered.recipe.data["datasets"], *rendered.recipe.data["eval_datasets"]]
    names += [n for n in hashes if n not in names]
    reg_dir = project / rendered.context["dataset_dir"] if rendered else paths.registry_dir(project)
    try:
        entries = registry.load(reg_dir)
    except FactoryKitError:
        entries = {}
    cards = [dataset_card(n, entries.get(n), reg_dir, hashes.get(n)) for n in names]
    if not cards:
        return [*lines, "No datasets recorded.", ""]
    eval_names = set(rendered.recipe.data["eval_datasets"]) if rendered else set()
    rows = []
    for c in cards:
        chars = c.get("chars")
        rows.append([c["name"] + (" (eval)" if c["name"] in eval_names else ""), c.get("rows", "?"),
                     f"{chars['min']:,.0f} / {chars['median']:,.0f} / {chars['max']:,.0f}" if chars else "?",
                     f"`{c.get('source') or c.get('note', '')}`", f"`{(c.get('sha256') or '')[:16]}`"])
    return [*lines, *_md_table(["Dataset", "Rows", "Chars min / median / max", "Source", "sha256"], rows, "lrrll")]


def _reproduce_section(record: dict[str, Any], rendered: Any, results: list[tuple[Path, dict[str, Any]]],
                       project: Path) -> list[str]:
    lines = ["## Reproduce", ""]
    lines += _md_table(["Package", "Version"], [[k, v] for k, v in sorted(record.get("packages", {}).items())], "ll")
    lines += [f"Recipe sha256 `{record.get('recipe_sha256', '')}`.", ""]
    if record.get("rendered"):
        lines += _md_table(["Rendered file", "sha256"], [[k, f"`{v}`"] for k, v in sorted(record["rendered"].items())])
    if rendered:
        recipe = paths.relative(rendered.recipe.path, project)
        # `git checkout` only where the run recorded a commit: outside a git repository there is none
        checkout = [f"git checkout {record['git_commit']}"] if record.get("git_commit") else []
        lines += ["```sh", *checkout,
                  f"factory-kit train {recipe} --overwrite",
                  *(_eval_commands(recipe, results, project) or [f"factory-kit eval {recipe} --baseline"]), "```", ""]
    return lines


def _eval_commands(recipe: str, results: list[tuple[Path, dict[str, Any]]], project: Path) -> list[str]:
    """One `factory-kit eval` command per distinct benchmark run shown in the report (its files, shots,
    mode, limit), so "Reproduce" gives the same numbers, not just the default benchmarks."""
    commands: dict[str, None] = {}
    labels = {d.get("label") for _, d in results}
    for _, d in results:
        if d.get("label") == "base" and "finetuned" in labels:
            continue  # the --baseline run of the finetuned result below
        parts = ["factory-kit", "eval", recipe]
        if d.get("label") == "finetuned" and "base" in labels:
            parts.append("--baseline")
        elif d.get("label") == "merged":
            parts.append("--merged")
        for info in (d.get("benchmark_files") or {}).values():
            if info.get("path"):
                parts += ["-b", paths.relative(Path(info["path"]), project)]
        if d.get("shots"):
            parts += ["--shots", str(d["shots"])]
        if d.get("mode"):
            parts += ["--mode", str(d["mode"])]
        if d.get("limit"):
            parts += ["--limit", str(d["limit"])]
        if d.get("label") in ("finetuned", "merged", "base"):
            commands[" ".join(shlex.quote(p) for p in parts)] = None
    return list(commands)


# A tiny Markdown -> HTML for the subset build_markdown writes (headings, lists, tables, code, images).
def markdown_to_html(text: str, title: str) -> str:
    def inline(s: str) -> str:
        s = html.escape(s, quote=False)
        s = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", r'<img alt="\1" src="\2">', s)
        s = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)
        s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
        return s

    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            block = []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                block.append(lines[i])
                i += 1
            out.append("<pre><code>" + html.escape("\n".join(block)) + "</code></pre>")
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
        elif line.startswith("|"):
            table = []
            while i < len(lines) and lines[i].startswith("|"):
                table.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            i -= 1
            head, body = table[0], [r for r in table[2:]]
            out.append("<table><thead><tr>" + "".join(f"<th>{inline(c)}</th>" for c in head) + "</tr></thead><tbody>"
                       + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in body)
                       + "</tbody></table>")
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{inline(lines[i][2:])}</li>")
                i += 1
            i -= 1
            out.append("<ul>" + "".join(items) + "</ul>")
        elif line.startswith("> "):
            out.append(f"<blockquote>{inline(line[2:])}</blockquote>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
        i += 1
    style = ("body{font-family:sans-serif;max-width:960px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px}"
             "td:not(:first-child){text-align:right}pre{background:#f6f8fa;padding:1em;overflow:auto}"
             "img{max-width:100%}")
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n")


def build_report(run: str, *, out: Path | None = None, html: bool = True, project: Path | None = None) -> list[Path]:
    """Write ``report.md`` (+ ``report.html``, ``loss.png``) for RUN; returns the files written."""
    project = project or paths.project_dir()
    output_dir, record, rendered = _find_run(run, project)
    out_dir = Path(out) if out else output_dir / "report"
    if not out_dir.is_absolute():
        out_dir = project / out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    text = build_markdown(output_dir, record, rendered, project, out_dir)
    written = [io.write_text(out_dir / "report.md", text)]
    if (out_dir / "loss.png").is_file():
        written.append(out_dir / "loss.png")
    if html:
        title = f"Training report: {rendered.recipe.name if rendered else output_dir.name}"
        written.append(io.write_text(out_dir / "report.html", markdown_to_html(text, title)))
    return written
