"""Streaming CSV and TSV reading with a row-length limit."""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import IO, Any

from services.ingest.normalisers._text import binary_kind, not_utf8, nul_error, without_bom
from services.ingest.normalisers.base import EmptyInput, FormatError, InvalidSyntax, RowRejected, quoted

MAX_FIELD_CHARS = 64 * 1024
MAX_LINE_BYTES = 16 * 1024 * 1024
# Bounds the memory of one row. CUR 1 files add a column per resource tag, so the bound is generous.
# NOTE: it is an estimate, not a documented provider limit.
MAX_COLUMNS = 10_000
csv.field_size_limit(MAX_FIELD_CHARS)

# Key that read_rows adds to a row whose cell count differs from the header's. Its value is
# "LINE\x1fREASON", and the unit separator keeps it apart from any real column name.
CELL_COUNT_ERROR = "\x1fcell count"
# A position just after a CR that ends a line on its own, not as part of CRLF.
BARE_CR = re.compile(r"(?<=\r)(?!\n)(?=.)", re.DOTALL)
# The start of a JSON object or array, which no CSV header of a supported format has. A header such
# as "[Date],[Cost]" from SQL Server does not match.
JSON_START = re.compile(r"\s*(\{|\[\s*[\[{\"\]]|\[\s*$)")


def peek(stream: IO[bytes], size: int = 64) -> tuple[IO[bytes], bytes]:
    """Return a stream that still yields every byte, and up to ``size`` of its first bytes after any UTF-8 BOM."""
    buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[arg-type]
    return buffered, without_bom(buffered.peek(size)[:size])


def read_rows(
    stream: IO[bytes],
    *,
    what: str,
    delimiter: str | None = None,
    check_header: Callable[[list[str]], None] | None = None,
) -> Iterator[tuple[int, list[str], dict[str, str]]]:
    """Yield (data row number, header, row) with row numbers starting at 1 after the header.

    Without a delimiter, a tab in the header line means TSV and anything else CSV.
    The raw text of a row is not kept by the csv module, so evidence stores the
    parsed cells; the byte stream is decoded as UTF-8 (a BOM is dropped). A row with
    more or fewer cells than the header is never padded or cut: it still has every
    header column (so header checks pass), and ``cell_count_error`` rejects it.
    ``check_header`` runs on the header before any row is read, so a file without
    data rows is checked too.
    """
    lines = _decoded_lines(stream, what)
    first_line = next(lines, "")
    if not first_line:
        raise EmptyInput(f"{what} is empty")
    if not first_line.strip():
        raise FormatError(f"{what} has an empty first line, where the header must be")
    if JSON_START.match(first_line):
        raise FormatError(f"{what} starts like JSON, not like a CSV header")
    if delimiter is None:
        delimiter = "\t" if "\t" in first_line else ","
    reader = csv.reader(itertools.chain([first_line], lines), delimiter=delimiter)
    try:
        header = next(reader)
    except csv.Error as error:
        raise FormatError(f"{what} has an unreadable header: {error}") from None
    if len(header) > MAX_COLUMNS:
        raise FormatError(f"{what} has {len(header)} columns in its header, more than the {MAX_COLUMNS} read")
    header = [name.strip() for name in header]
    repeated = _repeated_name(header)
    if repeated is not None:
        raise FormatError(f"{what} has the column {quoted(repeated)} twice in its header, so its cells are ambiguous")
    if check_header is not None:
        check_header(header)
    row_number = 0
    while True:
        first_line_number = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise InvalidSyntax(f"{what} line {reader.line_num} is not valid CSV: {error}") from None
        row_number += 1
        if not cells:
            continue
        if len(cells) == len(header):
            yield row_number, header, dict(zip(header, cells, strict=True))
            continue
        row = dict(zip(header, cells, strict=False))
        row.update((name, "") for name in header[len(cells) :])
        relation = "more" if len(cells) > len(header) else "fewer"
        row[CELL_COUNT_ERROR] = (
            f"{first_line_number}\x1fhas {len(cells)} cells, {relation} than the {len(header)} columns of the "
            "header; check for a missing or unquoted delimiter"
        )
        yield row_number, header, row


