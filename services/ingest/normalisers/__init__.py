"""Normalisers turn one provider format into usage-recorded events, one source row at a time."""

from __future__ import annotations

from services.ingest.normalisers.anthropic_usage import AnthropicUsageReport
from services.ingest.normalisers.base import (
    FormatError,
    ImportContext,
    InvalidSyntax,
    Normaliser,
    RowRejected,
    RowResult,
)
from services.ingest.normalisers.focus import FocusCsv
from services.ingest.normalisers.openai_dashboard import OpenAIDashboardUsageExport
from services.ingest.normalisers.openai_usage import OpenAIUsageCompletions

NORMALISERS: dict[str, Normaliser] = {
    normaliser.format_name: normaliser
    for normaliser in (
        OpenAIUsageCompletions(),
        OpenAIDashboardUsageExport(),
        AnthropicUsageReport(),
        FocusCsv(),
    )
}


class UnknownFormat(Exception):
    """No normaliser recognised the input, or the named format does not exist."""


def normaliser_for(format_name: str) -> Normaliser:
    try:
        return NORMALISERS[format_name]
    except KeyError:
        known = ", ".join(sorted(NORMALISERS))
        raise UnknownFormat(f"unknown format {format_name!r}; known formats: {known}") from None


def detect_format(head: bytes, file_name: str | None) -> Normaliser:
    """Pick the normaliser whose detector accepts the input; raise if none or several do."""
    matches = [normaliser for normaliser in NORMALISERS.values() if normaliser.detect(head, file_name)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(sorted(NORMALISERS))
    if not matches:
        raise UnknownFormat(
            f"could not recognise the format of {file_name or 'the input'}; pass --format (one of {known})"
        )
    names = ", ".join(normaliser.format_name for normaliser in matches)
    raise UnknownFormat(f"the input matches several formats ({names}); pass --format")


__all__ = [
    "NORMALISERS",
    "FormatError",
    "ImportContext",
    "InvalidSyntax",
    "Normaliser",
    "RowRejected",
    "RowResult",
    "UnknownFormat",
    "detect_format",
    "normaliser_for",
]
