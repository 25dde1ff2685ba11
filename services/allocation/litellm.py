"""Import of LiteLLM's model price map (``model_prices_and_context_window.json``) into the price catalogue.

LiteLLM quotes USD per token (``input_cost_per_token: 2.5e-06``). The file is read
with every number as a Decimal, never a float, and each price becomes a row per
1,000,000 tokens (2.5e-06 → 2.50), so no binary-float artefact reaches the catalogue.
LiteLLM gives no dates, so the import takes the date from which the prices apply.
A price that changed closes its open row on that date and starts a new row there,
so usage before that date keeps its old price.

Mapped keys: ``input_cost_per_token``, ``output_cost_per_token``,
``cache_read_input_token_cost``, ``cache_creation_input_token_cost`` (5-minute
writes), ``cache_creation_input_token_cost_above_1hr``,
``output_cost_per_reasoning_token``, each with an optional ``_batches``,
``_flex`` or ``_priority`` suffix for the service tier and an optional
``_above_<N>k_tokens`` part for a long-context tier over N thousand input tokens.
Other price keys (audio tokens, per-second, per-image, search context) are
listed as skipped, never guessed.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from shared.catalogue import CatalogueError, ContextMeasure, PriceCatalogue, PriceRow
from shared.events import ServiceTier, UsageBucket

PER_MILLION = 1_000_000
BASE_KEYS = {
    "input_cost_per_token": UsageBucket.INPUT_UNCACHED_TOKENS,
    "output_cost_per_token": UsageBucket.OUTPUT_TOKENS,
    "cache_read_input_token_cost": UsageBucket.CACHE_READ_TOKENS,
    "cache_creation_input_token_cost": UsageBucket.CACHE_WRITE_TOKENS,
    "cache_creation_input_token_cost_above_1hr": UsageBucket.CACHE_WRITE_1H_TOKENS,
    "output_cost_per_reasoning_token": UsageBucket.REASONING_TOKENS,
}
TIER_SUFFIXES = {"_batches": ServiceTier.BATCH, "_flex": ServiceTier.FLEX, "_priority": ServiceTier.PRIORITY}
_CONTEXT = re.compile(r"^(?P<base>.+?)_above_(?P<thousands>\d+)k_tokens(?P<rest>.*)$")
# LiteLLM's provider names that differ from the provider names in usage events.
PROVIDERS = {"bedrock": "aws", "bedrock_converse": "aws", "azure_ai": "azure", "gemini": "google"}


@dataclass
class LiteLlmImport:
    rows: list[PriceRow]
    skipped: dict[str, list[str]] = field(default_factory=dict)  # model key → price keys not imported
    rejected: dict[str, str] = field(default_factory=dict)  # model key → why the model was left out


def provider_name(litellm_provider: str) -> str:
    if litellm_provider.startswith("vertex_ai"):
        return "google"
    return PROVIDERS.get(litellm_provider, litellm_provider)


def _parse_key(key: str) -> tuple[UsageBucket, ServiceTier, int | None] | None:
    tier = ServiceTier.STANDARD
    for suffix, suffix_tier in TIER_SUFFIXES.items():
        if key.endswith(suffix):
            key, tier = key[: -len(suffix)], suffix_tier
            break
    context_over = None
    match = _CONTEXT.match(key)
    if match is not None:
        key = match.group("base") + match.group("rest")
        context_over = int(match.group("thousands")) * 1000
    bucket = BASE_KEYS.get(key)
    return (bucket, tier, context_over) if bucket is not None else None


def read_price_map(path: Path, *, effective_from: datetime, providers: set[str] | None = None) -> LiteLlmImport:
    """Turn every model entry of the price map into catalogue rows; list what was skipped and why."""
    document = json.loads(path.read_text(), parse_float=Decimal, parse_int=Decimal)
    if not isinstance(document, dict):
        raise CatalogueError(f"{path}: must be a JSON object of model entries")
    result = LiteLlmImport(rows=[])
    for key, entry in document.items():
        if key == "sample_spec" or not isinstance(entry, dict):
            continue
        litellm_provider = entry.get("litellm_provider")
        if not isinstance(litellm_provider, str):
            result.rejected[key] = "no litellm_provider"
            continue
        provider = provider_name(litellm_provider)
        if providers and provider not in providers:
            continue
        route = litellm_provider.split("-")[0]  # "vertex_ai-anthropic_models" routes as "vertex_ai/..."
        model = key.split("/", 1)[1] if key.startswith((f"{litellm_provider}/", f"{route}/")) else key
        source = str(entry.get("source") or f"litellm {path.name}")
        rows: list[PriceRow] = []
        for price_key, value in entry.items():
            if not isinstance(price_key, str) or not ("cost" in price_key and isinstance(value, Decimal)):
                continue
            parsed = _parse_key(price_key)
            if parsed is None:
                result.skipped.setdefault(key, []).append(price_key)
                continue
            bucket, tier, context_over = parsed
            if value < 0:
                result.rejected[key] = f"{price_key} is negative ({value})"
                break
            rows.append(
                PriceRow(
                    provider=provider,
                    model=model,
                    bucket=bucket,
                    service_tier=tier,
                    unit_price=(value * PER_MILLION).normalize(),
                    price_per=PER_MILLION,
                    currency="USD",
                    effective_from=effective_from,
                    effective_to=None,
                    source=source,
                    context_over=context_over,
                    context_measure=ContextMeasure.INPUT_TOKENS if context_over is not None else None,
                )
            )
        if key not in result.rejected:
            result.rows.extend(rows)
    return result


@dataclass
class MergeSummary:
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    rejected: dict[str, str] = field(default_factory=dict)


def _variant(row: PriceRow) -> tuple[Any, ...]:
    return (row.provider, row.model, row.service_tier, row.bucket, row.region, row.context_over)


def merge_rows(existing: list[PriceRow], imported: list[PriceRow]) -> tuple[list[PriceRow], MergeSummary]:
    """Merge imported rows into catalogue rows, closing an open row whose price changed at the import date.

    Each model is merged and validated on its own. A model whose merged rows fail validation, such as
    a batch price dearer than the standard one, keeps its existing rows and is reported as rejected.
    """
    summary = MergeSummary()
    by_model: dict[tuple[str, str], list[PriceRow]] = defaultdict(list)
    for row in imported:
        by_model[(row.provider, row.model)].append(row)
    merged = list(existing)
    for (provider, model), rows in sorted(by_model.items()):
        try:
            attempt, counts = _merge_model(merged, rows)
            model_rows = [row for row in attempt if (row.provider, row.model) == (provider, model)]
            PriceCatalogue(model_rows, {}, version="check")
        except CatalogueError as error:
            summary.rejected[f"{provider}/{model}"] = str(error)
            continue
        merged = attempt
        summary.added += counts[0]
        summary.changed += counts[1]
        summary.unchanged += counts[2]
    return merged, summary


def _merge_model(current: list[PriceRow], rows: list[PriceRow]) -> tuple[list[PriceRow], tuple[int, int, int]]:
    result = list(current)
    added = changed = unchanged = 0
    for new in rows:
        open_rows = [row for row in result if _variant(row) == _variant(new) and row.effective_to is None]
        if not open_rows:
            result.append(new)
            added += 1
            continue
        latest = open_rows[0]
        if latest.unit_price * new.price_per == new.unit_price * latest.price_per and latest.currency == new.currency:
            unchanged += 1
            continue
        if latest.effective_from >= new.effective_from:
            raise CatalogueError(
                f"{latest.row_id} takes effect on or after the import date "
                f"{new.effective_from.date().isoformat()}; import with a later date"
            )
        result[result.index(latest)] = replace(latest, effective_to=new.effective_from)
        result.append(new)
        changed += 1
    return result, (added, changed, unchanged)
