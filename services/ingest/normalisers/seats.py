"""Seat reports of AI tool licences: GitHub Copilot seats and billing, Microsoft 365 Copilot usage per user.

Each assigned seat becomes a seat-activity event and organisation totals become a
seat-entitlement event; risk and the optimizer read them for unused seats.

Dating: a Microsoft report states its ``reportRefreshDate``. GitHub's seat list and
billing details state no time of their own, so they are dated at the import's
``observed_at`` (``--observed-at``), or else at the UTC midnight of the day they are
received. That makes one snapshot per day, and the same list sent again that day
is a duplicate. A list that changed within the day is a conflict, so pass
``--observed-at`` to record it as a new snapshot.

GitHub timestamps carry offsets (``2021-10-14T00:53:32-06:00``) and are kept as
instants. Microsoft dates (``2024-06-12``) are calendar days, read as UTC midnight;
user names may be hashed when the tenant conceals them, and are kept as given.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Any

from services.ingest.normalisers._csv import CELL_COUNT_ERROR, cell_count_error, peek, read_rows
from services.ingest.normalisers._json import canonical_bytes, load_json
from services.ingest.normalisers.base import (
    ROW_ERRORS,
    FormatError,
    IdentityAllocator,
    ImportContext,
    RowRejected,
    RowResult,
    as_rejection,
    object_at,
    optional_str,
    rfc3339,
    sha256_hex,
    string_tags,
    utc_day,
    whole_number,
)
from shared.events import Evidence, SeatActivityReported, SeatEntitlementReported, UsageDimensions

GITHUB = ("github", "github-copilot")
MICROSOFT = ("microsoft", "microsoft-365-copilot")

# Microsoft 365 Copilot usage report: JSON property, CSV column, and the app a last-activity date belongs to.
M365_APPS = (
    ("microsoftTeamsCopilotLastActivityDate", "Microsoft Teams Copilot Last Activity Date", "teams"),
    ("wordCopilotLastActivityDate", "Word Copilot Last Activity Date", "word"),
    ("excelCopilotLastActivityDate", "Excel Copilot Last Activity Date", "excel"),
    ("powerPointCopilotLastActivityDate", "PowerPoint Copilot Last Activity Date", "powerpoint"),
    ("outlookCopilotLastActivityDate", "Outlook Copilot Last Activity Date", "outlook"),
    ("oneNoteCopilotLastActivityDate", "OneNote Copilot Last Activity Date", "onenote"),
    ("loopCopilotLastActivityDate", "Loop Copilot Last Activity Date", "loop"),
    ("copilotChatLastActivityDate", "Copilot Chat Last Activity Date", "copilot_chat"),
)
M365_REQUIRED = ("reportRefreshDate", "userPrincipalName")
M365_FIELDS = (
    ("reportRefreshDate", "Report Refresh Date"),
    ("userPrincipalName", "User Principal Name"),
    ("lastActivityDate", "Last Activity Date"),
    ("reportPeriod", "Report Period"),
)


def snapshot_time(context: ImportContext) -> datetime:
    """Date a snapshot that carries no time: the import's observed_at, else the UTC day it was received."""
    if context.observed_at is not None:
        return context.observed_at
    received = context.received_at.astimezone(UTC)
    return datetime(received.year, received.month, received.day, tzinfo=UTC)


def _evidence(format_name: str, context: ImportContext, row_number: int, raw: bytes) -> Evidence:
    return Evidence(format=format_name, file_name=context.file_name, row_number=row_number, raw_sha256=sha256_hex(raw))


