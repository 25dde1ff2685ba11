"""Reading JSON report pages: size and depth limits, and the bucket lists inside them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from services.ingest.normalisers._text import decode_utf8
from services.ingest.normalisers.base import EmptyInput, FormatError, InvalidSyntax, RowRejected
from shared.logging import get_logger

log = get_logger(__name__)

MAX_JSON_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 32


def load_json(stream: IO[bytes], what: str) -> Any:
    data = stream.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise FormatError(f"{what} is larger than {MAX_JSON_BYTES} bytes; split it into pages")
    text = decode_utf8(data, what)
    if not text.strip():
        raise EmptyInput(f"{what} is empty")
    try:
        document = json.loads(text, parse_float=str, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        raise InvalidSyntax(f"{what} is not valid JSON: {error}") from None
    _check_depth(document, what)
    return document


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _check_depth(document: Any, what: str) -> None:
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise FormatError(f"{what} is nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)


def canonical_bytes(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def load_json_or_lines(stream: IO[bytes], what: str) -> list[Any]:
    """Read one JSON document, or newline-delimited JSON with one document a line, and return the documents.

    A single document that is a list is returned as is, so a JSON array, a page object
    and NDJSON all come back as a list of items to normalise.
    """
    data = stream.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise FormatError(f"{what} is larger than {MAX_JSON_BYTES} bytes; split it into pages")
    text = decode_utf8(data, what)
    if not text.strip():
        raise EmptyInput(f"{what} is empty")
    try:
        document = json.loads(text, parse_float=str, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        if not error.msg.startswith("Extra data"):
            raise InvalidSyntax(f"{what} is not valid JSON: {error}") from None
        return _json_lines(text, what)
    except (ValueError, RecursionError) as error:
        raise InvalidSyntax(f"{what} is not valid JSON: {error}") from None
    _check_depth(document, what)
    return document if isinstance(document, list) else [document]


def _json_lines(text: str, what: str) -> list[Any]:
    documents: list[Any] = []
    for line_number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            document = json.loads(line, parse_float=str, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as error:
            raise InvalidSyntax(f"{what} line {line_number} is not valid JSON: {error}") from None
        _check_depth(document, what)
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
