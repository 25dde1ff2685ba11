"""Google Cloud billing export (standard or detailed usage cost table), as flattened CSV or as NDJSON.

Every row is a line of a bill of record: its cost is ``cost`` in ``currency``. The
export comes in two shapes. One is CSV with dotted column names
(``service.description``), where the repeated fields sit inside a cell as JSON or
as Python literals (``[{'key': 'goog-resource-type', 'value': 'bigquery_resource'}]``),
as BigQuery-to-CSV tools write them. The other is newline-delimited JSON with nested
objects, which is flattened to the same dotted names. Reading rules:

- ``usage_start_time``/``usage_end_time`` carry a zone (``+00:00`` or `` UTC``); one
  without a zone is rejected.
- ``cost_type`` keeps its own category: ``regular`` is usage (a negative one a
  refund), ``tax`` is tax, ``adjustment`` and ``rounding_error`` are adjustments.
- Each entry of ``credits`` becomes its own credit event next to the row's usage
  event, never netted into the usage cost. Numbers in Python-literal cells are read
  through their shortest decimal text.
- Vertex AI rows (service ``C7E2-9256-1C43``) also give the model and token kind
  read from the SKU description, such as ``Gemini 2.5 Pro Text Input``, as a best effort.
- The event identity hashes every field except the measured amounts, so a restated
  row is caught as a conflict. Rows that Google appends later as corrections have
  their own ``export_time`` and are new rows.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any

from services.ingest.normalisers._csv import cell_count_error, peek, read_rows
from services.ingest.normalisers._json import canonical_bytes, load_json_or_lines
from services.ingest.normalisers.base import (
    ROW_ERRORS,
    FormatError,
    IdentityAllocator,
    ImportContext,
    RowRejected,
    RowResult,
    as_rejection,
    checked_text,
    currency_code,
    decimal_value,
    optional_str,
    quoted,
    rfc3339,
    sha256_hex,
    string_tags,
)
from shared.events import ChargeCategory, Evidence, Money, PricingBasis, UsageDimensions, UsageRecorded

REQUIRED = ("cost", "currency", "usage_start_time", "usage_end_time", "service.description")
VERTEX_AI_SERVICE_ID = "C7E2-9256-1C43"
_COST_TYPES = {
    "regular": ChargeCategory.USAGE,
    "tax": ChargeCategory.TAX,
    "adjustment": ChargeCategory.ADJUSTMENT,
    "rounding_error": ChargeCategory.ADJUSTMENT,
}
MEASURE_FIELDS = frozenset({"cost", "cost_at_list", "credits", "currency_conversion_rate"})
MEASURE_PREFIXES = ("usage.", "price.")
_SKU_MODEL_END = re.compile(r"\s+(Text|Input|Output|Image|Audio|Video|Cached|Context|Caching|Tokens|Characters)\b")


def _flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict):
            flat |= _flatten(item, f"{name}.")
        else:
            flat[name] = item
    return flat


def _literal(cell: Any, field_path: str) -> Any:
    """Read a repeated field: already a list (NDJSON), or JSON or a Python literal inside a CSV cell."""
    if cell is None or isinstance(cell, list | dict):
        return cell
    text = str(cell).strip()
    if not text:
        return None
    try:
        return checked_text(json.loads(text, parse_float=str), field_path)
    except (ValueError, RecursionError):
        pass
    try:
        return checked_text(ast.literal_eval(text), field_path)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise RowRejected(field_path, f"must be a JSON or literal list, got {quoted(text)}") from None


def _number_text(value: Any) -> Any:
    return repr(value) if isinstance(value, float) else value


def _instant(value: Any, field_path: str) -> datetime:
    text = str(value or "").strip()
    if text.endswith(" UTC"):
        text = text[: -len(" UTC")] + "+00:00"  # BigQuery writes timestamps as '2020-11-09 23:00:00 UTC'
    return rfc3339(text, field_path)


def _key_values(items: Any, field_path: str) -> dict[str, str]:
    parsed = _literal(items, field_path)
    if not parsed:
        return {}
    if not isinstance(parsed, list) or not all(isinstance(item, dict) and "key" in item for item in parsed):
        raise RowRejected(field_path, "must be a list of {key, value} objects")
    return string_tags({str(item["key"]): item.get("value") for item in parsed})


def vertex_reading(sku_description: str | None) -> tuple[str | None, str | None]:
    """Return the model and token kind that a Vertex AI SKU description names, when it does."""
    if not sku_description:
        return None, None
    lowered = sku_description.lower()
    kind = None
    if "output" in lowered:
        kind = "output"
    elif "cach" in lowered and "input" in lowered:
        kind = "cached_input"
    elif "input" in lowered:
        kind = "input"
    match = _SKU_MODEL_END.search(sku_description)
    if match is None or match.start() == 0:
        return None, kind
    return re.sub(r"\s+", "-", sku_description[: match.start()].strip().lower()), kind


def _check_csv_header(header: list[str]) -> None:
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise FormatError(f"the billing export lacks required fields: {', '.join(missing)}")


class GcpBillingExport:
    format_name = "gcp-billing-export"
    description = "Google Cloud billing export, standard or detailed (flattened CSV or NDJSON)"
    reads_json = True

    def detect(self, head: bytes, file_name: str | None) -> bool:
        first_line = head.split(b"\n", 1)[0]
        if b"billing_account_id" in first_line and b"sku.description" in first_line:
            return True
        return head.lstrip().startswith(b"{") and b'"billing_account_id"' in head and b'"sku"' in head

    def rows(self, stream: IO[bytes], context: ImportContext) -> Iterator[RowResult]:
        identities = IdentityAllocator(context.tenant, self.format_name)
        try:
            for row_number, row, raw in self._records(stream):
                missing = [name for name in REQUIRED if name not in row]
                if missing:
                    if row_number == 1:
                        raise FormatError(f"the billing export lacks required fields: {', '.join(missing)}")
                    yield RowResult(row_number, raw, error=RowRejected(missing[0], "is missing"))
                    continue
                try:
                    event, credits = self._events(row, row_number, raw, context, identities)
                except ROW_ERRORS as error:
                    yield RowResult(row_number, raw, error=as_rejection(error))
                else:
                    yield RowResult(row_number, raw, event=event, related=credits)
        finally:
            identities.close()

    @staticmethod
    def _records(stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any], bytes]]:
        buffered, head = peek(stream)
        if head.lstrip().startswith(b"{"):
            for index, document in enumerate(load_json_or_lines(buffered, "the billing export"), start=1):
                if not isinstance(document, dict):
                    raise FormatError(f"the billing export line {index} must be a JSON object")
                yield index, _flatten(document), canonical_bytes(document)
            return
        for row_number, _header, row in read_rows(
            buffered, what="the billing export", delimiter=",", check_header=_check_csv_header
        ):
            yield row_number, dict(row), json.dumps(row, ensure_ascii=False, sort_keys=True).encode()

    def _events(
        self,
        row: dict[str, Any],
        row_number: int,
        raw: bytes,
        context: ImportContext,
        identities: IdentityAllocator,
    ) -> tuple[UsageRecorded, tuple[UsageRecorded, ...]]:
        misaligned = cell_count_error(row)
        if misaligned is not None:
            raise misaligned
        start = _instant(row.get("usage_start_time"), "usage_start_time")
        end = _instant(row.get("usage_end_time"), "usage_end_time")
        if end < start:
            raise RowRejected("usage_end_time", f"is before usage_start_time ({end} < {start})")
        currency = currency_code(row.get("currency"), "currency")
        cost = decimal_value(_number_text(row.get("cost")), "cost")
        assert cost is not None
        list_cost = decimal_value(_number_text(row.get("cost_at_list")), "cost_at_list", required=False)
        cost_type = str(row.get("cost_type") or "regular").strip().lower()
        category = _COST_TYPES.get(cost_type)
        if category is None:
            raise RowRejected("cost_type", f"unknown cost type {quoted(row.get('cost_type'))}")
        if category is ChargeCategory.USAGE and cost < 0:
            category = ChargeCategory.REFUND

        service_id = optional_str(row.get("service.id"), "service.id")
        sku = optional_str(row.get("sku.description"), "sku.description")
        model, token_kind = vertex_reading(sku) if service_id == VERTEX_AI_SERVICE_ID else (None, None)
        tags = _key_values(row.get("labels"), "labels")
        tags |= {
            f"project:{key}": value for key, value in _key_values(row.get("project.labels"), "project.labels").items()
        }
        tags |= string_tags({"service_id": service_id, "sku_id": row.get("sku.id"), "token_type": token_kind})
        dimensions = UsageDimensions(
            project_id=optional_str(row.get("project.id"), "project.id"),
            account_id=optional_str(row.get("billing_account_id"), "billing_account_id"),
            resource_id=optional_str(row.get("resource.global_name") or row.get("resource.name"), "resource.name"),
            tags=tags,
        )
        natural_key = {
            name: value
            for name, value in row.items()
            if name not in MEASURE_FIELDS and not name.startswith(MEASURE_PREFIXES)
        }
        common: dict[str, Any] = {
            "occurred_at": start,
            "source": f"ingest.{self.format_name}",
            "tenant": context.tenant,
            "correlation_id": context.correlation_id,
            "provider": "gcp",
            "service": optional_str(row.get("service.description"), "service.description"),
            "model": model,
            "region": optional_str(row.get("location.region") or row.get("location.location"), "location.region"),
            "period_start": start,
            "period_end": end,
            "dimensions": dimensions,
            "pricing_basis": PricingBasis.PROVIDER_BILLED,
            "evidence": Evidence(
                format=self.format_name, file_name=context.file_name, row_number=row_number, raw_sha256=sha256_hex(raw)
            ),
        }
        usage = UsageRecorded(
            event_id=identities.event_id(natural_key),
            charge_category=category,
            provider_cost=Money(amount=cost, currency=currency),
            provider_list_cost=Money(amount=list_cost, currency=currency) if list_cost is not None else None,
            consumed_quantity=decimal_value(_number_text(row.get("usage.amount")), "usage.amount", required=False),
            consumed_unit=optional_str(row.get("usage.unit"), "usage.unit"),
            description=sku,
            **common,
        )
        return usage, self._credits(row, natural_key, currency, common, identities)

    @staticmethod
    def _credits(
        row: dict[str, Any],
        natural_key: dict[str, Any],
        currency: str,
        common: dict[str, Any],
        identities: IdentityAllocator,
    ) -> tuple[UsageRecorded, ...]:
        credits = _literal(row.get("credits"), "credits") or []
        if not isinstance(credits, list):
            raise RowRejected("credits", "must be a list")
        events: list[UsageRecorded] = []
        for index, credit in enumerate(credits):
            path = f"credits[{index}]"
            if not isinstance(credit, dict):
                raise RowRejected(path, "must be an object")
            amount = decimal_value(_number_text(credit.get("amount")), f"{path}.amount")
            assert amount is not None
            if amount > 0:
                raise RowRejected(f"{path}.amount", f"a credit must not be positive, got {amount}")
            dimensions = common["dimensions"].model_copy(
                update={"tags": common["dimensions"].tags | string_tags({"credit_type": credit.get("type")})}
            )
            key = {**natural_key, "credit_index": index, "credit_id": credit.get("id") or credit.get("name")}
            events.append(
                UsageRecorded(
                    event_id=identities.event_id(key),
                    charge_category=ChargeCategory.CREDIT,
                    provider_cost=Money(amount=amount, currency=currency),
                    description=optional_str(credit.get("full_name") or credit.get("name"), f"{path}.name"),
                    **{**common, "dimensions": dimensions, "model": None},
                )
            )
        return tuple(events)
