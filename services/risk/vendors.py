"""Tell AI usage apart from other lines of a bill, and name its vendor.

A cost line is AI usage when its provider and service match a row of ``data/ai_vendors.csv`` (OpenAI,
Anthropic, Azure OpenAI, Bedrock, Vertex AI ...) or when it names a model, because only AI usage reports carry
one. Policy and shadow-AI checks look at AI usage only; a storage or network line of a cloud bill is neither
approved nor unapproved AI.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from fnmatch import fnmatchcase
from importlib import resources
from pathlib import Path


@dataclass(frozen=True, slots=True)
class VendorRow:
    provider: str
    service: str
    vendor: str


class AiVendors:
    def __init__(self, rows: list[VendorRow]) -> None:
        self.rows = rows

    @classmethod
    def load(cls, path: Path | None = None) -> AiVendors:
        text = (
            path.read_text()
            if path is not None
            else resources.files("services.risk.data").joinpath("ai_vendors.csv").read_text()
        )
        lines = [line for line in io.StringIO(text) if line.strip() and not line.startswith("#")]
        rows = [
            VendorRow(row["provider"].strip().lower(), row["service"].strip().lower(), row["vendor"].strip())
            for row in csv.DictReader(lines)
        ]
        return cls(rows)

    def vendor_of(self, provider: str, service: str | None, model: str | None) -> str | None:
        """Return the AI vendor of a cost line, or None when the line is not AI usage."""
        provider_key = provider.lower()
        service_key = (service or "").lower()
        for row in self.rows:
            if row.provider == provider_key and fnmatchcase(service_key, row.service):
                return row.vendor
        return provider_key if model else None