def _repeated_name(header: list[str]) -> str | None:
    """Return the first column name that appears twice; unnamed columns, as trailing delimiters make, may repeat."""
    seen: set[str] = set()
    for name in header:
        if name in seen:
            return name
        if name:
            seen.add(name)
    return None


def cell_count_error(row: Mapping[str, Any]) -> RowRejected | None:
    """Return the rejection of a row that read_rows marked as having more or fewer cells than the header."""
    marker = row.get(CELL_COUNT_ERROR)
    if marker is None:
        return None
    line, _, reason = marker.partition("\x1f")
    return RowRejected(f"line {line}", reason)


def _decoded_lines(stream: IO[bytes], what: str) -> Iterator[str]:
    """Yield each line of a UTF-8 byte stream as text, without a leading BOM.

    Lines are decoded one at a time, so an invalid byte is reported with its offset in the
    whole input. A line longer than MAX_LINE_BYTES is rejected before it is held in memory.
    """
    offset = 0
    line_number = 0
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        line_number += 1
        if len(line) > MAX_LINE_BYTES:
            raise InvalidSyntax(f"{what} line {line_number} is longer than {MAX_LINE_BYTES} bytes")
        if offset == 0:
            advice = binary_kind(line)
            if advice is not None:
                raise InvalidSyntax(f"{what} {advice}")
            stripped = without_bom(line)
            offset, line = len(line) - len(stripped), stripped
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as error:
            raise not_utf8(what, line, error, offset, line_number) from None
        nul = nul_error(what, text, offset, line_number)
        if nul is not None:
            raise nul
        offset += len(line)
        if "\r" not in text.rstrip("\r\n"):
            yield text
            continue
        # Lines that end in a bare CR, as classic Mac OS and some Excel versions write CSV.
        pieces = BARE_CR.split(text)
        line_number += len(pieces) - 1
        yield from pieces


class HeaderJson:
    """Serialises the rows of one CSV header as ``json.dumps`` does, with the key order worked out once.

    ``row`` gives ``json.dumps(row, ensure_ascii=False, sort_keys=True)`` and ``key`` gives
    ``json.dumps({c: row[c] for c in columns}, sort_keys=True, separators=(",", ":"))`` for the
    columns given, byte for byte, because stored evidence hashes and event ids depend on those bytes.
    A row whose keys differ from the header (a repeated column name, a short row, extra cells) or
    that contains a value other than a string falls back to ``json.dumps``.
    """

    def __init__(self, header: list[str], key_columns: tuple[str, ...] = ()) -> None:
        self.columns = sorted(set(header))
        self.complete = len(self.columns) == len(header)
        self._row_prefixes = [encode_basestring(name) + ": " for name in self.columns]
        self.key_columns = sorted(set(key_columns))
        self._key_prefixes = [encode_basestring_ascii(name) + ":" for name in self.key_columns]

    def _fits(self, row: dict[str, str]) -> bool:
        return self.complete and len(row) == len(self.columns)

    def row(self, row: dict[str, str]) -> str:
        if self._fits(row):
            try:
                parts = [
                    prefix + encode_basestring(row[name])
                    for prefix, name in zip(self._row_prefixes, self.columns, strict=True)
                ]
                return "{" + ", ".join(parts) + "}"
            except (KeyError, TypeError):
                pass
        return json.dumps(row, ensure_ascii=False, sort_keys=True)

    def key(self, row: dict[str, str]) -> str:
        if self._fits(row):
            try:
                parts = [
                    prefix + encode_basestring_ascii(row[name])
                    for prefix, name in zip(self._key_prefixes, self.key_columns, strict=True)
                ]
                return "{" + ",".join(parts) + "}"
            except (KeyError, TypeError):
                pass
        subset = {name: row.get(name) for name in self.key_columns}
        return json.dumps(subset, sort_keys=True, default=str, separators=(",", ":"))
