"""Decoding input bytes as UTF-8, with errors that name the byte offset of the first invalid byte."""

from __future__ import annotations

import codecs

from services.ingest.normalisers.base import InvalidSyntax

UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def without_bom(data: bytes) -> bytes:
    """Return the bytes without a leading UTF-8 byte order mark, which Excel and some exports write."""
    return data[len(codecs.BOM_UTF8) :] if data.startswith(codecs.BOM_UTF8) else data


def not_utf8(
    what: str, data: bytes, error: UnicodeDecodeError, offset: int = 0, line: int | None = None
) -> InvalidSyntax:
    """Describe invalid UTF-8 in ``data``, which starts ``offset`` bytes into the input, as InvalidSyntax."""
    if offset == 0 and data.startswith(UTF16_BOMS):
        return InvalidSyntax(f"{what} is UTF-16 text; save or export it as UTF-8")
    where = f"offset {offset + error.start}" + (f" (line {line})" if line is not None else "")
    return InvalidSyntax(
        f"{what} is not UTF-8 text: byte 0x{data[error.start]:02x} at {where} is invalid; save or export it as UTF-8"
    )


def decode_utf8(data: bytes, what: str) -> str:
    """Decode a whole input as UTF-8 without a leading BOM, or raise InvalidSyntax naming the first bad byte."""
    skipped = len(data) - len(without_bom(data))
    try:
        return data[skipped:].decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, skipped + error.start) + 1
        raise not_utf8(what, data[skipped:], error, skipped, line) from None
