"""Columnar and typed sources: Parquet, Arrow, Excel, and datasets (``save_to_disk`` folders or
hub ids). Rows are numbered from 1 (Excel: the sheet's row number, the header being row 1)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from factory_kit.core.errors import FactoryKitError
from factory_kit.data.readers.base import RawRecord


def read_parquet(path: Path, source: str) -> Iterator[RawRecord]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise FactoryKitError(f"{source}: not a readable Parquet file ({exc})") from None
    row = 0
    for batch in pf.iter_batches(batch_size=4096):
        for obj in batch.to_pylist():
            row += 1
            yield RawRecord(source, row, obj)


def read_excel(path: Path, source: str, sheet: str | None = None,
               blank: list[int] | None = None) -> Iterator[RawRecord]:
    """Rows of a sheet as records; a fully blank row is not a row (its number goes to ``blank``)."""
    try:
        import openpyxl
    except ImportError:  # pragma: no cover - openpyxl is a dependency
        raise FactoryKitError(f"{source}: reading Excel needs openpyxl (pip install openpyxl)") from None
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise FactoryKitError(f"{source}: not a readable .xlsx workbook ({exc}); save it as .xlsx or CSV") from None
    try:
        if sheet:
            if sheet not in wb.sheetnames:
                raise FactoryKitError(f"{source}: no sheet {sheet!r}; sheets: {', '.join(wb.sheetnames)}")
            ws = wb[sheet]
        else:
            ws = wb.worksheets[0]
        rows = ws.iter_rows(values_only=True)
        header_row = next(rows, None)
        if header_row is None:
            raise FactoryKitError(f"{source}: sheet {ws.title!r} is empty")
        header = [str(h).strip() if h is not None else "" for h in header_row]
        while header and header[-1] == "":
            header.pop()
        for i, values in enumerate(rows, 2):
            values = list(values)
            if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
                if blank is not None:
                    blank.append(i)
                continue
            extra = [v for v in values[len(header):] if v is not None]
            if extra:
                yield RawRecord(source, i, raw=repr(values), error=f"row has {len(header) + len(extra)} cells, the header has {len(header)}")
                continue
            obj = {h: values[j] if j < len(values) else None for j, h in enumerate(header) if h}
            yield RawRecord(source, i, obj)
    finally:
        wb.close()


def is_datasets_folder(path: Path) -> bool:
    return path.is_dir() and ((path / "dataset_info.json").exists() or (path / "state.json").exists()
                              or (path / "dataset_dict.json").exists())


def read_hf(spec: str, source: str, split: str | None = None) -> Iterator[RawRecord]:
    """A ``save_to_disk`` folder, or a hub id (streamed; needs network)."""
    import datasets

    path = Path(spec)
    if path.exists():
        try:
            ds = datasets.load_from_disk(str(path))
        except Exception as exc:
            raise FactoryKitError(f"{source}: not a datasets save_to_disk folder ({exc})") from None
        if isinstance(ds, datasets.DatasetDict):
            name = split or ("train" if "train" in ds else next(iter(ds)))
            if name not in ds:
                raise FactoryKitError(f"{source}: no split {name!r}; splits: {', '.join(ds)}")
            ds = ds[name]
        for i, obj in enumerate(ds, 1):
            yield RawRecord(source, i, obj)
        return
    try:
        ds = datasets.load_dataset(spec, split=split or "train", streaming=True)
        it = iter(ds)
        first = next(it, None)
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FactoryKitError(
            f"{spec}: cannot load from the Hugging Face Hub ({msg}); check the id and the network, "
            "or download it elsewhere and pass the save_to_disk folder or its files") from None
    if first is None:
        return
    yield RawRecord(source, 1, first)
    for i, obj in enumerate(it, 2):
        yield RawRecord(source, i, obj)


def read_arrow(path: Path, source: str) -> Iterator[RawRecord]:
    import pyarrow as pa

    try:
        with pa.memory_map(str(path)) as src:
            try:
                reader = pa.ipc.open_stream(src)
            except pa.ArrowInvalid:
                reader = pa.ipc.open_file(src)
                batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
            else:
                batches = iter(reader)
            row = 0
            for batch in batches:
                for obj in batch.to_pylist():
                    row += 1
                    yield RawRecord(source, row, obj)
    except pa.ArrowInvalid as exc:
        raise FactoryKitError(f"{source}: not a readable Arrow file ({exc})") from None
