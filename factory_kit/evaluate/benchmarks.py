"""Multiple-choice benchmarks: local files -> lm-eval tasks -> per-subject accuracy.

lm-eval (lm-evaluation-harness) does the running and scoring. factory-kit only does what it
lacks for local medical exams: validate the files, generate one task YAML per
(benchmark, subject) with ``dataset_path: json``, run ``lm_eval`` as a child process, and
read its per-sample log back into per-subject and overall accuracy.

Benchmark file: JSON lines (or one JSON array of such objects) ``{"id", "subject", "question", "options": {"A": ..} or [..],
"answer": "B", "explanation"}``. An optional sibling ``NAME.dev.jsonl`` supplies few-shot
examples (C-Eval style); without it, shots come from the other items of the same subject
(lm-eval never shows an item as its own example).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory_kit.run import launch
from factory_kit.core import io, paths, progress
from factory_kit.core.errors import FactoryKitError
from factory_kit.data import mcq_options
from factory_kit.data.mcq_options import LETTERS
from factory_kit.evaluate import follow
from factory_kit.recipe import catalog

MODES = ("loglikelihood", "generate")
PROMPT_HEADER = "以下是中国{subject}考试的单项选择题，请选出其中的正确答案。\n\n"
# items without a subject are grouped under the file name, which does not belong in the prompt
PROMPT_HEADER_NO_SUBJECT = "以下是单项选择题，请选出其中的正确答案。\n\n"
# lm-eval's `!function fk_mcq.process_results`: the same letter extraction factory-kit reads back with
EXTRACT_HOOK = "from factory_kit.evaluate.extract import process_results  # noqa: F401\n"


@dataclass
class Benchmark:
    name: str
    path: Path
    items: list[dict[str, Any]]
    dev: list[dict[str, Any]] = field(default_factory=list)
    dev_path: Path | None = None

    @property
    def subjects(self) -> list[str]:
        return sorted({it["subject"] for it in self.items})

    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def _where(path: Path, line: int) -> str:
    return f"{path}:{line}"


def normalize_item(raw: Any, path: Path, line: int, default_subject: str, where: str | None = None) -> dict[str, Any]:
    """Check one benchmark row and bring it to one shape; FactoryKitError names file:line."""
    where = where or _where(path, line)
    if not isinstance(raw, dict):
        raise FactoryKitError(f"{where}: expected one JSON object per line (JSON Lines), got {type(raw).__name__}; "
                              "convert the file with `factory-kit data import FILE --format mcq`")
    question = raw.get("question")
    if not isinstance(question, str) or not question.strip():
        raise FactoryKitError(f"{where}: missing `question` (non-empty text)")
    options = raw.get("options")
    if options is None or options == {} or options == []:
        raise FactoryKitError(f"{where}: missing `options`: give a map {{\"A\": ..., \"B\": ...}} or a list")
    if isinstance(options, list):
        if len(options) > mcq_options.MAX_OPTIONS:
            raise FactoryKitError(f"{where}: {len(options)} options; at most {mcq_options.MAX_OPTIONS} are supported")
        options = {mcq_options.letter(i): text for i, text in enumerate(options)}
    elif isinstance(options, dict):
        options = {mcq_options.normalize_key(k): v for k, v in options.items()}
        bad = [k for k in options if not mcq_options.is_letter(k)]
        if bad:
            raise FactoryKitError(f"{where}: option key {bad[0]!r} is not a letter A-{LETTERS[-1]}")
        options = dict(sorted(options.items()))
        expected = mcq_options.letters(len(options))
        if "".join(options) != expected:
            raise FactoryKitError(f"{where}: option letters {''.join(options)} must be consecutive from A "
                                  f"(expected {expected})")
    else:
        raise FactoryKitError(f"{where}: `options` must be a map or a list, got {type(options).__name__}")
    if len(options) < 2:
        raise FactoryKitError(f"{where}: only {len(options)} option; a multiple-choice item needs at least 2")
    for letter, text in options.items():
        if not isinstance(text, (str, int, float)) or not str(text).strip():
            raise FactoryKitError(f"{where}: option {letter} is empty")
    answer = raw.get("answer")
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        raise FactoryKitError(f"{where}: missing `answer` (one option letter, e.g. \"B\")")
    if not isinstance(answer, str):
        raise FactoryKitError(f"{where}: `answer` must be one option letter like \"B\", got {answer!r}")
    answer = answer.strip().upper()
    if answer not in options and len(mcq_options.parse_answer(answer) or ()) > 1:
        raise FactoryKitError(f"{where}: answer {raw.get('answer')!r}: multi-answer items are not supported for "
                              "scoring (one letter expected); drop the item (`factory-kit data import --format mcq` "
                              "leaves them out) or split it")
    if answer not in options:
        raise FactoryKitError(
            f"{where}: answer {raw.get('answer')!r} is not among the options ({', '.join(options)})")
    subject = raw.get("subject") or default_subject
    return {
        "id": str(raw.get("id") if raw.get("id") is not None else line),
        "subject": str(subject).strip(),
        "question": question.strip(),
        "options": {k: str(v).strip() for k, v in options.items()},
        "answer": answer,
    }


def _json_array(path: Path, text: str) -> list[Any] | None:
    """The items of a file holding one JSON array (of item objects), or None for JSON Lines."""
    if not text.lstrip().startswith("["):
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None  # e.g. one array per line: reported line by line below
    if not isinstance(data, list):
        return None
    return data


def read_items(path: Path, default_subject: str) -> list[dict[str, Any]]:
    """Items of a JSON Lines file (one object per line) or of a JSON array of objects."""
    if not path.is_file():
        raise FactoryKitError(f"{path}: benchmark file not found")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # a BOM (Notepad, Excel) is fine
    except UnicodeDecodeError as exc:
        line_no = data.count(b"\n", 0, exc.start) + 1
        raise FactoryKitError(
            f"{_where(path, line_no)}: not UTF-8 (byte 0x{data[exc.start]:02x}); re-save the file as UTF-8, e.g. "
            f"`iconv -f GB18030 -t UTF-8 {path.name} > {path.stem}.utf8{path.suffix}`, or import it with "
            "`factory-kit data import FILE --format mcq`, which reads GBK/GB18030") from None
    items, seen = [], {}
    array = _json_array(path, text)
    if array is not None:
        rows = [(n, f"{path}: item {n}", raw) for n, raw in enumerate(array, 1)]
        unit = "item"
    else:
        rows = []
        for line_no, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise FactoryKitError(f"{_where(path, line_no)}: not valid JSON: {exc.msg}") from None
            rows.append((line_no, _where(path, line_no), raw))
        unit = "line"
    for number, where, raw in rows:
        if array is not None and not isinstance(raw, dict):
            raise FactoryKitError(f"{where}: expected a JSON object (one benchmark item), got {type(raw).__name__}")
        item = normalize_item(raw, path, number, default_subject, where=where)
        if item["id"] in seen:
            raise FactoryKitError(f"{where}: duplicate id {item['id']!r} (first on {unit} {seen[item['id']]})")
        seen[item["id"]] = number
        items.append(item)
    if not items:
        raise FactoryKitError(f"{path}: no benchmark items (empty file)")
    return items


def load_benchmark(path: str | Path, name: str | None = None) -> Benchmark:
    """Read and validate one benchmark file (and its optional ``.dev.jsonl`` few-shot file)."""
    path = Path(path)
    name = name or path.name.removesuffix(".jsonl").removesuffix(".json")
    items = read_items(path, default_subject=name)
    dev_path = path.with_name(f"{name}.dev.jsonl")
    dev = read_items(dev_path, default_subject=name) if dev_path.is_file() else []
    return Benchmark(name, path, items, dev, dev_path if dev else None)


def resolve_benchmarks(specs: list[str] | tuple[str, ...], project: Path | None = None) -> list[Benchmark]:
    """FILE or NAME (``data/benchmarks/NAME.jsonl``) for each spec; every file there when none."""
    project = project or paths.project_dir()
    folder = paths.benchmark_dir(project)
    available = sorted(p for p in folder.glob("*.jsonl") if not p.name.endswith(".dev.jsonl")) \
        if folder.is_dir() else []
    if not specs:
        if not available:
            raise FactoryKitError(
                f"no benchmarks in {folder}: import a multiple-choice exam (`factory-kit data import ...`) "
                "or pass --benchmark FILE")
        return [load_benchmark(p) for p in available]
    out, names = [], set()
    for spec in specs:
        if spec.startswith("hf:"):
            bench = hub_benchmark(spec, project)
            if bench.name in names:
                raise FactoryKitError(f"benchmark {bench.name!r} given twice")
            names.add(bench.name)
            out.append(bench)
            continue
        candidate = Path(spec).expanduser()
        if not candidate.is_absolute():
            candidate = project / candidate
        if candidate.is_file():
            bench = load_benchmark(candidate)
        elif (folder / f"{spec}.jsonl").is_file():
            bench = load_benchmark(folder / f"{spec}.jsonl")
        else:
            known = ", ".join(p.stem for p in available) or "none"
            raise FactoryKitError(f"benchmark {spec!r} not found: not a file, and not in {folder} (there: {known})")
        if bench.name in names:
            first = next(b.path for b in out if b.name == bench.name)
            if Path(first).resolve() == Path(bench.path).resolve():
                raise FactoryKitError(f"benchmark {bench.name!r} given twice")
            raise FactoryKitError(f"benchmarks {first} and {bench.path} have the same name {bench.name!r} "
                                  "(results are keyed by file name): rename one of them")
        names.add(bench.name)
        out.append(bench)
    return out


def hub_benchmark(spec: str, project: Path) -> Benchmark:
    """``hf:OWNER/NAME[:CONFIG][@SPLIT]`` (or a local dataset folder): C-Eval/CMMLU-shaped rows
    (``question``, ``A``..``D`` or ``options``/``choices``, ``answer``) converted to a local file
    under ``data/benchmarks/.hub/`` and validated like any other benchmark."""
    body = spec[3:]
    split = "test"
    if "@" in body:
        body, split = body.rsplit("@", 1)
    config = None
    if ":" in body:
        body, config = body.split(":", 1)
    try:
        import datasets

        data = datasets.load_dataset(body, config, split=split)
    except Exception as exc:  # offline, unknown id, no such split: one line
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FactoryKitError(f"{spec}: cannot load from the hub or disk: {message}") from None
    subject = config or Path(body).name
    rows = []
    for i, row in enumerate(data):
        options = row.get("options") or row.get("choices")
        if options is None:
            options = {k: row[k] for k in LETTERS if row.get(k) not in (None, "")}
        answer = row.get("answer")
        if isinstance(answer, int) and not isinstance(answer, bool):
            answer = LETTERS[answer] if 0 <= answer < len(LETTERS) else str(answer)
        rows.append({"id": str(row.get("id", i)), "subject": row.get("subject") or subject,
                     "question": row.get("question"), "options": options, "answer": answer})
    name = _slug(f"{body}-{config or ''}-{split}").rsplit("_", 1)[0] or "hub"
    path = paths.benchmark_dir(project) / ".hub" / f"{name}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_jsonl(path, rows)
    return load_benchmark(path, name)


# ---------------------------------------------------------------------------------------------
# lm-eval task generation

def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    digest = hashlib.sha1(text.encode()).hexdigest()[:6]
    return f"{slug[:32]}_{digest}" if slug else digest


def prompt_text(item: dict[str, Any], mode: str) -> str:
    lines = [item["question"]]
    lines += mcq_options.option_lines(item["options"])
    if mode == "generate":
        lines.append("请先思考，然后在最后一行写出“答案：”和正确选项的字母。")
    lines.append("答案：")
    return "\n".join(lines)


def _doc(item: dict[str, Any], mode: str, think: tuple[str, str] | None = None) -> dict[str, Any]:
    letters = list(item["options"])
    doc = {
        "id": item["id"],
        "subject": item["subject"],
        "prompt": prompt_text(item, mode),
        "letters": letters,
        "label": letters.index(item["answer"]),
        "answer": item["answer"],
    }
    if think:  # the family's thinking markers: the answer is read after the closing one (extract.py)
        doc["think"] = list(think)
    return doc


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    io.write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


@dataclass
class TaskSet:
    include_dir: Path
    tasks: dict[str, tuple[str, str]]  # task name -> (benchmark, subject)
    counts: dict[str, int]


def write_tasks(benchmarks: list[Benchmark], work_dir: Path, *, shots: int = 0, mode: str = "loglikelihood",
                max_gen_tokens: int = 1024, stop_words: tuple[str, ...] | list[str] = (),
                think: tuple[str, str] | None = None) -> TaskSet:
    """One lm-eval task YAML (+ data file) per (benchmark, subject) under ``work_dir/tasks``.
    ``stop_words`` and ``think`` (the model family's, from the model catalog) end and split generations."""
    if mode not in MODES:
        raise FactoryKitError(f"mode {mode!r}: choose one of {', '.join(MODES)}")
    if not 0 <= shots <= 5:
        raise FactoryKitError(f"--shots {shots}: choose 0 to 5")
    import yaml

    include = work_dir / "tasks"
    if include.exists():
        shutil.rmtree(include)
    include.mkdir(parents=True)
    if mode == "generate":  # lm-eval loads the scoring hook from a file next to the task YAMLs
        (include / "fk_mcq.py").write_text(EXTRACT_HOOK, encoding="utf-8")
    tasks: dict[str, tuple[str, str]] = {}
    counts: dict[str, int] = {}
    for bench in benchmarks:
        for subject in bench.subjects:
            name = f"fk_{_slug(bench.name)}__{_slug(subject)}"
            rows = [_doc(it, mode, think) for it in bench.items if it["subject"] == subject]
            _write_jsonl(include / f"{name}.test.jsonl", rows)
            data_files = {"test": str(include / f"{name}.test.jsonl")}
            config: dict[str, Any] = {
                "task": name,
                "dataset_path": "json",
                "dataset_kwargs": {"data_files": data_files},
                "test_split": "test",
                "doc_to_text": "{{prompt}}",
                "description": (PROMPT_HEADER_NO_SUBJECT if subject == bench.name
                                else PROMPT_HEADER.format(subject=subject)),
                "num_fewshot": shots,
                "metadata": {"version": 1.0, "benchmark": bench.name, "subject": subject},
            }
            if shots:
                config["fewshot_config"] = {"sampler": "first_n"}
                dev_same = [it for it in bench.dev if it["subject"] == subject]
                if len(dev_same) >= shots:
                    pool = dev_same  # C-Eval style: this subject's dev items
                elif len(rows) > shots:
                    pool = None  # the subject's other test items; lm-eval drops the item itself
                else:
                    # Too few items in this subject: dev items, then other subjects' items
                    # (never this task's own test items, which lm-eval would not exclude here).
                    pool = dev_same + [it for it in bench.dev + bench.items if it["subject"] != subject]
                    if len(pool) < shots:
                        raise FactoryKitError(
                            f"{bench.path}: --shots {shots} needs {shots} example items for subject "
                            f"{subject!r} besides the one evaluated; there are {len(pool) + len(rows) - 1}")
                if pool is None:
                    config["fewshot_split"] = "test"
                else:
                    _write_jsonl(include / f"{name}.fewshot.jsonl", [_doc(it, mode, think) for it in pool[:shots]])
                    data_files["fewshot"] = str(include / f"{name}.fewshot.jsonl")
                    config["fewshot_split"] = "fewshot"
            if mode == "loglikelihood":
                config.update({
                    "output_type": "multiple_choice",
                    "doc_to_choice": "letters",
                    "doc_to_target": "label",
                    "target_delimiter": " ",
                    "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
                })
            else:
                config.update({
                    "output_type": "generate_until",
                    "doc_to_target": "answer",
                    "target_delimiter": " ",
                    "generation_kwargs": {"until": list(stop_words), "do_sample": False,
                                          "max_gen_toks": max_gen_tokens},
                    "process_results": "!function fk_mcq.process_results",
                    "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
                })
            text = yaml.safe_dump(config, allow_unicode=True, sort_keys=False)
            text = text.replace("'!function fk_mcq.process_results'", "!function fk_mcq.process_results")
            (include / f"{name}.yaml").write_text(text, encoding="utf-8")
            tasks[name] = (bench.name, subject)
            counts[name] = len(rows)
    return TaskSet(include, tasks, counts)


# ---------------------------------------------------------------------------------------------
# Running lm-eval

def default_device() -> str:
    return "cuda" if shutil.which("nvidia-smi") else "cpu"


def model_args(model: str | Path, adapter: str | Path | None = None, *, dtype: str | None = None) -> str:
    for label, value in (("model", model), ("adapter", adapter)):
        if value is not None and "," in str(value):
            raise FactoryKitError(f"{label} path {value} contains a comma, which lm-eval's --model_args cannot carry")
    parts = [f"pretrained={model}"]
    if adapter:
        parts.append(f"peft={adapter}")
    if dtype:
        parts.append(f"dtype={dtype}")
    parts.append("trust_remote_code=True")
    return ",".join(parts)


def check_model_dirs(model: str | Path, adapter: str | Path | None, *,
                     use_local: str = "set `model: models/NAME` in the recipe") -> None:
    """Fail before lm-eval starts (and before ~10 s of imports) when a path is plainly wrong, or names
    a hub model that is not in the local cache (lm-eval runs offline). ``use_local``: how the user
    points at a local copy instead (a recipe key, or `--model` for `eval --model`)."""
    from factory_kit.recipe.checks import HUB_ID, hub_cached

    model_path = Path(model)
    looks_local = model_path.is_absolute() or str(model).startswith((".", "~")) or model_path.exists()
    if looks_local and not (model_path / "config.json").is_file():
        raise FactoryKitError(f"model {model}: no config.json there (not a model folder)")
    if not looks_local and HUB_ID.match(str(model)) and not hub_cached(str(model)):
        raise FactoryKitError(
            f"model {model} is not a folder here nor in the local Hugging Face cache, and benchmarks run offline: "
            f"download it (`hf download {model} --local-dir models/NAME`) and {use_local}")
    if adapter is not None:
        adapter_path = Path(adapter)
        if not adapter_path.exists():
            raise FactoryKitError(f"adapter {adapter} does not exist (train first, or check --adapter)")
        if not (adapter_path / "adapter_config.json").is_file():
            raise FactoryKitError(f"adapter {adapter}: no adapter_config.json there (not a PEFT adapter folder)")


def run_lm_eval(taskset: TaskSet, model: str | Path, adapter: str | Path | None, out_dir: Path, *,
                device: str | None = None, batch_size: str = "8", chat_template: bool = False,
                limit: int | None = None, echo: bool = True, dtype: str | None = None, step: str = "lm-eval",
                terms: dict[str, str] | None = None) -> Path:
    """``lm_eval run`` on the generated tasks; returns the folder lm-eval wrote results into.

    A progress bar named ``step`` shows the elapsed time while lm-eval loads the model, then
    items done, rate and ETA from lm-eval's own request bar."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    command = [
        launch.executable("lm_eval"), "run",
        "--model", "hf", "--model_args", model_args(model, adapter, dtype=dtype),
        "--tasks", ",".join(taskset.tasks),
        "--include_path", str(taskset.include_dir),
        "--device", device or default_device(),
        "--batch_size", str(batch_size),
        "--output_path", str(out_dir),
        "--log_samples",
        "--seed", "1234",
    ]
    if chat_template:
        command.append("--apply_chat_template")
    if limit:
        command += ["--limit", str(limit)]
    env = {**launch.OFFLINE_ENV, "HF_ALLOW_CODE_EVAL": "0"}
    items = sum(min(n, limit) if limit else n for n in taskset.counts.values())
    with progress.bar(step, total=None, unit="items") as bar:
        on_line = follow.follower(bar, lambda desc: desc.startswith("Running ") and desc.endswith(" requests"),
                                  scale=items, echo=echo)
        launch.run(command, cwd=out_dir, env=env, log_path=out_dir.parent / f"{out_dir.name}.log", echo=False,
                   on_line=on_line, terms=terms)
    return out_dir


def _latest(folder: Path, pattern: str) -> Path | None:
    found = sorted(folder.rglob(pattern), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _loglik_choice(resps: Any) -> int | None:
    """Index of the option with the highest log-likelihood from a logged multiple_choice sample."""
    scores = []
    for resp in resps or []:
        value = resp[0] if isinstance(resp, (list, tuple)) else resp
        if isinstance(value, (list, tuple)):
            value = value[0]
        try:
            scores.append(float(value))
        except (TypeError, ValueError):
            return None
    if not scores:
        return None
    return max(range(len(scores)), key=lambda i: scores[i])


def _context_of(row: dict[str, Any]) -> str | None:
    args = row.get("arguments")
    if isinstance(args, dict) and args:
        first = next(iter(args.values()))
        if isinstance(first, dict):
            value = first.get("arg_0")
            return value if isinstance(value, str) else None
    return None


def parse_results(out_dir: Path, taskset: TaskSet, mode: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Per-benchmark, per-subject and overall accuracy, and one row per item, from lm-eval's files."""
    from factory_kit.evaluate.extract import extract_letter

    results_file = _latest(out_dir, "results_*.json")
    if results_file is None:
        raise FactoryKitError(f"lm-eval exited 0 but wrote no results_*.json under {out_dir}")
    lm_results = json.loads(results_file.read_text(encoding="utf-8"))
    items: list[dict[str, Any]] = []
    for task, (bench, subject) in taskset.tasks.items():
        samples_file = _latest(out_dir, f"samples_{task}_*.jsonl")
        if samples_file is None:
            raise FactoryKitError(f"lm-eval wrote no per-item samples for task {task} under {out_dir}")
        rows = [json.loads(line) for line in samples_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        for row in rows:
            doc = row["doc"]
            context = _context_of(row)
            if context is not None and context.count(doc["prompt"]) > 1:
                raise FactoryKitError(f"task {task} item {doc['id']}: the item appears in its own few-shot "
                                      "examples (answer leak); refusing to score it")
            if mode == "loglikelihood":
                index = _loglik_choice(row.get("filtered_resps") or row.get("resps"))
                predicted = doc["letters"][index] if index is not None else None
            else:
                resps = row.get("filtered_resps") or row.get("resps") or [""]
                text = resps[0]
                while isinstance(text, list):
                    text = text[0] if text else ""
                predicted = extract_letter(str(text), doc["letters"])
            acc = float(row.get("acc", 0.0))
            if mode == "loglikelihood" and predicted is not None and (predicted == doc["answer"]) != (acc == 1.0):
                raise FactoryKitError(f"lm-eval sample for {task} item {doc['id']}: its acc={acc} disagrees with "
                                      f"the highest-likelihood option {predicted} (answer {doc['answer']})")
            item = {"benchmark": bench, "subject": subject, "id": doc["id"], "answer": doc["answer"],
                    "predicted": predicted, "correct": acc == 1.0}
            if mode == "generate":
                item["output"] = text
            items.append(item)
        task_acc = lm_results.get("results", {}).get(task, {}).get("acc,none")
        mine = sum(1 for it in items if it["benchmark"] == bench and it["subject"] == subject and it["correct"])
        if task_acc is not None and len(rows) and abs(task_acc - mine / len(rows)) > 1e-9:
            raise FactoryKitError(f"lm-eval's accuracy for {task} ({task_acc}) disagrees with its samples")
    summary = summarize(items)
    summary["lm_eval"] = {
        "version": lm_results.get("versions") and lm_results.get("lm_eval_version") or lm_results.get("lm_eval_version"),
        "git_hash": lm_results.get("git_hash"),
        "results_file": str(results_file),
        "total_evaluation_time_seconds": lm_results.get("total_evaluation_time_seconds"),
    }
    return summary, items


def _acc(correct: int, n: int) -> dict[str, Any]:
    return {"accuracy": correct / n if n else 0.0, "correct": correct, "n": n}


def summarize(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy per subject, per benchmark (micro and macro over subjects) and overall."""
    benches: dict[str, Any] = {}
    for it in items:
        b = benches.setdefault(it["benchmark"], {"subjects": {}})
        s = b["subjects"].setdefault(it["subject"], [0, 0])
        s[0] += int(it["correct"])
        s[1] += 1
    out: dict[str, Any] = {"benchmarks": {}}
    total_c = total_n = 0
    for name, b in sorted(benches.items()):
        subjects = {subj: _acc(c, n) for subj, (c, n) in sorted(b["subjects"].items())}
        c = sum(v["correct"] for v in subjects.values())
        n = sum(v["n"] for v in subjects.values())
        total_c, total_n = total_c + c, total_n + n
        out["benchmarks"][name] = {**_acc(c, n), "macro_accuracy":
                                   sum(v["accuracy"] for v in subjects.values()) / len(subjects),
                                   "subjects": subjects}
    out["overall"] = _acc(total_c, total_n)
    return out


def evaluate(benchmarks: list[Benchmark], model: str | Path, adapter: str | Path | None, work_dir: Path, *,
             label: str, shots: int = 0, mode: str = "loglikelihood", device: str | None = None,
             batch_size: str = "8", chat_template: bool | None = None, max_gen_tokens: int = 1024,
             limit: int | None = None, echo: bool = True, extra: dict[str, Any] | None = None,
             name: str | None = None, step: str = "", terms: dict[str, str] | None = None) -> Path:
    """Run the benchmarks on one model (+ adapter); write ``work_dir/<name>.json`` and ``.items.jsonl``
    (``name`` defaults to ``label``; ``step``, e.g. "2/3 ", numbers its progress bar)."""
    name = name or label
    check_model_dirs(model, adapter, **({"use_local": terms["use_local"]} if terms else {}))
    if chat_template is None:
        chat_template = mode == "generate"
    started = time.time()
    family = catalog.family_of(str(model))  # its stop words and thinking markers (lm-eval adds the EOS itself)
    taskset = write_tasks(benchmarks, work_dir / f".{name}", shots=shots, mode=mode, max_gen_tokens=max_gen_tokens,
                          stop_words=family.stop_words if family else (),
                          think=family.think_markers if family else None)
    out_dir = run_lm_eval(taskset, model, adapter, work_dir / f".{name}" / "lm_eval", device=device,
                          batch_size=batch_size, chat_template=chat_template, limit=limit, echo=echo,
                          step=f"{step}lm-eval {label}: {'+'.join(b.name for b in benchmarks)}", terms=terms)
    summary, items = parse_results(out_dir, taskset, mode)
    record = {
        "kind": "benchmark",
        "label": label,
        "model": str(model),
        "adapter": str(adapter) if adapter else None,
        "mode": mode,
        "shots": shots,
        "chat_template": chat_template,
        "limit": limit,
        "benchmark_files": {b.name: {"path": str(b.path), "sha256": b.sha256(), "items": len(b.items),
                                     "dev": str(b.dev_path) if b.dev_path else None} for b in benchmarks},
        **summary,
        "seconds": round(time.time() - started, 2),
        "items_file": f"{name}.items.jsonl",
        **(extra or {}),
    }
    work_dir.mkdir(parents=True, exist_ok=True)
    _write_jsonl(work_dir / f"{name}.items.jsonl", items)
    path = work_dir / f"{name}.json"
    return io.write_json(path, record)


def load_result(path: str | Path) -> dict[str, Any]:
    """A result file written by ``evaluate`` (checked enough to compare/report it)."""
    path = Path(path)
    if not path.is_file():
        raise FactoryKitError(f"{path}: result file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FactoryKitError(f"{path}: not a JSON result file: {exc.msg}") from None
    if not isinstance(data, dict) or "benchmarks" not in data or "overall" not in data:
        raise FactoryKitError(f"{path}: not a factory-kit benchmark result (no `benchmarks`/`overall`)")
    data.setdefault("label", path.stem)
    return data


def accuracy_table(result: dict, title: str):
    """Per-subject and overall accuracy as a rich table (benchmark, subject, n, accuracy %)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col, justify in (("benchmark", "left"), ("subject", "left"), ("n", "right"), ("accuracy %", "right")):
        table.add_column(col, justify=justify)
    for bench, b in result["benchmarks"].items():
        for subject, s in b["subjects"].items():
            table.add_row(bench, subject, str(s["n"]), f"{100 * s['accuracy']:.1f}")
        if len(b["subjects"]) > 1:
            table.add_row(f"[bold]{bench}[/]", "(all)", str(b["n"]), f"[bold]{100 * b['accuracy']:.1f}[/]")
    o = result["overall"]
    table.add_row("[bold]overall[/]", "", str(o["n"]), f"[bold]{100 * o['accuracy']:.1f}[/]")
    return table
