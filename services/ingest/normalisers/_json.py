"""Reading JSON report pages: size and depth limits, and the bucket lists inside them."""

from __future__ import annotations

import json
from typing import IO, Any

from services.ingest.normalisers.base import FormatError, InvalidSyntax

MAX_JSON_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 32


def load_json(stream: IO[bytes], what: str) -> Any:
    data = stream.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise FormatError(f"{what} is larger than {MAX_JSON_BYTES} bytes; split it into pages")
    try:
        document = json.loads(data, parse_float=str, parse_constant=_reject_constant)
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
