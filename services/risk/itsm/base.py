"""What every ITSM connector shares: the finding as connectors see it, remote tickets, errors and HTTP calls.

Connector errors fall in two families. ``RetryableError`` (a timeout, a refused connection, HTTP 408, 429 or
5xx) leaves the work in the ticket outbox for a later attempt, after the Retry-After delay when the server sent
one. ``PermanentError`` (any other 4xx, or a response in an unexpected shape) marks the work failed until an
operator fixes the cause and retries it. Error messages carry the method, path, status and the start of the
response body, never the request headers. Connectors send credentials only in the Authorization header, so
the messages, which the dispatcher logs, contain none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx

from shared.events import FindingStatus

MAX_ERROR_BODY = 300


class ItsmError(Exception):
    """An ITSM request failed."""


class RetryableError(ItsmError):
    """The ITSM system is unavailable or asked to slow down; the request may succeed later."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermanentError(ItsmError):
    """The ITSM system rejected the request; repeating it unchanged will fail again."""


@dataclass(frozen=True, slots=True)
class FindingView:
    """A finding as a connector renders it into a ticket."""

    finding_id: str
    tenant: str
    kind: str
    severity: str
    status: FindingStatus
    subject: str
    owner: str | None
    title: str
    facts: dict[str, str]
    interpretation: str
    revision: int
    status_changed_by: str | None
    status_note: str | None
    evidence_count: int

    @classmethod
    def from_row(cls, row: Any) -> FindingView:
        return cls(
            finding_id=row.finding_id,
            tenant=row.tenant,
            kind=row.kind,
            severity=row.severity,
            status=FindingStatus(row.status),
            subject=row.subject,
            owner=row.owner,
            title=row.title,
            facts=json.loads(row.facts_json),
            interpretation=row.interpretation,
            revision=row.revision,
            status_changed_by=row.status_changed_by,
            status_note=row.status_note,
            evidence_count=len(json.loads(row.evidence_json)),
        )

    @property
    def correlation(self) -> str:
        return f"aifinops:{self.finding_id}"

    def fact_lines(self) -> list[str]:
        return [f"{name}: {value}" for name, value in self.facts.items()]

    def description(self) -> str:
        lines = [
            self.title,
            "",
            f"Kind: {self.kind}    Severity: {self.severity}    Subject: {self.subject}",
            f"Owner: {self.owner or '(none)'}    Tenant: {self.tenant}    Finding: {self.finding_id}",
            "",
            "Facts:",
            *(f"  {line}" for line in self.fact_lines()),
            "",
            f"Reading: {self.interpretation}",
            f"Evidence: {self.evidence_count} event ids, listed in aifinops (aifinops findings show {self.finding_id})",
        ]
        return "\n".join(lines)

    def update_note(self) -> str:
        change = f"Status: {self.status.value}"
        if self.status_changed_by:
            change += f" (set by {self.status_changed_by})"
        if self.status_note:
            change += f": {self.status_note}"
        return "\n".join([f"aifinops finding revision {self.revision}", change, "", *self.fact_lines()])


@dataclass(frozen=True, slots=True)
class RemoteTicket:
    external_id: str
    key: str
    url: str | None
    state: str | None


@dataclass(frozen=True, slots=True)
class RemoteState:
    """A ticket's state as read back, and the finding status it means (None when it means no change)."""

    state: str
    status: FindingStatus | None
    changed_by: str


class Connector(Protocol):
    system: str

    async def find(self, finding: FindingView) -> RemoteTicket | None:
        """Return the ticket already opened for the finding, if any; used before every create."""

    async def create(self, finding: FindingView) -> RemoteTicket: ...

    async def update(self, ticket: Any, finding: FindingView) -> str | None:
        """Send the finding's new figures and status; return the ticket's new remote state."""

    async def read_state(self, ticket: Any) -> RemoteState | None: ...

    async def close(self) -> None: ...


def retry_after_seconds(value: str | None) -> float | None:
    """Read a Retry-After header: delay seconds or an HTTP date."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


async def call(client: httpx.AsyncClient, system: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """Send one request; translate transport failures and error statuses into ItsmError subclasses."""
    try:
        response = await client.request(method, path, **kwargs)
    except httpx.TimeoutException as error:
        raise RetryableError(f"{system} {method} {path} timed out: {type(error).__name__}") from None
    except httpx.TransportError as error:
        raise RetryableError(f"{system} {method} {path} failed: {type(error).__name__}: {error}") from None
    if response.is_success:
        return response
    body = response.text[:MAX_ERROR_BODY]
    message = f"{system} {method} {path} returned {response.status_code}: {body}"
    if response.status_code in (408, 429) or response.status_code >= 500:
        raise RetryableError(message, retry_after_seconds(response.headers.get("retry-after")))
    raise PermanentError(message)


def json_body(response: httpx.Response, system: str, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise PermanentError(f"{system} {what}: response is not JSON: {response.text[:MAX_ERROR_BODY]}") from None
