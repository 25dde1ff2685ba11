"""Parts every normaliser shares: row results, rejection errors, deterministic event ids and value readers."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import IO, Any, Protocol

from pydantic import ValidationError

from shared.events import (
    GpuUtilisationReported,
    ProviderCostReported,
    SeatActivityReported,
    SeatEntitlementReported,
    UsageRecorded,
)

# Namespace for uuid5 event ids; changing it would change every id and break de-duplication.
EVENT_ID_NAMESPACE = uuid.UUID("6f1d3c2e-4b7a-5e8f-9a0b-1c2d3e4f5a6b")

MAX_PROVIDER_ID_CHARS = 512
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)

# A decimal number in ASCII digits, with an optional sign, fraction and exponent. Python's int() and
# Decimal() also accept other scripts' digits (Arabic-Indic, full-width) and underscores, so the
# readers reject those before converting (see _parse_ascii_number).
NUMBER_PATTERN = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
MAX_NUMBER_CHARS = 100
MAX_NUMBER = Decimal(10) ** 18
MAX_SCALE = 30  # the smallest non-zero number read is 1E-30
MAX_QUOTED_CHARS = 40
SURROGATE = re.compile("[\ud800-\udfff]")
# Three ASCII letters. str.isalpha() also accepts letters such as 'Ä', which no ISO 4217 code has.
CURRENCY_PATTERN = re.compile("[A-Za-z]{3}")


class RowRejected(Exception):
    """A source row that cannot become a usage event, with the field at fault."""

    def __init__(self, field_path: str, reason: str) -> None:
        super().__init__(f"{field_path}: {reason}")
        self.field_path = field_path
        self.reason = reason


def as_rejection(error: RowRejected | ValidationError) -> RowRejected:
    """Turn an event model's validation error into a row rejection that names the field."""
    if isinstance(error, RowRejected):
        return error
    details = error.errors()
    if not details:
        return RowRejected("(row)", str(error)[:300])
    path = ".".join(str(part) for part in details[0]["loc"]) or "(row)"
    return RowRejected(path, f"{details[0]['msg']} (the {error.title} event rejects it)")


# Errors a normaliser catches around one row: its own rejections, and the event models' checks on values that
# it passes through unchecked, such as a label longer than 512 characters or a utilisation above 100 %.
ROW_ERRORS = (RowRejected, ValidationError)


class FormatError(Exception):
    """The input as a whole is not in the expected format (wrong shape, missing header)."""


class InvalidSyntax(FormatError):
    """The input is not parseable at all: not JSON, not UTF-8, not CSV."""


class EmptyInput(FormatError):
    """The input has no bytes, or only white space and a byte order mark."""


# Every event type a normaliser may produce; each travels on its own topic (shared.topics.EVENT_TOPICS).
IngestEvent = (
    UsageRecorded | ProviderCostReported | SeatActivityReported | SeatEntitlementReported | GpuUtilisationReported
)


@dataclass(frozen=True, slots=True)
class ImportContext:
    """The tenant an input is recorded for, and facts about the input that its rows may not carry."""

    tenant: str
    correlation_id: str
    received_at: datetime
    file_name: str | None = None
    channel: str = "file"  # "file" or "webhook"
    # When a snapshot was taken, for inputs whose rows carry no time of their own (seat lists, metric
    # scrapes without sample timestamps). Each format documents what it does when this is None.
    observed_at: datetime | None = None
    # ISO 4217 code for exports that carry amounts but no currency column; never applied over a stated one.
    currency: str | None = None


@dataclass(slots=True)
class RowResult:
    """One source row: the events it became, or why it was rejected, or that it held no usage."""

    row_number: int
    raw: bytes
    event: IngestEvent | None = None
    error: RowRejected | None = None
    empty: bool = False
    # Further events from the same row, such as the credits of a Google Cloud billing row.
    related: tuple[IngestEvent, ...] = ()

    @property
    def events(self) -> tuple[IngestEvent, ...]:
        return ((self.event,) if self.event is not None else ()) + self.related


class Normaliser(Protocol):
    format_name: str
    description: str
    # Whether the format can be JSON or NDJSON. Detection prefers these for input that starts with { or [.
    reads_json: bool

    def detect(self, head: bytes, file_name: str | None) -> bool:
        """Tell from the first bytes of the input (and its name) whether this normaliser reads it."""
        ...

    def rows(self, stream: IO[bytes], context: ImportContext) -> Iterator[RowResult]:
        """Read the input and yield one result per source row, in order."""
        ...