class GitHubCopilotSeats:
    format_name = "github-copilot-seats"
    description = "GitHub Copilot seat assignments, GET /orgs/{org}/copilot/billing/seats (JSON page or list of pages)"
    reads_json = True

    def detect(self, head: bytes, file_name: str | None) -> bool:
        return b'"seats"' in head and b'"assignee"' in head

    def rows(self, stream: IO[bytes], context: ImportContext) -> Iterator[RowResult]:
        document = load_json(stream, "the Copilot seat list")
        pages = document if isinstance(document, list) else [document]
        if not all(isinstance(page, dict) and isinstance(page.get("seats"), list) for page in pages):
            raise FormatError("a Copilot seat list must be an object with a 'seats' list, or a list of such pages")
        as_of = snapshot_time(context)
        identities = IdentityAllocator(context.tenant, self.format_name)
        row_number = 0
        try:
            total = next((page.get("total_seats") for page in pages if page.get("total_seats") is not None), None)
            seats = [seat for page in pages for seat in page["seats"]]
            if total is not None:
                row_number += 1
                raw = canonical_bytes({"total_seats": total, "as_of": as_of.isoformat()})
                try:
                    event = self._entitlement(total, seats, as_of, context, identities, row_number, raw)
                except ROW_ERRORS as error:
                    yield RowResult(row_number, raw, error=as_rejection(error))
                else:
                    yield RowResult(row_number, raw, event=event)
            for index, seat in enumerate(seats):
                row_number += 1
                raw = canonical_bytes(seat)
                try:
                    event = self._seat(seat, f"seats[{index}]", as_of, context, identities, row_number, raw)
                except ROW_ERRORS as error:
                    yield RowResult(row_number, raw, error=as_rejection(error))
                else:
                    yield RowResult(row_number, raw, event=event)
        finally:
            identities.close()

    def _entitlement(
        self,
        total: Any,
        seats: list[Any],
        as_of: datetime,
        context: ImportContext,
        identities: IdentityAllocator,
        row_number: int,
        raw: bytes,
    ) -> SeatEntitlementReported:
        entitled = whole_number(total, "total_seats")
        assert entitled is not None
        pending = sum(1 for seat in seats if isinstance(seat, dict) and seat.get("pending_cancellation_date"))
        vendor, product = GITHUB
        return SeatEntitlementReported(
            event_id=identities.event_id({"kind": "entitlement", "as_of": as_of.isoformat()}),
            occurred_at=as_of,
            source=f"ingest.{self.format_name}",
            tenant=context.tenant,
            correlation_id=context.correlation_id,
            vendor=vendor,
            product=product,
            as_of=as_of,
            entitled_seats=entitled,
            pending_cancellation_seats=pending,
            evidence=_evidence(self.format_name, context, row_number, raw),
        )

    def _seat(
        self,
        seat: Any,
        field_path: str,
        as_of: datetime,
        context: ImportContext,
        identities: IdentityAllocator,
        row_number: int,
        raw: bytes,
    ) -> SeatActivityReported:
        if not isinstance(seat, dict):
            raise RowRejected(field_path, "must be an object")
        assignee = object_at(seat, "assignee", f"{field_path}.assignee")
        holder = optional_str(assignee.get("login") or assignee.get("slug"), f"{field_path}.assignee.login")
        if holder is None:
            raise RowRejected(f"{field_path}.assignee.login", "is missing")

        team = object_at(seat, "assigning_team", f"{field_path}.assigning_team")
        last_activity = seat.get("last_activity_at")
        editor = optional_str(seat.get("last_activity_editor"), f"{field_path}.last_activity_editor")
        pending = optional_str(seat.get("pending_cancellation_date"), f"{field_path}.pending_cancellation_date")
        if pending is not None:
            utc_day(pending, f"{field_path}.pending_cancellation_date")  # must be a valid date
        plan = optional_str(seat.get("plan_type"), f"{field_path}.plan_type")

        vendor, product = GITHUB
        return SeatActivityReported(
            event_id=identities.event_id({"as_of": as_of.isoformat(), "holder": holder, "plan": plan}),
            occurred_at=as_of,
            source=f"ingest.{self.format_name}",
            tenant=context.tenant,
            correlation_id=context.correlation_id,
            vendor=vendor,
            product=product,
            as_of=as_of,
            seat_holder=holder,
            plan=plan,
            assigned_at=rfc3339(seat["created_at"], f"{field_path}.created_at") if seat.get("created_at") else None,
            last_activity_at=rfc3339(last_activity, f"{field_path}.last_activity_at") if last_activity else None,
            last_activity_surface=editor.split("/", 1)[0] if editor else None,
            assigning_team=optional_str(team.get("name") or team.get("slug"), f"{field_path}.assigning_team.name"),
            pending_cancellation_date=pending,
            dimensions=UsageDimensions(user_id=holder),
            evidence=_evidence(self.format_name, context, row_number, raw),
        )


class GitHubCopilotBilling:
    format_name = "github-copilot-billing"
    description = "GitHub Copilot organisation billing details, GET /orgs/{org}/copilot/billing (JSON)"
    reads_json = True

    def detect(self, head: bytes, file_name: str | None) -> bool:
        return b'"seat_breakdown"' in head

    def rows(self, stream: IO[bytes], context: ImportContext) -> Iterator[RowResult]:
        document = load_json(stream, "the Copilot billing details")
        if not isinstance(document, dict) or not isinstance(document.get("seat_breakdown"), dict):
            raise FormatError("Copilot billing details must be an object with a 'seat_breakdown' object")
        raw = canonical_bytes(document)
        as_of = snapshot_time(context)
        identities = IdentityAllocator(context.tenant, self.format_name)
        try:
            yield RowResult(1, raw, event=self._event(document, as_of, context, identities, raw))
        except ROW_ERRORS as error:
            yield RowResult(1, raw, error=as_rejection(error))
        finally:
            identities.close()

    def _event(
        self,
        document: dict[str, Any],
        as_of: datetime,
        context: ImportContext,
        identities: IdentityAllocator,
        raw: bytes,
    ) -> SeatEntitlementReported:
        breakdown = document["seat_breakdown"]
        entitled = whole_number(breakdown.get("total"), "seat_breakdown.total")
        assert entitled is not None
        vendor, product = GITHUB
        tags = string_tags(
            {"plan": document.get("plan_type"), "seat_management_setting": document.get("seat_management_setting")}
        )
        return SeatEntitlementReported(
            event_id=identities.event_id({"kind": "billing", "as_of": as_of.isoformat()}),
            occurred_at=as_of,
            source=f"ingest.{self.format_name}",
            tenant=context.tenant,
            correlation_id=context.correlation_id,
            vendor=vendor,
            product=product,
            as_of=as_of,
            entitled_seats=entitled,
            active_seats=whole_number(
                breakdown.get("active_this_cycle"), "seat_breakdown.active_this_cycle", required=False
            ),
            inactive_seats=whole_number(
                breakdown.get("inactive_this_cycle"), "seat_breakdown.inactive_this_cycle", required=False
            ),
            pending_cancellation_seats=whole_number(
                breakdown.get("pending_cancellation"), "seat_breakdown.pending_cancellation", required=False
            ),
            dimensions=UsageDimensions(tags=tags),
            evidence=_evidence(self.format_name, context, 1, raw),
        )


