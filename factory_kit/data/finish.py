"""After the rows are written: train/val/test splits, the held-out benchmark split, stale files of
an earlier import of the same name, and the registry entries; all staged as temp files and
registry changes in an :class:`~factory_kit.data.commit.Outputs`, committed together by the importer.
Also what the report says about the rows: their registered format and the notes.
"""

from __future__ import annotations

import contextlib
import difflib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from factory_kit.core import io, paths
from factory_kit.core.errors import FactoryKitError
from factory_kit.data import registry
from factory_kit.data import split as split_mod
from factory_kit.data.commit import Outputs
from factory_kit.data.formats.conversation import TOOL_TEXT_DROPPED, TRAILING_TURN_DROPPED
from factory_kit.data.store import SPLIT_SUFFIX, data_file, dev_file, meta_file, read_meta

TRAIN, VAL, TEST = range(3)  # split labels, in split_mod.SPLIT_NAMES order


@dataclass
class Registered:
    """What :func:`register_import` did."""

    entries: dict[str, dict[str, Any]]  # name -> dataset_info entry, NAME first
    splits: dict[str, int] = field(default_factory=dict)  # train/val/test -> rows
    benchmark: Path | None = None
    benchmark_dev: Path | None = None
    multi_answer_dropped: int = 0


def held_out(splits: dict[str, int]) -> str | None:
    """The split a benchmark of a split import holds (the model is not trained on it): test when
    there is a test part, else val; None without a split. Few-shot dev items are then the val
    part when there is a test part."""
    if not splits:
        return None
    return "test" if splits.get("test") else "val" if splits.get("val") else None


def register_import(project: Path, name: str, entry: dict[str, Any], outputs: Outputs, out_path: Path, *,
                    ratios: tuple[float, float, float] | None, seed: int, strat_key: str | None,
                    strata: Counter, accepted: int, bench_path: Path | None,
                    previous: dict[str, Any]) -> Registered:
    """Split (when ``ratios``), hold the benchmark out of training, clean up what an earlier
    import of NAME left, and stage the registry entries of every dataset this import made. Reads
    and writes only temp files staged in ``outputs``: nothing is in place until it commits."""
    rows = outputs.staged(out_path)
    assert rows is not None
    check_entry(entry, rows)
    reg_dir = paths.registry_dir(project)
    done = Registered({name: {"file_name": registry.file_name_for(reg_dir, out_path), **entry}},
                      benchmark=bench_path)
    if ratios:
        labels = _write_splits(project, name, entry, outputs, rows, ratios, seed, strat_key,
                               strata if strat_key else {"": accepted}, accepted, bench_path is not None, done)
        if bench_path is not None and labels is not None and (done.splits.get("val") or done.splits.get("test")):
            done.benchmark_dev = _split_benchmark(project, name, outputs, bench_path, labels, done.splits)
    # Splits an earlier import of NAME made and this one did not: remove their files and
    # entries (only those: a dataset imported on its own under such a name has its own meta).
    stale = []
    for split_name in previous.get("registered", []):
        if split_name == name or split_name in done.entries or read_meta(project, split_name) is not None:
            continue
        stale.append(split_name)
        outputs.delete(data_file(project, split_name))
    if bench_path is not None:
        done.multi_answer_dropped = _drop_multi_answer(outputs, [bench_path, done.benchmark_dev])
        if outputs.staged(bench_path) is None:
            done.benchmark = None
        if done.benchmark_dev is not None and outputs.staged(done.benchmark_dev) is None:
            done.benchmark_dev = None
    old_dev = previous.get("benchmark_dev")
    if old_dev and done.benchmark_dev is None:
        outputs.delete(project / old_dev)  # few-shot items of an earlier split: now in the benchmark
    current = registry.load(reg_dir)
    outputs.drop += [n for n in stale if n in current and current[n].get("file_name", "").endswith(f"{n}.jsonl")]
    outputs.entries.update(done.entries)
    return done


def _write_splits(project: Path, name: str, entry: dict[str, Any], outputs: Outputs, rows: Path,
                  ratios: tuple[float, float, float], seed: int, strat_key: str | None,
                  strata: dict[str, int], accepted: int, want_labels: bool, done: Registered) -> bytearray | None:
    """Write NAME_train/_val/_test (staged), record them in ``done``; returns each row's split
    label when ``want_labels`` (the benchmark is split the same way)."""
    labels = split_mod.assign(dict(strata), ratios, seed)
    finals = [data_file(project, name + SPLIT_SUFFIX[s]) if ratios[i] > 0 else None
              for i, s in enumerate(split_mod.SPLIT_NAMES)]
    tmps = [outputs.temp(p) if p else None for p in finals]
    row_labels = bytearray(accepted) if want_labels else None

    def on_row(i: int, label: int) -> None:
        row_labels[i] = label  # type: ignore[index]

    written = split_mod.write_splits(rows, tmps, labels, strat_key, on_row if row_labels is not None else None)
    for i, s in enumerate(split_mod.SPLIT_NAMES):
        final, tmp = finals[i], tmps[i]
        if final is None or tmp is None or written[i] == 0:
            continue
        outputs.put(final, tmp)
        outputs.delete(meta_file(project, name + SPLIT_SUFFIX[s]))  # the name now holds a split of NAME
        done.splits[s] = written[i]
        done.entries[name + SPLIT_SUFFIX[s]] = {"file_name": registry.file_name_for(paths.registry_dir(project), final),
                                                **entry}
    return row_labels


