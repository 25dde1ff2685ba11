"""Price updates: price changes made over the ops API, stored beside the catalogue and applied over it.

The updates file (``ALLOCATION_PRICE_UPDATES_FILE``, default ``price-updates.csv`` in ``AIFINOPS_DATA_DIR``)
has the catalogue's columns, one row per update, in the order they were made. Every load of the price sources
applies them to the catalogue file's rows, so an update outlives restarts and also survives a new catalogue
file. An update takes effect at its ``effective_from``:

- a row of the same provider, model, tier, bucket, region and context tier that starts at that very instant is
  corrected in place, and keeps its end;
- otherwise the row of that variant that is open (has no end) and started earlier is closed there, and the
  update opens a new row, so usage before that instant keeps its old price;
- a variant with no rows yet gets the update as its first row.

An update that falls inside a closed row, or before the open row starts, is rejected: it would rewrite a
price range that later rows depend on.

NOTE: the file is local to one allocation process. Replicas on several hosts need it on a shared volume.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

from shared.catalogue import CatalogueError, PriceCatalogue, PriceRow, parse_price_row, price_rows_csv, read_csv_rows


@dataclass
class UpdateCounts:
    added: int = 0
    closed: int = 0
    corrected: int = 0
    unchanged: int = 0


def _variant(row: PriceRow) -> tuple[object, ...]:
    return (row.provider, row.model, row.service_tier, row.bucket, row.region, row.context_over)


def _same_price(left: PriceRow, right: PriceRow) -> bool:
    return left.unit_price * right.price_per == right.unit_price * left.price_per and left.currency == right.currency


def apply_updates(rows: list[PriceRow], updates: list[PriceRow]) -> tuple[list[PriceRow], UpdateCounts]:
    """Apply updates in order to catalogue rows; raise CatalogueError naming the update that cannot apply."""
    result = list(rows)
    counts = UpdateCounts()
    for update in updates:
        variant = [row for row in result if _variant(row) == _variant(update)]
        starting = next((row for row in variant if row.effective_from == update.effective_from), None)
        if starting is not None:
            if _same_price(starting, update):
                counts.unchanged += 1
                continue
            result[result.index(starting)] = replace(update, effective_to=starting.effective_to)
            counts.corrected += 1
            continue
        later = [row for row in variant if row.effective_from > update.effective_from]
        covering = [row for row in variant if row.effective_to is not None and row.effective_to > update.effective_from]
        if later or covering:
            first = min([*later, *covering], key=lambda row: row.effective_from)
            raise CatalogueError(
                f"price update {update.row_id}: falls before or inside row {first.row_id}; give that row's start "
                "to correct it, or a start after every row of this model, bucket and tier"
            )
        open_row = next((row for row in variant if row.effective_to is None), None)
        if open_row is not None:
            if _same_price(open_row, update):
                counts.unchanged += 1
                continue
            result[result.index(open_row)] = replace(open_row, effective_to=update.effective_from)
            counts.closed += 1
        result.append(replace(update, effective_to=None))
        counts.added += 1
    return result, counts


def read_updates(path: Path | None) -> tuple[list[PriceRow], str]:
    """Read the stored updates and the file's text; a missing file means no updates."""
    if path is None or not path.exists():
        return [], ""
    text = path.read_text()
    return [parse_price_row(row, f"{path} line {line}") for line, row in read_csv_rows(text)], text


def with_updates(catalogue: PriceCatalogue, path: Path | None) -> PriceCatalogue:
    """Return the catalogue with the stored updates applied, under a version that covers both."""
    updates, text = read_updates(path)
    if not updates:
        return catalogue
    rows, _ = apply_updates(catalogue.all_rows(), updates)
    digest = hashlib.sha256(f"{catalogue.version}\0{text}".encode()).hexdigest()
    return PriceCatalogue(rows, catalogue.aliases, version=f"sha256:{digest[:16]}")


def store_updates(path: Path, updates: list[PriceRow]) -> None:
    """Add updates to the file, replacing a stored update of the same row id; write atomically."""
    stored, _ = read_updates(path)
    new_ids = {update.row_id for update in updates}
    remaining = [row for row in stored if row.row_id not in new_ids]
    header = (
        "Price updates made over the allocation ops API, applied over the catalogue in this order.\n"
        "unit_price is in currency per price_per units of the bucket."
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(price_rows_csv([*remaining, *updates], header))
    temporary.replace(path)


def updated_row_ids(path: Path | None) -> set[str]:
    return {row.row_id for row in read_updates(path)[0]}
