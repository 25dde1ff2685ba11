"""The fault suite's workload: the demo's samples plus a generated usage export large enough to span many batches."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from aifinops.demo import feed_samples
from aifinops.report import build_report
from aifinops.stack import Stack
from services.ingest.batch import import_file

HEADER = (
    "start_time\tend_time\tstart_time_iso\tend_time_iso\tproject_id\tnum_model_requests\tuser_id\tapi_key_id\tmodel\t"
    "batch\tservice_tier\tinput_tokens\toutput_tokens\tinput_cached_tokens\tinput_uncached_tokens"
)
PROJECTS = ("proj_4BhNtYH0z7dWbBtzhibxa65W", "proj_unowned_research", "proj_unowned_marketing")
MODELS = ("gpt-5-2025-08-07", "gpt-5-mini-2025-08-07", "gpt-4o-2024-08-06")
DAY = 86_400
FIRST_DAY = 1_759_276_800  # 2025-10-01T00:00:00Z


def write_usage_export(path: Path, rows: int, seed: int = 7) -> Path:
    """Write an OpenAI dashboard-style usage export with ``rows`` distinct rows over October 2025."""
    generator = random.Random(seed)
    lines = [HEADER]
    for index in range(rows):
        start = FIRST_DAY + DAY * (index % 31)
        cached = generator.randrange(0, 5_000)
        uncached = generator.randrange(1_000, 60_000)
        lines.append(
            "\t".join([
                str(start), str(start + DAY), "", "", PROJECTS[index % len(PROJECTS)],
                str(generator.randrange(1, 40)), f"user-{index % 17}", f"key_{index % 23}",
                MODELS[index % len(MODELS)], "FALSE", "default", str(cached + uncached),
                str(generator.randrange(100, 20_000)), str(cached), str(uncached),
            ])
        )  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


async def retried(step: Callable[[], Awaitable[Any]], attempts: int = 30) -> Any:
    """Run a step again after a failure, as an operator would: every entry point is idempotent."""
    for attempt in range(1, attempts + 1):
        try:
            return await step()
        except Exception:
            if attempt == attempts:
                raise
            await asyncio.sleep(1.0)
    return None


async def feed_workload(stack: Stack, tenant: str, export: Path) -> None:
    """Send the demo samples and the generated export through their real entry points."""
    await retried(lambda: feed_samples(stack, tenant, lambda *_args, **_kwargs: None))
    result = await retried(lambda: import_file(export, settings=stack.settings(), tenant=tenant))
    assert result.summary.rejected == 0


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """Keep what must match exactly between a disturbed and an undisturbed run.

    A revision counts how often a finding, recommendation or unit-economics figure was recomputed, which depends
    on how the events were batched, so revisions are left out; lists whose order follows arrival are sorted.
    A value-unlinked finding that risk resolved itself is left out too: it exists only when a use case's cost
    arrived before its outcomes, and it says so truthfully, but arrival order is what the faults change.
    Everything else (amounts, counts, facts, arithmetic) must match.
    """

    def without_revisions(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: without_revisions(item) for key, item in value.items() if key != "revision"}
        if isinstance(value, list):
            return [without_revisions(item) for item in value]
        return value

    stripped = without_revisions(report)
    transient = {
        finding["finding_id"]
        for finding in stripped["findings"]
        if finding["kind"] == "value_unlinked_spend" and finding["status"] == "resolved"
    }
    stripped["findings"] = sorted(
        (finding for finding in stripped["findings"] if finding["finding_id"] not in transient),
        key=lambda finding: finding["finding_id"],
    )
    if "tickets" in stripped:
        stripped["tickets"] = sorted(
            (ticket for ticket in stripped["tickets"] if ticket["finding_id"] not in transient),
            key=lambda ticket: ticket["finding_id"],
        )
    return stripped


async def run_and_report(
    stack: Stack, tenant: str, export: Path, disturb: Callable[[], Awaitable[None]] | None = None
) -> dict[str, Any]:
    feeding = asyncio.create_task(feed_workload(stack, tenant, export))
    if disturb is not None:
        await disturb()
    await feeding
    return await drained_report(stack, tenant)


async def drained_report(stack: Stack, tenant: str) -> dict[str, Any]:
    await stack.wait_until_drained(timeout_s=300)
    return comparable((await build_report(stack.settings(), tenant)).as_json())


def total_spend(report: dict[str, Any]) -> Decimal:
    return sum((Decimal(amount) for amount in report["spend"].values()), Decimal(0))


def differences(report: Any, baseline: Any, path: str = "report") -> list[str]:
    """List the paths where two reports differ, with both values, for a readable failure message."""
    if isinstance(report, dict) and isinstance(baseline, dict):
        found: list[str] = []
        for key in sorted(set(report) | set(baseline), key=str):
            if key not in report or key not in baseline:
                found.append(f"{path}.{key}: only in {'baseline' if key in baseline else 'disturbed run'}")
            else:
                found += differences(report[key], baseline[key], f"{path}.{key}")
        return found
    if isinstance(report, list) and isinstance(baseline, list):
        if len(report) != len(baseline):
            keyed = [item for item in report + baseline if isinstance(item, dict)]
            key = next((name for name in ("finding_id", "recommendation_id") if all(name in i for i in keyed)), None)
            if key is None or not keyed:
                return [f"{path}: {len(report)} items, baseline has {len(baseline)}"]
            ours = {item[key]: item for item in report}
            theirs = {item[key]: item for item in baseline}
            extra = [f"{path}: only in the disturbed run: {ours[k]}" for k in sorted(set(ours) - set(theirs))]
            missing = [f"{path}: only in the baseline: {theirs[k]}" for k in sorted(set(theirs) - set(ours))]
            return extra + missing
        return [
            line
            for index, pair in enumerate(zip(report, baseline, strict=True))
            for line in differences(pair[0], pair[1], f"{path}[{index}]")
        ]
    return [] if report == baseline else [f"{path}: {report!r} != baseline {baseline!r}"]


def assert_same_report(report: dict[str, Any], baseline: dict[str, Any]) -> None:
    found = differences(report, baseline)
    assert not found, "the disturbed run differs from the undisturbed one:\n" + "\n".join(found[:20])
