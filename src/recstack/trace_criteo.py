"""Criteo click logs (the Kaggle Display Advertising Challenge's and the Terabyte data set's)
read as traces, as untrusted input, and written (sample traces).

One sample per line, 40 tab-separated fields: the label (1 clicked, 0 not), 13 dense integer
features, then 26 categorical features as hexadecimal strings (8 digits in Criteo's files;
1 to 16 are accepted, up to ``2**63 - 1``); an empty field is a missing value. The file may
be gzip-compressed (recognized by its first bytes, whatever its name).

Values are read as the DLRM reference reads them (facebookresearch/dlrm, ``data_utils.py``
and ``dlrm_data_pytorch.py``): a missing or negative dense value is 0 and the dense features
are ``log(x + 1)`` in float32; a categorical value is the integer its hex digits spell
(missing: 0). Each categorical column is one table with exactly one id per sample, so the
trace's offsets are ``0, 1, 2, ...``. The ids are the raw hashed values (up to ``2**32`` in
Criteo's files): folding them into a model table's rows (modulo the table's size) is the job
of whoever maps the trace onto a model, not this reader's. Labels are checked (0 or 1) and
kept as :attr:`~recstack.trace_files.Trace.labels`.

Read whole, a file may be as large as any trace
(:data:`~recstack.trace_files.MAX_TRACE_BYTES`); with ``max_samples`` only that many lines
are decompressed and parsed, and the file may be of any size, which is how to read the
start of a Criteo day (a whole day does not fit the limit, nor, parsed, the memory of most
machines). All of it is hashed for the digest. Every problem is one
:class:`~recstack.errors.RecstackError` line naming the file and, where it has one, the
line.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
from pathlib import Path
from typing import Any

import numpy as np

from recstack.errors import RecstackError
from recstack.text import shown
from recstack.trace_files import GZIP_MAGIC, Trace, file_digest, most_bytes
from recstack.userfiles import require_file

DENSE_FEATURES = 13
CATEGORICAL_FEATURES = 26
FIELDS = 1 + DENSE_FEATURES + CATEGORICAL_FEATURES
_DENSE = r"-?[0-9]{1,18}"  # 18 digits always fit int64; Criteo's counts have at most 8
_HEX = r"[0-9a-fA-F]{1,16}"
_INT64_MAX = (1 << 63) - 1


def read_criteo(path: str | Path, option: str = "--trace",
                max_samples: int | None = None) -> Trace:
    """The Criteo click log in ``path`` as a trace of 26 one-id tables with dense features
    ``(samples, 13)`` (see the module docstring); only its first ``max_samples`` lines when
    given. ``option`` names where the path came from in errors."""
    import torch

    path = Path(path)
    require_file(path, option, most_bytes(max_samples), "a Criteo click log", "bytes of trace")
    digest = file_digest(path)
    frame = _frame(path, _lines(path, max_samples))
    samples = len(frame)
    labels = frame[0].to_numpy()
    bad_labels = np.flatnonzero((labels != "0") & (labels != "1"))
    if bad_labels.size:
        row = int(bad_labels[0])
        raise RecstackError(f"{path.name}: line {row + 1}: label {shown(labels[row])} is not "
                            "allowed; expected 0 or 1")
    dense_text = frame.iloc[:, 1:1 + DENSE_FEATURES]
    _check_fields(path.name, dense_text, _DENSE, 1, "dense feature",
                  "an integer (at most 18 digits)")
    dense = dense_text.replace("", "0").to_numpy().astype(np.int64).clip(min=0)
    categorical_text = frame.iloc[:, 1 + DENSE_FEATURES:]
    _check_fields(path.name, categorical_text, _HEX, 1 + DENSE_FEATURES, "categorical feature",
                  "hexadecimal (1 to 16 digits)")
    categorical = _hex_values(path.name, categorical_text)
    # table after table (a column of the log each), one id per sample
    indices = torch.from_numpy(np.ascontiguousarray(categorical.T).reshape(-1))
    return Trace(name=path.name, indices=indices,
                 offsets=torch.arange(CATEGORICAL_FEATURES * samples + 1, dtype=torch.int64),
                 tables=CATEGORICAL_FEATURES, samples=samples,
                 dense=torch.log(torch.from_numpy(dense).to(torch.float32) + 1),
                 format="criteo", digest=digest,
                 labels=torch.from_numpy(labels.astype(np.float32)))


def _lines(path: Path, max_samples: int | None) -> list[str]:
    """The file's first ``max_samples`` lines (all without it), decompressed, as text."""
    with open(path, "rb") as handle:
        compressed = handle.read(2) == GZIP_MAGIC
    opener = gzip.open if compressed else open
    try:
        # newline="\n": a stray carriage return is data (refused later), not a line break
        with opener(path, "rt", encoding="utf-8", newline="\n") as handle:
            lines = list(itertools.islice(handle, max_samples))
    except UnicodeDecodeError as error:
        raise RecstackError(f"{path.name}: not UTF-8 text ({error.reason}); expected a "
                            "Criteo click log") from None
    except (OSError, EOFError) as error:
        what = "a truncated or damaged gzip file" if compressed else "cannot be read"
        raise RecstackError(f"{path.name}: {what} ({error})") from None
    if not lines:
        raise RecstackError(f"{path.name}: an empty file; expected Criteo click-log lines")
    return lines


