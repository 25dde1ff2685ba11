"""Pipeline throughput: the broker's own produce rate and the end-to-end rate through all services, in one run.

Run with ``make bench`` (or ``python -m bench.pipeline_rate --events N``). The
stack is the embedded broker plus the five services, on ``DATABASE_URL`` when it
is set (PostgreSQL) or on SQLite files otherwise. Prints one JSON line and a table.

- raw produce: N usage events sent to a scratch topic by one aiokafka producer
  (acks=all, linger 5 ms, lz4), timed until the last acknowledgement.
- end to end: N usage events sent to the usage topic, timed until every consumer
  group has committed every record and every service outbox is empty, that is
  until allocation, risk, value and the optimizer have stored all their effects.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from aifinops.stack import Stack, StackConfig
from shared.db import create_scratch_database, drop_database
from shared.events import Evidence, UsageBucket, UsageDimensions, UsageRecorded
from shared.kafka import EventPublisher, OutgoingEvent, ensure_topics
from shared.logging import configure_logging
from shared.settings import ServiceSettings
from shared.topics import Topic

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def synthetic_usage(count: int, tenant: str) -> list[OutgoingEvent]:
    start = datetime(2025, 10, 1, tzinfo=UTC)
    events = []
    for index in range(count):
        period_start = start + timedelta(minutes=index % 40000)
        event = UsageRecorded(
            event_id=str(uuid.uuid4()),
            occurred_at=period_start,
            source="bench",
            tenant=tenant,
            correlation_id="bench",
            provider="openai",
            service="completions",
            model="gpt-5-mini-2025-08-07",
            period_start=period_start,
            period_end=period_start + timedelta(minutes=1),
            dimensions=UsageDimensions(project_id="proj_4BhNtYH0z7dWbBtzhibxa65W", api_key_id=f"key_{index % 64}"),
            quantities={
                UsageBucket.INPUT_UNCACHED_TOKENS: Decimal(1000 + index % 500),
                UsageBucket.CACHE_READ_TOKENS: Decimal(200),
                UsageBucket.OUTPUT_TOKENS: Decimal(300),
            },
            request_count=3,
            evidence=Evidence(format="bench"),
        )
        events.append(OutgoingEvent.of(Topic.USAGE_RECORDED, event, key=f"openai:api_key_id:key_{index % 64}"))
    return events


async def produce(bootstrap: str, events: list[OutgoingEvent], topic: str | None = None) -> float:
    publisher = EventPublisher(bootstrap, client_id="aifinops-bench")
    await publisher.start()
    try:
        if topic is not None:
            events = [OutgoingEvent(topic, e.key, e.value, e.event_id, e.event_type, e.correlation_id) for e in events]
        started = time.perf_counter()
        for offset in range(0, len(events), 5000):
            await publisher.publish(events[offset : offset + 5000])
        return time.perf_counter() - started
    finally:
        await publisher.stop()


async def run(count: int) -> dict[str, object]:
    configure_logging("bench", level="WARNING")
    run_dir = Path(tempfile.mkdtemp(prefix="aifinops-bench-"))
    server = ServiceSettings().database_url
    database_url, scratch = await create_scratch_database(server, prefix="aifinops_bench") if server else (None, None)
    stack = Stack(
        StackConfig(
            run_dir=run_dir,
            tenant="bench",
            database_url=database_url,
            bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
            allocation_rules=EXAMPLES / "config" / "allocation_rules.yaml",
            budgets=EXAMPLES / "config" / "budgets.yaml",
            optimizer_policy=EXAMPLES / "config" / "optimizer.yaml",
        )
    )
    try:
        await stack.start()
        tenant = f"bench-{uuid.uuid4().hex[:8]}"
        raw_topic = f"aifinops.bench.raw-{uuid.uuid4().hex[:8]}.v1"
        await ensure_topics(stack.bootstrap_servers, [raw_topic])
        raw_seconds = await produce(stack.bootstrap_servers, synthetic_usage(count, tenant), topic=raw_topic)

        events = synthetic_usage(count, tenant)
        started = time.perf_counter()
        await produce(stack.bootstrap_servers, events)
        await stack.wait_until_drained(timeout_s=max(600.0, count / 20), quiet_checks=1)
        end_to_end_seconds = time.perf_counter() - started
    finally:
        stack.stop()
        if server and scratch:
            await drop_database(server, scratch)
    raw_rate = count / raw_seconds
    e2e_rate = count / end_to_end_seconds
    return {
        "events": count,
        "database": "postgresql" if database_url else "sqlite",
        "raw_produce_events_per_s": round(raw_rate),
        "end_to_end_events_per_s": round(e2e_rate),
        "end_to_end_to_raw_ratio": round(e2e_rate / raw_rate, 3),
        "end_to_end_seconds": round(end_to_end_seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000, help="Number of synthetic usage events (default 20000).")
    args = parser.parse_args()
    # Turn SIGTERM into SystemExit so that the services this run started are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(128 + signal.SIGTERM))
    result = asyncio.run(run(args.events))
    print(json.dumps(result))
    print(f"{'measure':32} {'value':>12}", file=sys.stderr)
    for key, value in result.items():
        print(f"{key:32} {value!s:>12}", file=sys.stderr)


if __name__ == "__main__":
    main()
