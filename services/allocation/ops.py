"""The allocation ops API (``aifinops.allocation.v1.AllocationOps``): spend, prices, re-pricing and rules.

Spend and prices stream one message per row, because a tenant's spend by day and several dimensions, or the
whole catalogue, can be large. Re-pricing streams its progress. It runs the same sweep as the service's
own re-pricing and ``services/allocation/commands.py``, so corrections are stored and published the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc
from sqlalchemy import func, select

from services.allocation.fx import FxTable
from services.allocation.ledger import LEDGER
from services.allocation.price_updates import apply_updates, store_updates, updated_row_ids
from services.allocation.reconciliation import Tolerance, reconcile
from services.allocation.repricing import SweepResult, sweep
from services.allocation.settings import AllocationSettings
from services.allocation.showback import ShowbackError, build_showback
from services.allocation.sources import AllocationSources, Loaded
from shared.catalogue import CatalogueError, PriceCatalogue, PriceRow, parse_price_row
from shared.db import Database
from shared.events import ChargeCategory
from shared.grpc_api import (
    Conflict,
    InvalidArgument,
    authorised_tenant,
    client_name,
    decimal_field,
    decode_page_token,
    encode_page_token,
    handle_errors,
    handle_stream_errors,
    page_size,
    require_every_tenant,
)
from shared.logging import get_logger
from shared.ops import ServiceRegistration
from shared.outbox import Outbox
from shared.protos.allocation.v1 import allocation_pb2, allocation_pb2_grpc
from shared.protos.common.v1 import common_pb2

log = get_logger(__name__)

PERIODS = ("day", "month", "total")
DEFAULT_PRICE_PER = 1_000_000


def _day(value: str, field: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(field, f"must be a date YYYY-MM-DD, got {value!r}") from None


def _zone(value: str) -> ZoneInfo | None:
    if not value:
        return None
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument(
            "time_zone", f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin"
        ) from None


def _price_message(row: PriceRow, version: str, updated: set[str]) -> allocation_pb2.Price:
    return allocation_pb2.Price(
        row_id=row.row_id, provider=row.provider, model=row.model, bucket=row.bucket.value,
        service_tier=row.service_tier.value,
        unit_price=common_pb2.Money(amount=format(row.unit_price, "f"), currency=row.currency),
        price_per=row.price_per, effective_from=row.effective_from.isoformat(),
        effective_to=row.effective_to.isoformat() if row.effective_to else "", source=row.source,
        region=row.region or "", context_over=row.context_over or 0,
        context_measure=row.context_measure.value if row.context_measure else "", updated=row.row_id in updated,
        catalogue_version=version,
    )  # fmt: skip


def _update_row(index: int, update: allocation_pb2.PriceUpdate, changed_by: str) -> PriceRow:
    """Validate one price update into a catalogue row; raise InvalidArgument naming the field."""
    where = f"updates[{index}]"
    if not update.HasField("unit_price"):
        raise InvalidArgument(f"{where}.unit_price", "is required")
    amount = decimal_field(update.unit_price.amount, f"{where}.unit_price.amount")
    if update.price_per < 0:
        raise InvalidArgument(f"{where}.price_per", f"must be positive, got {update.price_per}")
    if not update.effective_from:
        raise InvalidArgument(f"{where}.effective_from", "is required")
    source = update.source or f"price update by {changed_by}"
    try:
        return parse_price_row(
            {
                "provider": update.provider,
                "model": update.model,
                "bucket": update.bucket,
                "service_tier": update.service_tier or "standard",
                "unit_price": format(amount, "f"),
                "price_per": str(update.price_per or DEFAULT_PRICE_PER),
                "currency": update.unit_price.currency,
                "effective_from": update.effective_from,
                "effective_to": "",
                "source": source,
                "region": update.region,
            },  # fmt: skip
            where,
        )
    except CatalogueError as error:
        location, _, reason = str(error).partition(": ")
        column, separator, detail = reason.partition(": ")
        if separator and column.isidentifier():
            raise InvalidArgument(f"{location}.{column}", detail) from None
        raise InvalidArgument(location, reason) from None


class AllocationOps(allocation_pb2_grpc.AllocationOpsServicer):
    def __init__(self, database: Database, outbox: Outbox, settings: AllocationSettings, tolerance: Tolerance) -> None:
        self.database = database
        self.outbox = outbox
        self.settings = settings
        self.sources = AllocationSources.from_settings(settings)
        self.tolerance = tolerance
        self._updating = asyncio.Lock()

    @property
    def updates_file(self) -> Path:
        return self.settings.price_updates_path()

    def _load(self) -> Loaded:
        try:
            return self.sources.load()
        except ValueError as error:
            raise Conflict(f"the price sources are invalid, fix them first: {error}") from None

    @handle_stream_errors
    async def StreamSpend(
        self, request: allocation_pb2.StreamSpendRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[allocation_pb2.SpendRow]:
        tenant = authorised_tenant(request.tenant)
        period = request.period or "month"
        if period not in PERIODS:
            raise InvalidArgument("period", f"must be one of {', '.join(PERIODS)}, got {period!r}")

        categories = {category.value for category in ChargeCategory}
        unknown = sorted(set(request.charge_categories) - categories)
        if unknown:
            raise InvalidArgument(
                "charge_categories", f"unknown category {unknown[0]!r}; use {', '.join(sorted(categories))}"
            )
        start, end = _day(request.start_day, "start_day"), _day(request.end_day, "end_day")
        if start is not None and end is not None and end <= start:
            raise InvalidArgument("end_day", f"must be after start_day {start}, got {end}")
        zone = _zone(request.time_zone)

        terms = self._load().book.terms_for(tenant)
        currency = request.currency or terms.reporting_currency
        if currency is not None and (len(currency) != 3 or not currency.isalpha() or not currency.isupper()):
            raise InvalidArgument("currency", f"must be an ISO 4217 code like USD, got {currency!r}")

        fx = FxTable.load(self.settings.fx_rates_file) if self.settings.fx_rates_file else None
        try:
            showback = await build_showback(
                self.database, tenant, dimensions=list(request.dimensions) or ["team"], period=period,  # type: ignore[arg-type]
                zone=zone or terms.time_zone, currency=currency, fx=fx, start=start, end=end,
                charge_categories=list(request.charge_categories),
            )  # fmt: skip
        except ShowbackError as error:
            raise InvalidArgument("dimensions", str(error)) from None
        for row in showback.rows():
            yield allocation_pb2.SpendRow(
                period=row["period"],
                dimensions={name: row[name] for name in showback.dimensions},
                amount=common_pb2.Money(amount=row["amount"], currency=row["currency"]),
                time_zone=showback.time_zone,
                unconverted=currency is not None and row["currency"] != currency,
            )

    @handle_stream_errors
    async def StreamPrices(
        self, request: allocation_pb2.StreamPricesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[allocation_pb2.Price]:
        catalogue = self._load().book.catalogue
        updated = updated_row_ids(self.updates_file)
        for row in catalogue.all_rows():
            if request.provider and row.provider != request.provider:
                continue
            if request.model and row.model != request.model:
                continue
            yield _price_message(row, catalogue.version, updated)

    @handle_errors
    async def UpdatePrices(self, request: allocation_pb2.UpdatePricesRequest, context: grpc.aio.ServicerContext) -> Any:
        require_every_tenant("a price update")
        if not request.updates:
            raise InvalidArgument("updates", "must contain at least one price update")
        changed_by = request.changed_by or client_name()
        rows = [_update_row(index, update, changed_by) for index, update in enumerate(request.updates)]
        async with self._updating:
            current = self._load().book.catalogue
            try:
                merged, counts = apply_updates(current.all_rows(), rows)
                PriceCatalogue(merged, current.aliases, version="check")
            except CatalogueError as error:
                raise InvalidArgument("updates", str(error)) from None
            store_updates(self.updates_file, rows)
            version = self._load().book.catalogue.version
        log.info(
            "prices.updated", changed_by=changed_by, added=counts.added, closed=counts.closed,
            corrected=counts.corrected, catalogue_version=version,
        )  # fmt: skip
        return allocation_pb2.UpdatePricesResponse(
            catalogue_version=version, added=counts.added, closed=counts.closed, corrected=counts.corrected,
            unchanged=counts.unchanged,
        )  # fmt: skip

    @handle_stream_errors
    async def Reprice(
        self, request: allocation_pb2.RepriceRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[allocation_pb2.RepriceProgress]:
        require_every_tenant("re-pricing")
        loaded = self._load()
        total = await self._count(loaded, only_stale=not request.all)
        updates: asyncio.Queue[SweepResult] = asyncio.Queue()

        def message(result: SweepResult, *, done: bool = False) -> allocation_pb2.RepriceProgress:
            return allocation_pb2.RepriceProgress(
                examined=result.examined, total=max(total, result.examined), corrected=result.corrected,
                unchanged=result.restamped, credits_added=result.credits_added, done=done, version=loaded.version,
                catalogue_version=loaded.book.catalogue.version,
            )  # fmt: skip

        work = asyncio.create_task(self._reprice(loaded, not request.all, updates.put_nowait))
        try:
            yield message(SweepResult())
            while not work.done() or not updates.empty():
                waiting = asyncio.create_task(updates.get())
                await asyncio.wait({work, waiting}, return_when=asyncio.FIRST_COMPLETED)
                if waiting.done():
                    yield message(waiting.result())
                else:
                    waiting.cancel()
            yield message(work.result(), done=True)
        finally:
            if not work.done():  # the client went away or its deadline passed: stop after the current page
                work.cancel()
                log.warning("prices.reprice_cancelled", version=loaded.version)

    async def _reprice(self, loaded: Loaded, only_stale: bool, progress: Any) -> SweepResult:
        result = await sweep(self.database, self.outbox, loaded, only_stale=only_stale, progress=progress)
        if result.touched:
            async with self.database.transaction() as connection:
                variances = await reconcile(connection, result.touched, loaded.book, self.tolerance)
                await self.outbox.add(connection, variances)
            await self.outbox.send_now(variances)
        return result

    async def _count(self, loaded: Loaded, *, only_stale: bool) -> int:
        query = select(func.count()).select_from(LEDGER)
        if only_stale:
            query = query.where((LEDGER.c.pricing_version != loaded.version) | LEDGER.c.pricing_version.is_(None))
        async with self.database.engine.connect() as connection:
            return int((await connection.execute(query)).scalar_one())

    @handle_errors
    async def ListAllocationRules(
        self, request: allocation_pb2.ListAllocationRulesRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        size = page_size(request.page_size)
        keyset = decode_page_token(request.page_token, 1)
        loaded = self._load()
        after = int(keyset[0]) if keyset is not None else 0
        rules = list(enumerate(loaded.rules.rules, start=1))[after : after + size]
        messages = [
            allocation_pb2.AllocationRule(
                position=position, rule_id=rule.rule_id, conditions=rule.conditions, tags=rule.tags,
                allocation={} if rule.pool else {
                    name: str(value) for name, value in rule.allocation.model_dump().items() if value is not None
                },
                pool=rule.pool or "",
            )
            for position, rule in rules
        ]  # fmt: skip
        last = rules[-1][0] if rules else after
        token = encode_page_token([last]) if last < len(loaded.rules.rules) else ""
        return allocation_pb2.ListAllocationRulesResponse(
            rules=messages, next_page_token=token, rules_version=loaded.version
        )


def registration(
    database: Database, outbox: Outbox, settings: AllocationSettings, tolerance: Tolerance
) -> ServiceRegistration:
    servicer = AllocationOps(database, outbox, settings, tolerance)
    return ServiceRegistration(
        add_to_server=lambda server: allocation_pb2_grpc.add_AllocationOpsServicer_to_server(servicer, server),
        full_name=allocation_pb2.DESCRIPTOR.services_by_name["AllocationOps"].full_name,
        scopes={
            "StreamSpend": "read",
            "StreamPrices": "read",
            "ListAllocationRules": "read",
            "UpdatePrices": "write",
            "Reprice": "write",
        },
    )
