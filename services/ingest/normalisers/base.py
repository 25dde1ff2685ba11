"""What every normaliser shares: row results, rejection errors and deterministic event ids."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import IO, Any, Protocol

from shared.events import (
    GpuUtilisationReported,
    ProviderCostReported,
    SeatActivityReported,
    SeatEntitlementReported,
    UsageRecorded,
)

# Namespace for uuid5 event ids; changing it would change every id and break de-duplication.
EVENT_ID_NAMESPACE = uuid.UUID("6f1d3c2e-4b7a-5e8f-9a0b-1c2d3e4f5a6b")


class RowRejected(Exception):
    """A source row that cannot become a usage event, with the field at fault."""

    def __init__(self, field_path: str, reason: str) -> None:
        super().__init__(f"{field_path}: {reason}")
        self.field_path = field_path
        self.reason = reason


class FormatError(Exception):
    """The input as a whole is not in the expected format (wrong shape, missing header)."""


class InvalidSyntax(FormatError):
    """The input is not parseable at all: not JSON, not UTF-8, not CSV."""


# Every event type a normaliser may produce; each travels on its own topic (shared.topics.EVENT_TOPICS).
IngestEvent = (
    UsageRecorded | ProviderCostReported | SeatActivityReported | SeatEntitlementReported | GpuUtilisationReported
)


@dataclass(frozen=True, slots=True)
class ImportContext:
    tenant: str
    correlation_id: str
    received_at: datetime
    file_name: str | None = None
    channel: str = "file"  # "file" or "webhook"


@dataclass(slots=True)
class RowResult:
    """One source row: the event it became, or why it was rejected, or that it held no usage."""

    row_number: int
    raw: bytes
    event: IngestEvent | None = None
    error: RowRejected | None = None
    empty: bool = False


class Normaliser(Protocol):
    format_name: str
    description: str

    def detect(self, head: bytes, file_name: str | None) -> bool:
        """Tell from the first bytes of the input (and its name) whether this normaliser reads it."""
        ...

    def rows(self, stream: IO[bytes], context: ImportContext) -> Iterator[RowResult]:
        """Read the input and yield one result per source row, in order."""
        ...


@dataclass
class IdentityAllocator:
    """Gives each row a deterministic event id from its content.

    Two rows with identical content in one input get different ids (the second gets
    occurrence 2), so legitimate repeats are kept while re-reading the same input
    yields the same ids again.
    """

    tenant: str
    format_name: str
    _seen: Counter[str] = field(default_factory=Counter)

    def event_id(self, natural_key: dict[str, Any]) -> str:
        canonical = json.dumps(natural_key, sort_keys=True, default=str, separators=(",", ":"))
        self._seen[canonical] += 1
        name = f"{self.tenant}\x1f{self.format_name}\x1f{canonical}\x1f{self._seen[canonical]}"
        return str(uuid.uuid5(EVENT_ID_NAMESPACE, name))


def sha256_hex(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def whole_number(value: Any, field_path: str, *, required: bool = True) -> int | None:
    """Read a non-negative whole number; accept integral floats like 59200.0 that exports write."""
    if value is None or value == "":
        if required:
            raise RowRejected(field_path, "is missing")
        return None
    if isinstance(value, bool):
        raise RowRejected(field_path, f"must be a whole number, got a boolean {value!r}")
    if isinstance(value, int):
        number = value
    else:
        try:
            decimal = Decimal(str(value).strip())
        except InvalidOperation:
            raise RowRejected(field_path, f"must be a whole number, got {value!r}") from None
        if not decimal.is_finite() or decimal != decimal.to_integral_value():
            raise RowRejected(field_path, f"must be a whole number, got {value!r}")
        number = int(decimal)
    if number < 0:
        raise RowRejected(field_path, f"must not be negative, got {number}")
    if number > 10**18:
        raise RowRejected(field_path, f"is implausibly large ({number})")
    return number


def decimal_value(value: Any, field_path: str, *, required: bool = True) -> Decimal | None:
    if value is None or value == "":
        if required:
            raise RowRejected(field_path, "is missing")
        return None
    if isinstance(value, bool):
        raise RowRejected(field_path, f"must be a number, got a boolean {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise RowRejected(field_path, f"must be a number, got {value!r}") from None
    if not number.is_finite():
        raise RowRejected(field_path, f"must be a finite number, got {value!r}")
    if abs(number) > Decimal(10) ** 18:
        raise RowRejected(field_path, f"is implausibly large ({number})")
    return number


def epoch_seconds(value: Any, field_path: str) -> datetime:
    seconds = whole_number(value, field_path)
    assert seconds is not None  # required=True never returns None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise RowRejected(field_path, f"is not a valid Unix time: {value!r}") from None


def rfc3339(value: Any, field_path: str) -> datetime:
    """Parse an RFC 3339 instant; a timestamp without a zone is rejected, not guessed."""
    if not isinstance(value, str) or not value:
        raise RowRejected(field_path, f"must be an RFC 3339 timestamp, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RowRejected(field_path, f"must be an RFC 3339 timestamp, got {value!r}") from None
    if parsed.tzinfo is None:
        raise RowRejected(field_path, f"has no time zone: {value!r}")
    return parsed.astimezone(UTC)


def optional_str(value: Any, field_path: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RowRejected(field_path, f"must be a string, got {type(value).__name__}")
    if len(value) > 512:
        raise RowRejected(field_path, f"is longer than 512 characters ({len(value)})")
    return value