def _frame(path: Path, lines: list[str]) -> Any:
    """The lines as a frame of strings ``(lines, 40)``, each line's field count checked
    first (a parser pads a short line with empty fields, which read as missing values)."""
    import pandas as pd

    counts = pd.Series(lines, dtype=object).str.count("\t").to_numpy() + 1
    wrong = np.flatnonzero(counts != FIELDS)
    if wrong.size:
        row = int(wrong[0])
        raise RecstackError(f"{path.name}: line {row + 1} has {counts[row]} fields; expected "
                            f"{FIELDS} (label, {DENSE_FEATURES} dense, {CATEGORICAL_FEATURES} "
                            "categorical, tab-separated)")
    frame = pd.read_csv(io.StringIO("".join(lines)), sep="\t", header=None, dtype=str,
                        keep_default_na=False, quoting=csv.QUOTE_NONE, lineterminator="\n",
                        skip_blank_lines=False)
    if frame.shape != (len(lines), FIELDS):  # the counts above make this unreachable
        raise RecstackError(f"{path.name}: parsed as {frame.shape[0]} x {frame.shape[1]} "
                            f"fields; expected {len(lines)} x {FIELDS}")
    return frame


def _check_fields(name: str, fields: Any, pattern: str, first_column: int, kind: str,
                  expected: str) -> None:
    """Refuses the first (line, column) of ``fields`` that is neither empty (missing) nor
    a full match of ``pattern``."""
    valid = fields.apply(lambda column: column.str.fullmatch(pattern) | (column == ""))
    wrong = np.argwhere(~valid.to_numpy(dtype=bool))
    if len(wrong):
        row, column = (int(n) for n in wrong[0])
        raise RecstackError(f"{name}: line {row + 1}, {kind} {column + 1} (field "
                            f"{first_column + column + 1}): {shown(fields.iat[row, column])} "
                            f"is not {expected}")


def _hex_values(name: str, fields: Any) -> Any:
    """The checked hex strings as int64 ``(lines, 26)``; missing ones 0."""
    padded = fields.apply(lambda column: column.str.zfill(16)).to_numpy()
    values = np.frombuffer(bytes.fromhex("".join(padded.ravel())), dtype=">u8")
    values = values.reshape(padded.shape)
    too_large = np.argwhere(values > _INT64_MAX)
    if len(too_large):
        row, column = (int(n) for n in too_large[0])
        raise RecstackError(f"{name}: line {row + 1}, categorical feature {column + 1}: "
                            f"{shown(fields.iat[row, column])} is too large; expected at most "
                            f"{_INT64_MAX:x}")
    return values.astype(np.int64)


def write_criteo(path: str | Path, labels: Any, dense: Any, categorical: Any) -> Path:
    """Writes a Criteo click log: ``labels`` ``(samples,)`` 0 or 1, ``dense`` ``(samples,
    13)`` non-negative integers, ``categorical`` ``(samples, 26)`` non-negative integers
    written as (at least) 8 lowercase hex digits; gzip-compressed when the name ends
    ``.gz``. For sample traces (tests, examples): recstack never downloads one."""
    import pandas as pd

    labels, dense = np.asarray(labels, dtype=np.int64), np.asarray(dense, dtype=np.int64)
    categorical = np.asarray(categorical, dtype=np.int64)
    samples = len(labels)
    if labels.shape != (samples,) or dense.shape != (samples, DENSE_FEATURES) or \
            categorical.shape != (samples, CATEGORICAL_FEATURES):
        raise ValueError(f"write_criteo: expected labels (S,), dense (S, {DENSE_FEATURES}) "
                         f"and categorical (S, {CATEGORICAL_FEATURES})")
    if not np.isin(labels, (0, 1)).all() or (dense < 0).any() or (categorical < 0).any():
        raise ValueError("write_criteo: labels must be 0 or 1, features non-negative")
    columns = [labels.astype(str)] + [dense[:, j].astype(str) for j in range(DENSE_FEATURES)]
    columns += [np.char.mod("%08x", categorical[:, j]) for j in range(CATEGORICAL_FEATURES)]
    text = pd.DataFrame(dict(enumerate(columns))).to_csv(
        sep="\t", header=False, index=False, lineterminator="\n", quoting=csv.QUOTE_NONE)
    data = text.encode("ascii")
    path = Path(path)
    # mtime=0: the same log gives the same bytes (the shipped sample traces are compared)
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
    return path
