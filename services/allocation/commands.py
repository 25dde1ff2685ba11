"""The work behind the allocation commands of the ``aifinops`` CLI, callable from an API as well.

Like ``aifinops import``, these commands work on the allocation service's database
directly, so they also work while the service is down. Events they cannot send stay
in the allocation outbox, and the service's relay sends them later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from pathlib import Path

from aiokafka.errors import KafkaError
from rich.console import Console
from rich.text import Text

from services.allocation.commitments import Drawdown, data_clock, drawdowns
from services.allocation.focus import focus_csv, focus_rows
from services.allocation.fx import FxTable
from services.allocation.litellm import MergeSummary, merge_rows, read_price_map
from services.allocation.reconciliation import Tolerance, reconcile
from services.allocation.repricing import SweepResult, sweep
from services.allocation.settings import AllocationSettings
from services.allocation.showback import Period, Showback, build_showback
from services.allocation.sources import AllocationSources
from services.allocation.tables import TABLES
from services.allocation.terms import Contract
from shared.catalogue import (
    PriceCatalogue,
    aliases_csv,
    default_prices_text,
    parse_price_row,
    price_rows_csv,
    read_csv_rows,
)
from shared.db import Database
from shared.kafka import EventPublisher, ensure_topics
from shared.logging import get_logger
from shared.outbox import Outbox

log = get_logger(__name__)


@dataclass(frozen=True)
class ReloadResult:
    version: str
    catalogue_version: str
    sweep: SweepResult
    sent: bool


async def reload_prices(settings: AllocationSettings, *, only_stale: bool = True) -> ReloadResult:
    """Validate the price sources, then re-price every cost computed under other prices, terms or rules."""
    loaded = AllocationSources.from_settings(settings).load()
    database = Database(settings.database_url_for("allocation"))
    publisher = EventPublisher(settings.kafka_bootstrap_servers, client_id="aifinops-prices-reload")
    connected = False
    try:
        await database.create_tables(TABLES)
        try:
            await ensure_topics(settings.kafka_bootstrap_servers)
            await publisher.start()
            connected = True
        except KafkaError as error:
            log.warning("prices.broker_unreachable", error=repr(error)[:200], hint="the allocation relay sends later")
        outbox = Outbox("allocation", database, publisher)
        result = await sweep(database, outbox, loaded, only_stale=only_stale, send=connected)
        if result.touched:
            tolerance = Tolerance(settings.reconciliation_tolerance_percent, settings.reconciliation_tolerance_amount)
            async with database.transaction() as connection:
                variances = await reconcile(connection, result.touched, loaded.book, tolerance)
                await outbox.add(connection, variances)
            if connected:
                await outbox.send_now(variances)
        return ReloadResult(loaded.version, loaded.book.catalogue.version, result, connected)
    finally:
        await publisher.stop()
        await database.dispose()


def export_prices(settings: AllocationSettings, prices_path: Path, aliases_path: Path | None) -> PriceCatalogue:
    """Write the catalogue in force (validated) to a CSV file, and its aliases when a path is given."""
    catalogue = PriceCatalogue.load(settings.prices_file, settings.aliases_file)
    header = (
        f"aifinops price catalogue {catalogue.version}, exported {datetime.now(UTC).date().isoformat()}.\n"
        "unit_price is in currency per price_per units of the bucket; effective_to is exclusive."
    )
    prices_path.write_text(price_rows_csv(catalogue.all_rows(), header))
    if aliases_path is not None:
        aliases_path.write_text(aliases_csv(catalogue.aliases, f"aliases of price catalogue {catalogue.version}"))
    return catalogue


def import_litellm(
    source: Path, target: Path | None, *, effective_from: date, providers: set[str] | None, output: Path
) -> tuple[MergeSummary, dict[str, list[str]], int]:
    """Merge LiteLLM's price map into a catalogue CSV and write the result to ``output``."""
    imported = read_price_map(
        source, effective_from=datetime.combine(effective_from, time.min, tzinfo=UTC), providers=providers
    )
    text = target.read_text() if target is not None else default_prices_text()
    name = str(target or "prices.csv")
    existing = [parse_price_row(row, f"{name} line {line}") for line, row in read_csv_rows(text)]
    merged, summary = merge_rows(existing, imported.rows)
    summary.rejected.update(imported.rejected)
    header = (
        f"aifinops price catalogue with LiteLLM prices from {source.name}, "
        f"in force from {effective_from.isoformat()}.\n"
        "unit_price is in currency per price_per units of the bucket; effective_to is exclusive."
    )
    PriceCatalogue(merged, {}, version="check")
    output.write_text(price_rows_csv(sorted(merged, key=_order), header))
    return summary, imported.skipped, len(imported.rows)


