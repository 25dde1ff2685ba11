"""Reading JSON report pages: size and depth limits, and the bucket lists inside them."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from services.ingest.normalisers._text import decode_utf8
from services.ingest.normalisers.base import SURROGATE, EmptyInput, FormatError, InvalidSyntax, RowRejected, quoted
from shared.logging import get_logger

log = get_logger(__name__)

MAX_JSON_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 32
MAX_INTEGER_CHARS = 100
# A \uD800-\uDBFF escape without a \uDC00-\uDFFF escape after it, or a \uDC00-\uDFFF one without the first before.
UNPAIRED_ESCAPE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def load_json(stream: IO[bytes], what: str) -> Any:
    text = _read_text(stream, what)
    try:
        document = _parse(text)
    except (ValueError, RecursionError) as error:
        raise _syntax_error(what, error) from None
    _check_document(document, what, text)
    return document


def load_json_or_lines(stream: IO[bytes], what: str) -> list[Any]:
    """Read one JSON document, or newline-delimited JSON with one document a line, and return the documents.

    A single document that is a list is returned as is, so a JSON array, a page object
    and NDJSON all come back as a list of items to normalise.
    """
    text = _read_text(stream, what)
    try:
        document = _parse(text)
    except json.JSONDecodeError as error:
        if not error.msg.startswith("Extra data"):
            raise _syntax_error(what, error) from None
        return _json_lines(text, what)
    except (ValueError, RecursionError) as error:
        raise _syntax_error(what, error) from None
    _check_document(document, what, text)
    return document if isinstance(document, list) else [document]


def canonical_bytes(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _read_text(stream: IO[bytes], what: str) -> str:
    data = stream.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise FormatError(f"{what} is larger than {MAX_JSON_BYTES} bytes; split it into pages")
    text = decode_utf8(data, what)
    if not text.strip():
        raise EmptyInput(f"{what} is empty")
    return text


def _parse(text: str) -> Any:
    """Parse JSON text, keeping fractions and integers of more than MAX_INTEGER_CHARS characters as text.

    The field readers then reject a long integer with the field's name, where int() would
    fail for the whole input beyond Python's limit of 4300 digits. A repeated key, NaN and
    Infinity are rejected.
    """
    return json.loads(
        text,
        parse_float=str,
        parse_int=_parse_int,
        parse_constant=_reject_constant,
        object_pairs_hook=_unique_keys,
    )


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build an object, rejecting a key that appears twice: json.loads would keep the last value silently."""
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"the key {quoted(key)} appears twice in one object")
            seen.add(key)
    return document


def _parse_int(text: str) -> int | str:
    return int(text) if len(text) <= MAX_INTEGER_CHARS else text


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; write a number or null")


def _syntax_error(what: str, error: ValueError | RecursionError) -> FormatError:
    if isinstance(error, RecursionError):
        return FormatError(f"{what} is nested deeper than {MAX_DEPTH} levels")
    return InvalidSyntax(f"{what} is not valid JSON: {error}")


def _check_document(document: Any, what: str, text: str) -> None:
    """Reject documents nested deeper than MAX_DEPTH, and strings that are not valid Unicode or hold NUL.

    The walk keeps one iterator per level, so its memory grows with the depth and not with the
    number of items: a 64 MiB array of small numbers has millions of them.
    """
    end = object()
    stack: list[tuple[Iterator[Any], int]] = [(iter((document,)), 1)]
    while stack:
        children, depth = stack[-1]
        node = next(children, end)
        if node is end:
            stack.pop()
            continue
        if depth > MAX_DEPTH:
            raise FormatError(f"{what} is nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            stack.append((itertools.chain(node.keys(), node.values()), depth + 1))
        elif isinstance(node, list):
            stack.append((iter(node), depth + 1))
        elif isinstance(node, str) and not node.isascii() and SURROGATE.search(node):
            raise InvalidSyntax(f"{what} has a string with an unpaired surrogate{_escape_position(text)}")
        elif isinstance(node, str) and "\x00" in node:
            raise InvalidSyntax(f"{what} has a string with a NUL character (\\u0000), which text columns cannot store")


def _escape_position(text: str) -> str:
    """Describe where the first unpaired surrogate escape is in the JSON text, or return ''."""
    match = UNPAIRED_ESCAPE.search(text)
    if match is None:
        return ""
    line = text.count("\n", 0, match.start()) + 1
    return f" ({match.group()} on line {line}), which is not valid Unicode"


def _json_lines(text: str, what: str) -> list[Any]:
    documents: list[Any] = []
    for line_number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            document = _parse(line)
        except (ValueError, RecursionError) as error:
            raise _syntax_error(f"{what} line {line_number}", error) from None
        _check_document(document, f"{what} line {line_number}", line)
        documents.append(document)
    return documents


def page_items(document: Any, what: str) -> list[Any]:
    """Return the items of an API page (``{"data": [...]}``) or of a bare list of items.

    A page whose ``has_more`` is true is one of several: its items are read, and a
    warning names the next page so that the caller can fetch and import it too.
    """
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        if document.get("has_more") is True:
            log.warning("import.more_pages", input=what, next_page=str(document.get("next_page"))[:200])
        return list(document["data"])
    if isinstance(document, list):
        return document
    raise FormatError(f"{what} must be a page object with a 'data' list, or a list of its items")


@dataclass(frozen=True, slots=True)
class BucketResult:
    """One result of a time-bucketed report page, with its bucket and the raw bytes kept as evidence."""

    row_number: int
    bucket: dict[str, Any]
    bucket_path: str
    result: Any
    field_path: str
    raw: bytes
    error: RowRejected | None = None


def bucket_results(buckets: list[Any], time_keys: tuple[str, str]) -> Iterator[BucketResult]:
    """Yield every result of every bucket, numbered from 1, and a malformed bucket as one rejected row.

    The evidence of a result is its bucket's two time fields plus the result itself, so
    each row can be traced and compared on its own. Buckets without results yield nothing.
    """
    row_number = 0
    for bucket_index, bucket in enumerate(buckets):
        bucket_path = f"data[{bucket_index}]"
        if not isinstance(bucket, dict):
            row_number += 1
            error = RowRejected(bucket_path, "must be an object")
            yield BucketResult(row_number, {}, bucket_path, None, bucket_path, canonical_bytes(bucket), error)
            continue
        results = bucket.get("results")
        if not isinstance(results, list):
            row_number += 1
            error = RowRejected(f"{bucket_path}.results", "must be a list")
            yield BucketResult(row_number, bucket, bucket_path, None, bucket_path, canonical_bytes(bucket), error)
            continue
        for result_index, result in enumerate(results):
            row_number += 1
            raw = canonical_bytes(
                {time_keys[0]: bucket.get(time_keys[0]), time_keys[1]: bucket.get(time_keys[1]), "result": result}
            )
            yield BucketResult(row_number, bucket, bucket_path, result, f"{bucket_path}.results[{result_index}]", raw)
