"""NVIDIA DCGM exporter metrics in the Prometheus text format: mean GPU utilisation over a window.

The input is one scrape or several concatenated. Samples are grouped into one
series per GPU and attribution: host, GPU UUID, and the ``namespace``, ``pod`` and
``container`` labels (or their ``exported_`` forms after a Prometheus relabel).
Each series becomes one GPU-utilisation event with the mean of its
``DCGM_FI_DEV_GPU_UTIL`` samples (percent), or of ``DCGM_FI_PROF_GR_ENGINE_ACTIVE``
(a ratio, times 100) when the exporter only has profiling metrics. The latest
framebuffer used and free samples (MiB) give the memory figures; used plus free
plus reserved is the total.

Time: a sample's own timestamp (milliseconds) places it. Samples without one are
placed at the import's ``observed_at`` (``--observed-at``); a series with neither is
rejected, because dating it at the time of import would turn two identical scrapes
of an idle GPU into one. The window runs from the first to the last sample.
A series without any utilisation sample is read as empty.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import IO

from services.ingest.normalisers._text import decode_utf8
from services.ingest.normalisers.base import (
    NUMBER_PATTERN,
    ROW_ERRORS,
    EmptyInput,
    FormatError,
    IdentityAllocator,
    ImportContext,
    InvalidSyntax,
    RowRejected,
    RowResult,
    as_rejection,
    plausible_instant,
    quoted,
    sha256_hex,
    string_tags,
)
from shared.events import Evidence, GpuUtilisationReported, UsageDimensions

MAX_INPUT_BYTES = 64 * 1024 * 1024
NON_FINITE_SAMPLES = frozenset({"NaN", "+Inf", "-Inf", "Inf"})
UTILISATION_PERCENT = "DCGM_FI_DEV_GPU_UTIL"
ENGINE_ACTIVE_RATIO = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
MEMORY_METRICS = {"DCGM_FI_DEV_FB_USED": "used", "DCGM_FI_DEV_FB_FREE": "free", "DCGM_FI_DEV_FB_RESERVED": "reserved"}
ATTRIBUTION_LABELS = ("namespace", "pod", "container")
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+(-?[0-9]+))?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


@dataclass
class _Series:
    host: str | None
    gpu_id: str | None
    gpu_model: str | None
    tags: dict[str, str]
    lines: list[str] = field(default_factory=list)
    utilisation: list[tuple[datetime | None, Decimal]] = field(default_factory=list)
    engine_active: list[tuple[datetime | None, Decimal]] = field(default_factory=list)
    memory: dict[str, Decimal] = field(default_factory=dict)

    def samples(self) -> list[tuple[datetime | None, Decimal]]:
        """Utilisation samples in percent: GPU_UTIL when the series has any, else the engine-active ratio."""
        return self.utilisation or self.engine_active


def parse_labels(text: str, line_number: int) -> dict[str, str]:
    body = text[1:-1]
    labels: dict[str, str] = {}
    position = 0
    while position < len(body):
        match = _LABEL.match(body, position)
        if match is None:
            raise InvalidSyntax(f"line {line_number}: cannot read the labels {quoted(text)}")
        labels[match.group(1)] = match.group(2).replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        position = match.end()
    return labels


def _sample_time(timestamp_ms: str, line_number: int) -> datetime:
    try:
        return plausible_instant(datetime.fromtimestamp(int(timestamp_ms) / 1000, UTC), "timestamp", timestamp_ms)
    except (OverflowError, OSError, ValueError, RowRejected):
        raise InvalidSyntax(
            f"line {line_number}: timestamp {quoted(timestamp_ms)} is not a time in milliseconds since 1970"
        ) from None


def _value(text: str, line_number: int) -> Decimal:
    # The text format also allows NaN, +Inf and -Inf. They are read here and rejected per GPU series.
    if text not in NON_FINITE_SAMPLES and not NUMBER_PATTERN.fullmatch(text):
        raise InvalidSyntax(f"line {line_number}: sample value {quoted(text)} is not a number in ASCII digits")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidSyntax(f"line {line_number}: sample value {quoted(text)} is not a number") from None
    return value


class DcgmExporterMetrics:
    format_name = "dcgm-exporter"
    description = "NVIDIA DCGM exporter metrics, Prometheus text format: mean GPU utilisation per GPU"
    reads_json = False

    def detect(self, head: bytes, file_name: str | None) -> bool:
        return b"DCGM_FI_" in head and (b"# TYPE" in head or b"# HELP" in head or b"{" in head)

    def rows(self, stream: IO[bytes], context: ImportContext) -> Iterator[RowResult]:
        data = stream.read(MAX_INPUT_BYTES + 1)
        if len(data) > MAX_INPUT_BYTES:
            raise FormatError(f"the metrics input is larger than {MAX_INPUT_BYTES} bytes; send one scrape at a time")
        text = decode_utf8(data, "the metrics input")
        if not text.strip():
            raise EmptyInput("the metrics input is empty")
        series = self._series(text)
        identities = IdentityAllocator(context.tenant, self.format_name)
        try:
            for row_number, item in enumerate(series.values(), start=1):
                raw = "\n".join(item.lines).encode()
                if not item.samples():
                    yield RowResult(row_number, raw, empty=True)
                    continue
                try:
                    event = self._event(item, context, identities, row_number, raw)
                except ROW_ERRORS as error:
                    yield RowResult(row_number, raw, error=as_rejection(error))
                else:
                    yield RowResult(row_number, raw, event=event)
        finally:
            identities.close()

    def _series(self, text: str) -> dict[tuple[str | None, ...], _Series]:
        series: dict[tuple[str | None, ...], _Series] = {}
        for line_number, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            match = _SAMPLE.match(stripped)
            if match is None:
                raise InvalidSyntax(f"line {line_number} is not a Prometheus sample: {quoted(stripped)}")
            name, label_text, value_text, timestamp_ms = match.groups()
            if not name.startswith("DCGM_FI_"):
                continue
            labels = parse_labels(label_text, line_number) if label_text else {}
            host = labels.get("Hostname") or labels.get("hostname") or labels.get("instance")
            gpu_id = labels.get("UUID") or (f"{host}:{labels['gpu']}" if host and "gpu" in labels else None)
            tags = string_tags(
                {label: labels.get(label) or labels.get(f"exported_{label}") for label in ATTRIBUTION_LABELS}
            )
            key = (host, gpu_id, *(tags.get(label) for label in ATTRIBUTION_LABELS))
            item = series.setdefault(key, _Series(host, gpu_id, labels.get("modelName"), tags))
            item.lines.append(stripped)
            at = _sample_time(timestamp_ms, line_number) if timestamp_ms else None
            value = _value(value_text, line_number)
            if name == UTILISATION_PERCENT:
                item.utilisation.append((at, value))
            elif name == ENGINE_ACTIVE_RATIO:
                item.engine_active.append((at, value * 100))
            elif name in MEMORY_METRICS:
                item.memory[MEMORY_METRICS[name]] = value
        return series

    def _event(
        self, item: _Series, context: ImportContext, identities: IdentityAllocator, row_number: int, raw: bytes
    ) -> GpuUtilisationReported:
        if item.host is None:
            raise RowRejected("Hostname", "is missing: the samples name no Hostname or instance label")
        if item.gpu_id is None:
            raise RowRejected("UUID", "is missing: the samples name no GPU UUID or gpu index")

        samples = item.samples()
        times = [at or context.observed_at for at, _ in samples]
        if any(at is None for at in times):
            raise RowRejected("timestamp", "the samples carry no timestamp; pass the scrape time with --observed-at")
        placed = [at for at in times if at is not None]
        values = [value for _, value in samples]
        metric = UTILISATION_PERCENT if item.utilisation else ENGINE_ACTIVE_RATIO
        for value in values:
            if not value.is_finite():
                raise RowRejected(metric, f"has the sample value {value}, but utilisation must be a finite number")
        for kind, value in item.memory.items():
            if not value.is_finite():
                name = next(metric for metric, known in MEMORY_METRICS.items() if known == kind)
                raise RowRejected(name, f"has the sample value {value}, but memory must be a finite number")
        mean = sum(values, Decimal(0)) / len(values)
        if not Decimal(0) <= mean <= Decimal(100):
            raise RowRejected(UTILISATION_PERCENT, f"mean utilisation {mean} is outside 0 to 100 percent")

        used = item.memory.get("used")
        total = None
        if used is not None and "free" in item.memory:
            total = used + item.memory["free"] + item.memory.get("reserved", Decimal(0))

        start, end = min(placed), max(placed)
        natural_key = {
            "host": item.host,
            "gpu_id": item.gpu_id,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "tags": item.tags,
        }
        return GpuUtilisationReported(
            event_id=identities.event_id(natural_key),
            occurred_at=start,
            source=f"ingest.{self.format_name}",
            tenant=context.tenant,
            correlation_id=context.correlation_id,
            host=item.host,
            gpu_id=item.gpu_id,
            gpu_model=item.gpu_model,
            window_start=start,
            window_end=end,
            utilisation_percent=mean,
            memory_used_mib=used,
            memory_total_mib=total,
            dimensions=UsageDimensions(tags=item.tags),
            evidence=Evidence(
                format=self.format_name, file_name=context.file_name, row_number=row_number, raw_sha256=sha256_hex(raw)
            ),
        )