def _split_benchmark(project: Path, name: str, outputs: Outputs, bench_path: Path, labels: bytearray,
                     splits: dict[str, int]) -> Path | None:
    """With a split, the benchmark holds only items the model is not trained on: the
    :func:`held_out` items in ``NAME.jsonl``, and the val items as few-shot examples in
    ``NAME.dev.jsonl`` when the test part is the held-out one."""
    bench_label = TEST if held_out(splits) == "test" else VAL
    dev_label = VAL if bench_label == TEST and splits.get("val") else None
    dev_path = dev_file(project, name)
    outs = {bench_label: bench_path, **({dev_label: dev_path} if dev_label is not None else {})}
    tmps = {k: outputs.temp(p) for k, p in outs.items()}
    source = outputs.staged(bench_path)
    assert source is not None
    with contextlib.ExitStack() as stack:
        handles = {k: stack.enter_context(open(tmp, "wb")) for k, tmp in tmps.items()}
        with open(source, "rb") as fh:
            for i, line in enumerate(fh):
                h = handles.get(labels[i])
                if h is not None:
                    h.write(line)
    for k, p in outs.items():
        outputs.put(p, tmps[k])
    source.unlink()  # the whole benchmark, now split
    return dev_path if dev_label is not None else None


def _drop_multi_answer(outputs: Outputs, files: list[Path | None]) -> int:
    """lm-eval's multiple_choice scores one gold answer per item, so multi-answer items (``"AC"``)
    stay in the SFT rows but leave the benchmark files; a file left empty is not written (and an
    earlier import's is removed)."""
    dropped = 0
    for final in files:
        path = outputs.staged(final) if final is not None else None
        if final is None or path is None:
            continue
        kept = []
        with open(path, "rb") as fh:
            for line in fh:
                if len(str(orjson.loads(line).get("answer", ""))) > 1:
                    dropped += 1
                else:
                    kept.append(line)
        if kept:
            io.write_bytes(path, b"".join(kept))
        else:
            outputs.delete(final)
    return dropped


def check_entry(entry: dict[str, Any], out_path: Path) -> None:
    """Guard against a registry entry naming a column the rows do not have."""
    with open(out_path, "rb") as fh:
        row = orjson.loads(fh.readline())
    missing = [v for v in entry.get("columns", {}).values() if v not in row]
    if missing:  # pragma: no cover - a bug in an importer, not a user error
        raise FactoryKitError(f"{out_path}: internal error: registry columns {missing} not in the rows")


def output_format(entry: dict[str, Any]) -> str:
    if entry.get("columns", {}).get("prompt") == "text" and len(entry["columns"]) == 1:
        return "pt"
    if entry.get("ranking"):
        return f"{entry['formatting']}+ranking"
    if "kto_tag" in entry.get("columns", {}):
        return "alpaca+kto"
    if entry.get("tags", {}).get("role_tag") == "role":
        return "sharegpt(openai)"
    return entry["formatting"]


def note_lines(counts: Counter) -> list[str]:
    """One line per thing done to the rows that the user should know about."""
    out = []
    n = counts[TOOL_TEXT_DROPPED]
    if n:
        out.append(f"{n} assistant turn{'s' if n != 1 else ''} had text next to tool_calls; the text was dropped "
                   "(LLaMA-Factory's function_call turn holds only the call)")
    n = counts[TRAILING_TURN_DROPPED]
    if n:
        out.append(f"{n} conversation{'s' if n != 1 else ''}: trailing unanswered turn dropped")
    return out


def stratify_problem(rows_file: Path, key: str, text_fields: tuple[str, ...] = ()) -> str | None:
    """The error for ``--stratify KEY`` when no written row has the field KEY (None when one
    has it); the choices listed are the fields of the written rows, label-like ones first."""
    short: dict[str, None] = {}
    rest: dict[str, None] = {}
    with open(rows_file, "rb") as fh:
        for line in fh:
            row = orjson.loads(line)
            if key in row:
                return None
            for k, v in row.items():
                if k in ("source", "source_row") or k in short or k in rest:
                    continue
                if k in text_fields:
                    rest[k] = None
                elif (isinstance(v, str) and 0 < len(v) <= 64) or (isinstance(v, (int, float)) and not isinstance(v, bool)):
                    short[k] = None
                else:
                    rest[k] = None
    fields = [*short, "source", *(k for k in rest if k not in short)]
    hint = ""
    close = difflib.get_close_matches(key, fields, n=1, cutoff=0.75)
    if close:
        hint = f"; did you mean --stratify {close[0]}?"
    return f"--stratify {key}: no row has that field (fields: {', '.join(fields)}){hint}"
