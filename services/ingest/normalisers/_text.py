"""Decoding input bytes as UTF-8 text, with errors that name the byte offset of the first invalid byte."""

from __future__ import annotations

import codecs

from services.ingest.normalisers.base import InvalidSyntax

UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# The first bytes of files that are not text, with what to do about them. Providers deliver
# exports compressed (AWS CUR as .csv.gz, for example) or as Parquet.
BINARY_SIGNATURES = (
    (b"\x1f\x8b", "is gzip-compressed; decompress it first, for example with gunzip"),
    (b"\x28\xb5\x2f\xfd", "is zstd-compressed; decompress it first, for example with unzstd"),
    (b"PK\x03\x04", "is a ZIP archive or an Excel workbook; extract it, or save the sheet as CSV"),
    (b"PAR1", "is a Parquet file; export the data as CSV or JSON instead"),
)


def binary_kind(head: bytes) -> str | None:
    """Return what to do with a compressed or binary file, judged by its first bytes, or None for other input."""
    for signature, advice in BINARY_SIGNATURES:
        if head.startswith(signature):
            return advice
    return None


def nul_error(what: str, text: str, offset: int, first_line: int) -> InvalidSyntax | None:
    """Return the error for a NUL character in decoded text, or None. PostgreSQL text columns cannot store NUL.

    ``text`` starts ``offset`` bytes into the input, on line ``first_line``.
    """
    position = text.find("\x00")
    if position == -1:
        return None
    byte_offset = offset + len(text[:position].encode())
    line = first_line + text.count("\n", 0, position)
    return InvalidSyntax(
        f"{what} has a NUL byte at offset {byte_offset} (line {line}); it is binary or corrupt, not text"
    )


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
    advice = binary_kind(data)
    if advice is not None:
        raise InvalidSyntax(f"{what} {advice}")
    try:
        text = data[skipped:].decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, skipped + error.start) + 1
        raise not_utf8(what, data[skipped:], error, skipped, line) from None
    nul = nul_error(what, text, skipped, 1)
    if nul is not None:
        raise nul
    return text