class OccurrenceCounter:
    """Counts how often each key occurred in one input, in bounded memory.

    Keys are 16-byte digests kept in a dict until ``memory_keys`` of them are held. Beyond
    that the counts move to a private temporary SQLite database, which SQLite deletes when
    the connection closes, so an input of any length needs a bounded amount of memory.
    """

    def __init__(self, memory_keys: int = 100_000) -> None:
        self.memory_keys = memory_keys
        self._counts: dict[bytes, int] = {}
        self._spilled: sqlite3.Connection | None = None

    def next(self, key: bytes) -> int:
        """Count one more occurrence of ``key`` and return its 1-based occurrence number."""
        if self._spilled is None:
            count = self._counts.get(key, 0) + 1
            self._counts[key] = count
            if len(self._counts) > self.memory_keys:
                self._spill()
            return count
        row = self._spilled.execute(
            "INSERT INTO seen (key, n) VALUES (?, 1) ON CONFLICT (key) DO UPDATE SET n = n + 1 RETURNING n", (key,)
        ).fetchone()
        return int(row[0])

    def _spill(self) -> None:
        # An empty file name gives a private on-disk database that is deleted on close.
        # An import reads its rows in a worker thread, and the generator that owns this counter may be closed from
        # another thread. Only one thread uses the connection at a time, so the same-thread check is off.
        connection = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA cache_size = -8000")  # at most about 8 MiB of pages in memory
        connection.execute("CREATE TABLE seen (key BLOB PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID")
        connection.execute("BEGIN")
        connection.executemany("INSERT INTO seen (key, n) VALUES (?, ?)", self._counts.items())
        self._counts = {}
        self._spilled = connection

    def close(self) -> None:
        if self._spilled is not None:
            self._spilled.close()
            self._spilled = None


@dataclass
class IdentityAllocator:
    """Gives each event of one input a deterministic id, scoped by tenant and format.

    ``provider_id`` uses the provider's own id for the record, so a re-sent record is a
    duplicate however its content changed. ``event_id`` hashes a natural key: the
    period, model and dimensions of a row, never its measured amounts, so that a
    restated row keeps its identity and is caught as a conflict instead of being
    counted twice. Identical natural keys within one input are legitimate repeats
    (two rows of one day with the same keys): the second gets occurrence 2, so both
    are kept, while reading the same input again yields the same ids.
    """

    tenant: str
    format_name: str
    _occurrences: OccurrenceCounter = field(default_factory=OccurrenceCounter)

    def event_id(self, natural_key: dict[str, Any]) -> str:
        return self.event_id_of_canonical(json.dumps(natural_key, sort_keys=True, default=str, separators=(",", ":")))

    def event_id_of_canonical(self, canonical: str) -> str:
        """Give the id of a natural key already serialised as ``event_id`` does (sorted keys, compact, ASCII)."""
        occurrence = self._occurrences.next(hashlib.blake2b(canonical.encode(), digest_size=16).digest())
        name = f"{self.tenant}\x1f{self.format_name}\x1f{canonical}\x1f{occurrence}"
        return str(uuid.uuid5(EVENT_ID_NAMESPACE, name))

    def provider_id(self, scope: str, value: Any, field_path: str) -> str:
        """Derive the event id from the provider's own record id; an empty or missing id is rejected."""
        if not isinstance(value, str) or not value.strip():
            raise RowRejected(field_path, f"must be a non-empty string id, got {quoted(value)}")
        if len(value) > MAX_PROVIDER_ID_CHARS:
            raise RowRejected(field_path, f"is longer than {MAX_PROVIDER_ID_CHARS} characters ({len(value)})")
        name = f"{self.tenant}\x1f{self.format_name}\x1fid\x1f{scope}\x1f{value}"
        return str(uuid.uuid5(EVENT_ID_NAMESPACE, name))

    def close(self) -> None:
        self._occurrences.close()


