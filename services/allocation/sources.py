"""The files allocation prices and allocates by, loaded together and watched for changes.

A change to any of them (price catalogue, aliases, price updates, tenant terms, allocation rules)
makes the running service reload them before its next batch and re-price what the
change affects; ``aifinops prices reload`` does the same from the command line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from services.allocation.costing import allocation_version
from services.allocation.price_updates import with_updates
from services.allocation.pricing import PriceBook
from services.allocation.rules import AllocationRules
from services.allocation.settings import AllocationSettings
from services.allocation.terms import load_terms
from shared.catalogue import PriceCatalogue, default_catalogue_paths

FileStamp = tuple[str, int, int]


@dataclass(frozen=True)
class Loaded:
    book: PriceBook
    rules: AllocationRules
    version: str


@dataclass(frozen=True)
class AllocationSources:
    prices_file: Path | None = None
    aliases_file: Path | None = None
    terms_file: Path | None = None
    rules_file: Path | None = None
    price_updates_file: Path | None = None  # price changes made over the ops API (price_updates.py)

    @classmethod
    def from_settings(cls, settings: AllocationSettings) -> AllocationSources:
        return cls(
            settings.prices_file,
            settings.aliases_file,
            settings.terms_file,
            settings.rules_file,
            settings.price_updates_path(),
        )

    def paths(self) -> list[Path]:
        shipped_prices, shipped_aliases = default_catalogue_paths()
        found = [self.prices_file or shipped_prices, self.aliases_file or shipped_aliases]
        optional = (self.terms_file, self.rules_file, self.price_updates_file)
        return found + [path for path in optional if path is not None]

    def stamp(self) -> tuple[FileStamp, ...]:
        """Return each file's path, modification time and size: cheap to take before every batch."""
        stamps: list[FileStamp] = []
        for path in self.paths():
            try:
                status = path.stat()
            except OSError:
                stamps.append((str(path), -1, -1))
            else:
                stamps.append((str(path), status.st_mtime_ns, status.st_size))
        return tuple(stamps)

    def load(self) -> Loaded:
        """Read and validate every file; raise the file's own error, which names the row or field."""
        catalogue = with_updates(PriceCatalogue.load(self.prices_file, self.aliases_file), self.price_updates_file)
        terms = load_terms(self.terms_file) if self.terms_file else {}
        terms_version = (
            hashlib.sha256(self.terms_file.read_bytes()).hexdigest()[:16] if self.terms_file is not None else "none"
        )
        book = PriceBook(catalogue, terms, terms_version)
        rules = AllocationRules.load(self.rules_file) if self.rules_file else AllocationRules.empty()
        return Loaded(book, rules, allocation_version(book, rules))
