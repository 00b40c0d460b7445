"""Reading text input with bounded memory: lines, CSV rows, and where bad bytes are.

Line-based readers (Nagios, CSV, JSON Lines, ``git log``, works notices)
read through :func:`lines`, which never holds more than one line of at most
``ctx.max_line_bytes`` bytes: a longer line is an error naming its number,
raised as soon as the limit is passed, so a 200 MB single-line file costs a
megabyte, not gigabytes.  Text is UTF-8 (a leading BOM is dropped); a byte
sequence that is not UTF-8 is an error naming line and column, unless the
reader asks for ``errors="replace"``.

:func:`csv_rows` adds the CSV rules every tabular reader shares: a field
longer than ``ctx.max_field_chars`` is an error naming line and column, and
so is a quoting error.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path

from whatchanged.engine.errors import InputError
from whatchanged.ingest.base import ReadContext

_BOM = codecs.BOM_UTF8


#: a field-count error lists the header's names when it has at most this many
WIDTH_NAMES_SHOWN = 24


def lines(path: Path, ctx: ReadContext, *, errors: str = "strict") -> Iterator[tuple[int, str]]:
    """``(line number, text with its newline)`` for each line, each at most ``ctx.max_line_bytes``."""
    limit = ctx.max_line_bytes
    file = str(path)
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, the generator may stop early
    except OSError as exc:
        raise InputError("cannot read file", file=file, found=exc.strerror) from None
    with fh:
        number = 0
        while True:
            raw = fh.readline(limit + 1)
            if not raw:
                return
            number += 1
            if len(raw) > limit and not (len(raw) == limit + 1 and raw.endswith(b"\n")):
                raise too_long(file, number, limit)
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            try:
                text = raw.decode("utf-8", errors)
            except UnicodeDecodeError as exc:
                raise not_utf8(file, number, raw, exc.start) from None
            yield number, text


def too_long(file: str, line: int, limit: int) -> InputError:
    return InputError(
        "line too long",
        file=file,
        line=line,
        expected=f"at most {limit} bytes per line (setting max_line_bytes)",
        found=f"more than {limit} bytes",
    )


def wrong_width(file: str, line: int, names: Sequence[str], found: int) -> InputError:
    """A CSV record with ``found`` fields where the header has ``names``: which field is
    missing first (or that there are too many), and the header it should match."""
    short = found < len(names)
    listed = f" ({','.join(names)})" if len(names) <= WIDTH_NAMES_SHOWN else ""
    return InputError(
        "missing fields" if short else "too many fields",
        file=file,
        line=line,
        field=names[found] if short else None,
        expected=f"{len(names)} fields{listed}",
        found=f"{found} fields",
    )


def not_utf8(file: str, line: int, raw: bytes, start: int) -> InputError:
    column = len(raw[:start].decode("utf-8", "replace")) + 1
    return InputError(
        f"not UTF-8 text at column {column}",
        file=file,
        line=line,
        expected="UTF-8",
        found=raw[start : start + 4],
    )


def csv_rows(path: Path, ctx: ReadContext) -> Generator[tuple[int, list[str]]]:
    """``(line number, fields)`` for each CSV record (the number of its first line)."""
    file = str(path)
    limit = ctx.max_field_chars
    source = lines(path, ctx)
    numbers: list[int] = [0]

    def texts() -> Iterator[str]:
        for number, text in source:
            numbers[0] = number
            yield text

    if csv.field_size_limit() < limit + 1:
        csv.field_size_limit(limit + 1)
    reader = csv.reader(texts())
    while True:
        start = numbers[0] + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(
                f"malformed CSV ({exc})", file=file, line=numbers[0], expected="RFC 4180 CSV"
            ) from None
        for column, cell in enumerate(row, start=1):
            if len(cell) > limit:
                raise InputError(
                    f"field too long at column {column}",
                    file=file,
                    line=start,
                    expected=f"at most {limit} characters per field (setting max_field_chars)",
                    found=f"{len(cell)} characters",
                )
        yield start, row


def first_bad_utf8(path: Path, *, chunk: int = 1 << 20) -> tuple[int, int, bytes] | None:
    """``(line, column, bytes)`` of the first bytes of ``path`` that are not UTF-8, or None."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    line, tail = 1, b""
    try:
        with open(path, "rb") as fh:
            while block := fh.read(chunk):
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    data = tail + block
                    at = len(tail) + exc.start
                    line += data[:at].count(b"\n")
                    begin = data.rfind(b"\n", 0, at) + 1
                    column = len(data[begin:at].decode("utf-8", "replace")) + 1
                    return line, column, data[at : at + 4]
                line += block.count(b"\n")
                tail = block[block.rfind(b"\n") + 1 :] if b"\n" in block else tail + block
                tail = tail[-4096:]
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return line, 1, b""
    except OSError:
        return None
    return None
