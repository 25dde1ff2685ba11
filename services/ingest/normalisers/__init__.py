"""Normalisers turn one provider format into ingest events, one source row at a time."""

from __future__ import annotations

from services.ingest.normalisers._text import binary_kind, without_bom
from services.ingest.normalisers.anthropic_costs import AnthropicCostReport
from services.ingest.normalisers.anthropic_usage import AnthropicUsageReport
from services.ingest.normalisers.aws_cur import AwsCur
from services.ingest.normalisers.azure_cost import AzureCostExport
from services.ingest.normalisers.base import (
    EmptyInput,
    FormatError,
    ImportContext,
    InvalidSyntax,
    Normaliser,
    RowRejected,
    RowResult,
)
from services.ingest.normalisers.claude_code import ClaudeCodeUsageReport
from services.ingest.normalisers.cloudevents import CloudEventsUsage
from services.ingest.normalisers.dcgm import DcgmExporterMetrics
from services.ingest.normalisers.focus import FocusCsv
from services.ingest.normalisers.gcp_billing import GcpBillingExport
from services.ingest.normalisers.litellm import LiteLLMLoggingPayload, LiteLLMSpendLogs
from services.ingest.normalisers.openai_costs import OpenAICosts, OpenAIDashboardCosts
from services.ingest.normalisers.openai_dashboard import OpenAIDashboardUsageExport
from services.ingest.normalisers.openai_usage import OPENAI_USAGE_NORMALISERS
from services.ingest.normalisers.opencost import OpenCostAllocation
from services.ingest.normalisers.seats import GitHubCopilotBilling, GitHubCopilotSeats, Microsoft365CopilotUsage

NORMALISERS: dict[str, Normaliser] = {
    normaliser.format_name: normaliser
    for normaliser in (
        *OPENAI_USAGE_NORMALISERS,
        OpenAIDashboardUsageExport(),
        OpenAICosts(),
        OpenAIDashboardCosts(),
        AnthropicUsageReport(),
        AnthropicCostReport(),
        ClaudeCodeUsageReport(),
        FocusCsv(),
        AwsCur(),
        AzureCostExport(),
        GcpBillingExport(),
        LiteLLMSpendLogs(),
        LiteLLMLoggingPayload(),
        OpenCostAllocation(),
        DcgmExporterMetrics(),
        GitHubCopilotSeats(),
        GitHubCopilotBilling(),
        Microsoft365CopilotUsage(),
        CloudEventsUsage(),
    )
}

# Inputs that look like a provider file but hold nothing to import, with what to do instead.
NOT_IMPORTABLE: tuple[tuple[bytes, str], ...] = (
    (
        b'"download_links"',
        "this is a GitHub Copilot metrics report index: it lists download links, not usage; "
        "download the NDJSON reports it links to",
    ),
    (
        b'"retailPrice"',
        "this is an Azure retail price list: it has prices but no usage; prices belong in the price catalogue",
    ),
    (
        b'"pricingInfo"',
        "this is a Google Cloud billing catalog SKU list: it has prices but no usage",
    ),
    (
        b'"input_cost_per_token"',
        "this is a LiteLLM model price map: it has prices but no usage; import LiteLLM spend logs instead",
    ),
    (
        b'"hourlyCost"',
        "this is an OpenCost node cost model (/costDataModel): it has prices but no time window or usage; "
        "import an /allocation response instead",
    ),
)


class UnknownFormat(Exception):
    """No normaliser recognised the input, or the named format does not exist."""


def normaliser_for(format_name: str) -> Normaliser:
    try:
        return NORMALISERS[format_name]
    except KeyError:
        known = ", ".join(sorted(NORMALISERS))
        raise UnknownFormat(f"unknown format {format_name!r}; known formats: {known}") from None


def detect_format(head: bytes, file_name: str | None) -> Normaliser:
    """Pick the normaliser whose detector accepts the input; raise if none or several do.

    Detectors see the head without a UTF-8 BOM. When it starts with { or [, formats that read
    JSON are tried first, because a minified JSON page has all its keys on the line that CSV
    detectors take for a header. An empty input raises EmptyInput.
    """
    head = without_bom(head)
    if not head.strip():
        raise EmptyInput("the file is empty" if file_name else "the input is empty")
    advice = binary_kind(head)
    if advice is not None:
        raise InvalidSyntax(f"{'the file' if file_name else 'the input'} {advice}")
    matches = [normaliser for normaliser in NORMALISERS.values() if normaliser.detect(head, file_name)]
    if head.lstrip()[:1] in (b"{", b"["):
        json_matches = [normaliser for normaliser in matches if normaliser.reads_json]
        matches = json_matches or matches
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(sorted(NORMALISERS))
    if not matches:
        for signature, advice in NOT_IMPORTABLE:
            if signature in head:
                raise UnknownFormat(f"{file_name or 'the input'}: {advice}")
        raise UnknownFormat(
            f"could not recognise the format of {file_name or 'the input'}; pass --format (one of {known})"
        )
    names = ", ".join(normaliser.format_name for normaliser in matches)
    raise UnknownFormat(f"the input matches several formats ({names}); pass --format")


__all__ = [
    "NORMALISERS",
    "EmptyInput",
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