def _check_m365_header(header: list[str]) -> None:
    missing = [column for name, column in M365_FIELDS if name in M365_REQUIRED and column not in header]
    if missing:
        raise FormatError(f"the Microsoft 365 Copilot usage report lacks columns: {', '.join(missing)}")


class Microsoft365CopilotUsage:
    format_name = "m365-copilot-usage"
    description = "Microsoft 365 Copilot usage user detail report, Microsoft Graph (JSON or CSV)"
    reads_json = True

    def detect(self, head: bytes, file_name: str | None) -> bool:
        return b"getMicrosoft365CopilotUsageUserDetail" in head or b"Copilot Chat Last Activity Date" in head

    def rows(self, stream: IO[bytes], context: ImportContext) -> Iterator[RowResult]:
        identities = IdentityAllocator(context.tenant, self.format_name)
        try:
            for row_number, record, raw in self._records(stream):
                try:
                    event = self._event(record, row_number, raw, context, identities)
                except ROW_ERRORS as error:
                    yield RowResult(row_number, raw, error=as_rejection(error))
                else:
                    yield RowResult(row_number, raw, event=event)
        finally:
            identities.close()

    @staticmethod
    def _records(stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any], bytes]]:
        """Yield each user record with JSON property names, from the Graph JSON or the CSV report."""
        buffered, head = peek(stream)
        if head.lstrip().startswith(b"{"):
            document = load_json(buffered, "the Microsoft 365 Copilot usage report")
            users = document.get("value") if isinstance(document, dict) else None
            if not isinstance(users, list):
                raise FormatError("a Microsoft Graph report must be an object with a 'value' list")
            for index, user in enumerate(users, start=1):
                yield index, user if isinstance(user, dict) else {"__invalid__": user}, canonical_bytes(user)
            return
        columns = {column: name for name, column in M365_FIELDS} | {column: name for name, column, _ in M365_APPS}
        for row_number, _header, row in read_rows(
            buffered, what="the Microsoft 365 Copilot usage report", check_header=_check_m365_header
        ):
            record = {columns[column]: value for column, value in row.items() if column in columns}
            if CELL_COUNT_ERROR in row:
                record[CELL_COUNT_ERROR] = row[CELL_COUNT_ERROR]
            yield row_number, record, json.dumps(row, ensure_ascii=False, sort_keys=True).encode()

    def _event(
        self,
        record: dict[str, Any],
        row_number: int,
        raw: bytes,
        context: ImportContext,
        identities: IdentityAllocator,
    ) -> SeatActivityReported:
        if "__invalid__" in record:
            raise RowRejected(f"value[{row_number - 1}]", "must be an object")
        misaligned = cell_count_error(record)
        if misaligned is not None:
            raise misaligned
        as_of, _ = utc_day(record.get("reportRefreshDate"), "reportRefreshDate")
        holder = optional_str(record.get("userPrincipalName"), "userPrincipalName")
        if holder is None:
            raise RowRejected("userPrincipalName", "is missing")

        last_activity = record.get("lastActivityDate")
        last_at = utc_day(last_activity, "lastActivityDate")[0] if last_activity else None
        latest_app: tuple[datetime, str] | None = None
        for name, _column, app in M365_APPS:
            if record.get(name):
                day = utc_day(record[name], name)[0]
                if latest_app is None or day > latest_app[0]:
                    latest_app = (day, app)

        period = record.get("reportPeriod")
        periods = record.get("copilotActivityUserDetailsByPeriod")
        if period is None and isinstance(periods, list) and periods and isinstance(periods[0], dict):
            period = periods[0].get("reportPeriod")
        tags = string_tags({"report_period_days": str(period) if period is not None else None})

        vendor, product = MICROSOFT
        return SeatActivityReported(
            event_id=identities.event_id({"as_of": as_of.isoformat(), "holder": holder, "period": tags}),
            occurred_at=as_of,
            source=f"ingest.{self.format_name}",
            tenant=context.tenant,
            correlation_id=context.correlation_id,
            vendor=vendor,
            product=product,
            as_of=as_of,
            seat_holder=holder,
            last_activity_at=last_at,
            last_activity_surface=latest_app[1] if latest_app else None,
            dimensions=UsageDimensions(user_id=holder, tags=tags),
            evidence=_evidence(self.format_name, context, row_number, raw),
        )
