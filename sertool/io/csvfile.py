"""Reading CSV files that people edit (manifests, warnings files): damage becomes one error naming the line.

A file must be UTF-8 text (a leading byte-order mark, as Excel writes, is
allowed) without NUL bytes, in valid CSV (a quote opened is closed, nothing
follows a closing quote but the delimiter), every row as long as the header.
Anything else raises the caller's error kind with ``<file>, line <n>: <what>;
<fix>``, where ``n`` is the line the bad record starts on.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from pathlib import Path

from sertool.errors import SertoolError


def _utf8_fix(encoding: str = "latin1") -> str:
    """How to turn text in ``encoding`` into UTF-8 (the end of an encoding error)."""
    return f"save it as UTF-8 (a spreadsheet's 'CSV UTF-8' format, or `iconv -f {encoding} -t utf-8 OLD.csv > NEW.csv`)"


_CSV_PROBLEMS = {
    "unexpected end of data": "not valid CSV: a quote (\") opened on this line is never closed",
    "expected after": "not valid CSV: text follows a closing quote (\"); quote the whole field",
    "field larger than field limit": "not valid CSV: a field longer than 128 KiB (a quote never closed?)",
}


def _decode(path: Path, data: bytes, error: type[SertoolError]) -> str:
    """``data`` as text; ``error`` naming the line for UTF-16, other encodings and NUL bytes."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise error(f"{path}: UTF-16 text, not UTF-8; {_utf8_fix('utf-16')}")
    body = data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        raise error(f"{path}, line {line}: not UTF-8 text (byte 0x{body[exc.start]:02x}); {_utf8_fix()}") from None
    nul = text.find("\x00")
    if nul >= 0:
        raise error(f"{path}, line {text.count(chr(10), 0, nul) + 1}: a NUL byte, so not a text CSV (a binary "
                    f"or UTF-16 file?); {_utf8_fix('utf-16')}, or regenerate the file")
    return text


def _csv_problem(exc: csv.Error) -> str:
    """What a :class:`csv.Error` means, in words a user can act on."""
    for key, problem in _CSV_PROBLEMS.items():
        if key in str(exc):
            return problem
    return f"not valid CSV ({exc})"


def _records(path: Path, text: str, error: type[SertoolError], fix: str) -> list[tuple[int, list[str]]]:
    """``(line the record starts on, fields)`` of every non-blank record of ``text``."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records = []
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return records
        except csv.Error as exc:
            raise error(f"{path}, line {start}: {_csv_problem(exc)}; {fix}") from None
        if row:
            records.append((start, row))


def read_csv(path: str | os.PathLike, *, error: type[SertoolError] = SertoolError,
             fix: str = "fix the file or regenerate it") -> tuple[list[str], list[tuple[int, list[str]]]]:
    """``(header, [(line number, fields), ...])`` of the CSV file ``path``, every row as long as the header.

    Parameters
    ----------
    path
        The file.
    error
        The error kind raised.
    fix
        The end of an error about the CSV syntax or a row's length: how to repair the file.

    Raises
    ------
    SertoolError
        (``error``) The file cannot be read, is not UTF-8 text, holds a NUL
        byte, is not valid CSV, or has a row longer or shorter than the header.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read the file ({exc.strerror or exc}); check the path and its permissions") \
            from None
    records = _records(path, _decode(path, data, error), error, fix)
    header = records[0][1] if records else []
    for line, row in records[1:]:
        if len(row) != len(header):
            raise error(f"{path}, line {line}: {len(row)} fields where the header has {len(header)}; fix the row "
                        "(quote fields that hold commas)")
    return header, records[1:]