def _order(row: object) -> tuple[str, ...]:
    return (
        row.provider,  # type: ignore[attr-defined]
        row.model,  # type: ignore[attr-defined]
        row.service_tier.value,  # type: ignore[attr-defined]
        row.bucket.value,  # type: ignore[attr-defined]
        row.region or "",  # type: ignore[attr-defined]
        str(row.context_over or 0).zfill(12),  # type: ignore[attr-defined]
        row.effective_from.isoformat(),  # type: ignore[attr-defined]
    )


async def showback(
    settings: AllocationSettings,
    tenant: str,
    *,
    dimensions: list[str],
    period: Period,
    currency: str | None,
    start: date | None,
    end: date | None,
) -> Showback:
    loaded = AllocationSources.from_settings(settings).load()
    terms = loaded.book.terms_for(tenant)
    fx = FxTable.load(settings.fx_rates_file) if settings.fx_rates_file else None
    database = Database(settings.database_url_for("allocation"))
    try:
        return await build_showback(
            database,
            tenant,
            dimensions=dimensions,
            period=period,
            zone=terms.time_zone,
            currency=currency or terms.reporting_currency,
            fx=fx,
            start=start,
            end=end,
        )
    finally:
        await database.dispose()


async def export_focus(
    settings: AllocationSettings, tenant: str, path: Path, *, start: date | None, end: date | None
) -> int:
    database = Database(settings.database_url_for("allocation"))
    try:
        rows = await focus_rows(
            database,
            tenant,
            start=datetime.combine(start, time.min, tzinfo=UTC) if start else None,
            end=datetime.combine(end, time.min, tzinfo=UTC) if end else None,
        )
    finally:
        await database.dispose()
    path.write_text(focus_csv(rows))
    return len(rows)


async def commitments(
    settings: AllocationSettings, tenant: str, now: datetime, extra: Sequence[Contract] = ()
) -> list[Drawdown]:
    """Return the drawdown as of ``now`` of the tenant's committed-spend contracts and of ``extra`` ones."""
    loaded = AllocationSources.from_settings(settings).load()
    fx = FxTable.load(settings.fx_rates_file) if settings.fx_rates_file else None
    terms = loaded.book.terms_for(tenant)
    known = {contract.contract_id for contract in terms.contracts}
    terms = replace(terms, contracts=(*terms.contracts, *(item for item in extra if item.contract_id not in known)))
    database = Database(settings.database_url_for("allocation"))
    try:
        return await drawdowns(database, terms, now, fx)
    finally:
        await database.dispose()


async def usage_clock(settings: AllocationSettings, tenant: str) -> datetime | None:
    """Return the tenant's data clock, the end of its newest usage, from the cost ledger."""
    database = Database(settings.database_url_for("allocation"))
    try:
        return await data_clock(database, tenant)
    finally:
        await database.dispose()


def render_drawdowns(results: list[Drawdown], console: Console, *, as_of: datetime) -> None:
    console.print()
    console.print(Text.assemble(("Committed spend", "bold"), f" as of {as_of.isoformat(timespec='minutes')}"))
    if not results:
        console.print("no contract with committed spend")
    for item in results:
        console.print(
            f"- {item.contract_id} ({item.provider}): drawn {item.drawn} of {item.committed} "
            f"({item.drawn_percent}%), remaining {item.remaining}",
            highlight=False,
        )
        if item.term_elapsed_percent is not None:
            projected = f"; projected at term end {item.projected_at_term_end}" if item.projected_at_term_end else ""
            console.print(f"    term elapsed {item.term_elapsed_percent}%{projected} (an estimate)", highlight=False)
        for code, amount in sorted(item.unconverted.items()):
            console.print(f"    not counted, no exchange rate: {amount} {code}", highlight=False)
