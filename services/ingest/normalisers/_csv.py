"""Streaming CSV and TSV reading with a row-length limit."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterator
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import IO

from services.ingest.normalisers.base import FormatError, InvalidSyntax

MAX_FIELD_CHARS = 64 * 1024
csv.field_size_limit(MAX_FIELD_CHARS)


def peek(stream: IO[bytes], size: int = 64) -> tuple[IO[bytes], bytes]:
    """Return a stream that still yields every byte, and up to ``size`` of its first bytes."""
    buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[arg-type]
    return buffered, buffered.peek(size)[:size]


def read_rows(
    stream: IO[bytes], *, what: str, delimiter: str | None = None
) -> Iterator[tuple[int, list[str], dict[str, str]]]:
    """Yield (data row number, header, row) with row numbers starting at 1 after the header.

    Without a delimiter, a tab in the header line means TSV and anything else CSV.
    The raw text of a row is not kept by the csv module, so evidence stores the
    parsed cells; the byte stream is decoded as UTF-8 (a BOM is dropped).
    """
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        first_line = text.readline(MAX_FIELD_CHARS * 4)
    except UnicodeDecodeError as error:
        raise InvalidSyntax(f"{what} is not UTF-8 text: {error}") from None
    if delimiter is None:
        delimiter = "\t" if "\t" in first_line else ","
    reader = csv.reader(itertools.chain([first_line], text), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise FormatError(f"{what} is empty") from None
    except (csv.Error, UnicodeDecodeError) as error:
        raise FormatError(f"{what} has an unreadable header: {error}") from None
    header = [name.strip() for name in header]
    row_number = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise InvalidSyntax(f"{what} row {row_number + 1} is not valid CSV: {error}") from None
        except UnicodeDecodeError as error:
            raise InvalidSyntax(f"{what} row {row_number + 1} is not UTF-8: {error}") from None
        row_number += 1
        if not cells:
            continue
        yield (
            row_number,
            header,
            dict(zip(header, cells, strict=False))
            | ({"__extra__": "\x1f".join(cells[len(header) :])} if len(cells) > len(header) else {}),
        )


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