def quoted(value: Any) -> str:
    """Return the repr of a value for an error message, cut to MAX_QUOTED_CHARS characters with a marker."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= MAX_QUOTED_CHARS:
        return repr(value) if isinstance(value, str) else text
    return f"{text[:MAX_QUOTED_CHARS]!r}... ({len(text)} characters)"


def _parse_ascii_number(value: Any, field_path: str, expected: str) -> Decimal:
    """Parse a finite number written in ASCII digits, or raise RowRejected quoting the value.

    On ASCII text without underscores, Decimal() accepts what NUMBER_PATTERN matches plus
    the names NaN and Infinity, so the pattern itself is not run: it costs more than the parse.
    """
    text = value.strip() if isinstance(value, str) else str(value)
    if len(text) > MAX_NUMBER_CHARS:
        raise RowRejected(
            field_path, f"must be {expected} of at most {MAX_NUMBER_CHARS} characters, got {quoted(value)}"
        )
    if not text.isascii() or "_" in text:
        raise RowRejected(field_path, f"must be {expected} in ASCII digits, got {quoted(value)}")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise RowRejected(field_path, f"must be {expected}, got {quoted(value)}") from None
    if not number.is_finite():
        raise RowRejected(field_path, f"must be a finite number, got {quoted(value)}")
    if number.is_zero():
        # Some exports write -0 or -0.00; a signed zero is still zero, and its scale is kept when it is usual.
        exponent = int(number.as_tuple().exponent)
        return Decimal((0, (0,), exponent)) if -MAX_SCALE <= exponent <= 0 else Decimal(0)
    # The exponent is checked first, without arithmetic: abs() of 1E+999999999 raises decimal.Overflow.
    if number.adjusted() > MAX_NUMBER.adjusted() or number.copy_abs() > MAX_NUMBER:
        raise RowRejected(field_path, f"is implausibly large ({quoted(value)})")
    if number.adjusted() < -MAX_SCALE:
        raise RowRejected(
            field_path, f"is too small ({quoted(value)}); the smallest non-zero value read is 1E-{MAX_SCALE}"
        )
    return number


def sha256_hex(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def whole_number(value: Any, field_path: str, *, required: bool = True) -> int | None:
    """Read a non-negative whole number; accept integral floats like 59200.0 that exports write."""
    if value is None or value == "":
        if required:
            raise RowRejected(field_path, "is missing")
        return None
    if isinstance(value, bool):
        raise RowRejected(field_path, f"must be a whole number, got a boolean {quoted(value)}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not value.is_integer():
            raise RowRejected(field_path, f"must be a whole number, got {quoted(value)}")
        number = int(value)
    elif isinstance(value, str | Decimal):
        decimal = _parse_ascii_number(value, field_path, "a whole number")
        if decimal != decimal.to_integral_value():
            raise RowRejected(field_path, f"must be a whole number, got {quoted(value)}")
        number = int(decimal)
    else:
        raise RowRejected(field_path, f"must be a whole number, got {type(value).__name__}")
    if number < 0:
        raise RowRejected(field_path, f"must not be negative, got {quoted(number)}")
    if number > 10**18:
        raise RowRejected(field_path, f"is implausibly large ({quoted(number)})")
    return number


def decimal_value(value: Any, field_path: str, *, required: bool = True) -> Decimal | None:
    """Read an exact decimal number from a string or a JSON number kept as text; floats are not accepted."""
    if value is None or value == "":
        if required:
            raise RowRejected(field_path, "is missing")
        return None
    if isinstance(value, bool):
        raise RowRejected(field_path, f"must be a number, got a boolean {quoted(value)}")
    if isinstance(value, float):
        raise RowRejected(field_path, "must be read as text, not as a binary float")
    if isinstance(value, Decimal) and not value.is_finite():
        raise RowRejected(field_path, f"must be a finite number, got {value}")
    if not isinstance(value, str | int | Decimal):
        raise RowRejected(field_path, f"must be a number, got {type(value).__name__}")
    return _parse_ascii_number(value, field_path, "a number")


def non_negative(value: Decimal | None, field_path: str) -> Decimal | None:
    if value is not None and value < 0:
        raise RowRejected(field_path, f"must not be negative, got {value}")
    return value


def plausible_instant(parsed: datetime, field_path: str, value: Any) -> datetime:
    """Convert an aware datetime to UTC, rejecting one outside EARLIEST to LATEST.

    Later steps add a day or move the instant to a tenant's time zone, which overflows
    Python's datetime near the years 1 and 9999, and no usage or bill is dated so far out.
    """
    try:
        instant = parsed.astimezone(UTC)
    except OverflowError:
        instant = None
    if instant is None or not EARLIEST <= instant < LATEST:
        raise RowRejected(field_path, f"is outside the years {EARLIEST.year} to {LATEST.year - 1}: {quoted(value)}")
    return instant


def epoch_seconds(value: Any, field_path: str) -> datetime:
    seconds = whole_number(value, field_path)
    assert seconds is not None  # required=True never returns None
    try:
        instant = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise RowRejected(field_path, f"is not a valid Unix time: {quoted(value)}") from None
    return plausible_instant(instant, field_path, value)


def rfc3339(value: Any, field_path: str) -> datetime:
    """Parse an RFC 3339 instant; a timestamp without a zone is rejected, not guessed."""
    if not isinstance(value, str) or not value:
        raise RowRejected(field_path, f"must be an RFC 3339 timestamp, got {quoted(value)}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RowRejected(field_path, f"must be an RFC 3339 timestamp, got {quoted(value)}") from None
    if parsed.tzinfo is None:
        raise RowRejected(field_path, f"has no time zone: {quoted(value)}")
    return plausible_instant(parsed, field_path, value)


def utc_timestamp(value: Any, field_path: str) -> datetime:
    """Parse an ISO 8601 timestamp that the format defines as UTC; a stated offset is honoured."""
    if not isinstance(value, str) or not value.strip():
        raise RowRejected(field_path, "is missing" if not value else f"must be a timestamp, got {quoted(value)}")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise RowRejected(field_path, f"must be a timestamp, got {quoted(value)}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return plausible_instant(parsed, field_path, value)


def utc_day(value: Any, field_path: str) -> tuple[datetime, datetime]:
    """Read a calendar date (YYYY-MM-DD, or an RFC 3339 midnight) as the UTC day it names: [start, end)."""
    if not isinstance(value, str) or not value.strip():
        raise RowRejected(field_path, f"must be a date YYYY-MM-DD, got {quoted(value)}")
    text = value.strip()
    try:
        day = date.fromisoformat(text[:10])
    except ValueError:
        raise RowRejected(field_path, f"must be a date YYYY-MM-DD, got {quoted(value)}") from None
    if len(text) > 10:
        instant = rfc3339(text, field_path)
        if instant != datetime.combine(day, datetime.min.time(), tzinfo=UTC):
            raise RowRejected(field_path, f"must be a UTC midnight, got {quoted(value)}")
    start = plausible_instant(datetime.combine(day, datetime.min.time(), tzinfo=UTC), field_path, value)
    return start, start + timedelta(days=1)


def checked_text(value: Any, field_path: str) -> Any:
    """Return a value parsed from JSON or a literal inside a field, rejecting text that cannot be stored.

    Escapes such as \\ud800 or \\u0000 decode to an unpaired surrogate or a NUL, which UTF-8 and
    PostgreSQL text cannot hold, so the event carrying them could not be serialised.
    """
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if "\x00" in node or (not node.isascii() and SURROGATE.search(node)):
                raise RowRejected(field_path, f"has text with a NUL or an unpaired surrogate: {quoted(node)}")
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list | tuple | set | frozenset):
            stack.extend(node)
    return value


def optional_str(value: Any, field_path: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RowRejected(field_path, f"must be a string, got {type(value).__name__}")
    if len(value) > 512:
        raise RowRejected(field_path, f"is longer than 512 characters ({len(value)})")
    return value


def currency_code(value: Any, field_path: str) -> str:
    """Read an ISO 4217 code; providers write it in either case ('usd', 'USD')."""
    if not isinstance(value, str) or not CURRENCY_PATTERN.fullmatch(value.strip()):
        raise RowRejected(field_path, f"must be an ISO 4217 currency code, got {quoted(value)}")
    return value.strip().upper()


def object_at(parent: dict[str, Any], name: str, field_path: str) -> dict[str, Any]:
    """Return a nested object that may be absent or null (then empty); anything else is rejected."""
    value = parent.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RowRejected(field_path, f"must be an object, got {type(value).__name__}")
    return value


def string_tags(values: dict[str, Any]) -> dict[str, str]:
    """Keep tag values that are set, as strings; non-string values are written as JSON text."""
    return {
        str(key)[:512]: (value if isinstance(value, str) else json.dumps(value, default=str))[:512]
        for key, value in values.items()
        if value is not None and value != ""
    }
