"""Pipeline throughput, webhook latency, import rate and memory of aifinops, measured in one run.

Run with ``make bench`` (or ``python -m bench.pipeline_rate``). The stack is the
embedded broker plus the five services, on ``DATABASE_URL`` when it is set
(PostgreSQL) or on SQLite files otherwise. The phases, in order:

- raw produce and raw consume: N synthetic usage events sent to a scratch topic by
  one aiokafka producer (acks=all, linger 5 ms, lz4), timed until the last
  acknowledgement; then read back by one aiokafka consumer, timed until the last one.
- webhook: signed CloudEvents posted to ingest's ``/api/v1/events`` on an open-loop
  schedule (a fixed rate, whatever the responses), each latency measured from the
  moment the request was due, so a slow server cannot hide its queueing delay.
- end to end: N usage events sent to the usage topic, timed until every consumer
  group has committed every record and every service outbox is empty, that is
  until allocation, risk, value and the optimizer have stored all their effects.
  Also timed: the allocation stage alone (allocation's groups and outbox empty).
- scaling out: a second copy of allocation joins the same consumer groups, and the
  end-to-end run is repeated on N new events of a new tenant.
- import: ``bench.import_rate`` on a generated FOCUS file of ``--import-rows`` rows,
  as its own process against its own broker and database, after the stack stopped.

The resident memory (VmRSS) of every service process is sampled every 0.5 s during
the run, with its high-water mark (VmHWM). Prints one JSON line on stdout and a
table on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.partitioner import DefaultPartitioner

from aifinops.stack import LOCAL_WEBHOOK_SOURCE, SERVICES, Stack, StackConfig, copy_name
from bench import import_rate
from services.ingest.signing import SIGNATURE_HEADER, SOURCE_HEADER, TIMESTAMP_HEADER, compute_signature
from services.ingest.webhook import TENANT_HEADER
from shared.db import create_scratch_database, drop_database
from shared.events import Evidence, UsageBucket, UsageDimensions, UsageRecorded
from shared.kafka import EventPublisher, OutgoingEvent, ensure_topics
from shared.logging import configure_logging
from shared.settings import ServiceSettings
from shared.topics import DEFAULT_PARTITIONS, Topic, group_id

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MODEL = "gpt-5-mini-2025-08-07"
# Distinct API keys in the synthetic usage: many keys, so every partition of a topic gets records and every copy
# of a scaled-out service gets work.
KEYS = 256
SAMPLE_INTERVAL_S = 0.5


def synthetic_usage(count: int, tenant: str) -> list[OutgoingEvent]:
    start = datetime(2025, 10, 1, tzinfo=UTC)
    events = []
    for index in range(count):
        period_start = start + timedelta(minutes=index % 40000)
        key_id = f"key_{index % KEYS}"
        event = UsageRecorded(
            event_id=str(uuid.uuid4()),
            occurred_at=period_start,
            source="bench",
            tenant=tenant,
            correlation_id="bench",
            provider="openai",
            service="completions",
            model=MODEL,
            period_start=period_start,
            period_end=period_start + timedelta(minutes=1),
            dimensions=UsageDimensions(project_id="proj_4BhNtYH0z7dWbBtzhibxa65W", api_key_id=key_id),
            quantities={
                UsageBucket.INPUT_UNCACHED_TOKENS: Decimal(1000 + index % 500),
                UsageBucket.CACHE_READ_TOKENS: Decimal(200),
                UsageBucket.OUTPUT_TOKENS: Decimal(300),
            },
            request_count=3,
            evidence=Evidence(format="bench"),
        )
        events.append(OutgoingEvent.of(Topic.USAGE_RECORDED, event, key=f"openai:api_key_id:{key_id}"))
    return events


def partitions_used(events: list[OutgoingEvent]) -> dict[int, int]:
    """Count the events per partition that the producer's default partitioner gives their keys."""
    partitioner = DefaultPartitioner()
    every = list(range(DEFAULT_PARTITIONS))
    return dict(sorted(Counter(partitioner(event.key, every, every) for event in events).items()))


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


async def consume(bootstrap: str, topic: str, count: int, timeout_s: float) -> float:
    """Read ``count`` records of a topic from the start with one consumer outside any group; return the seconds."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, client_id="aifinops-bench")
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, partition) for partition in range(DEFAULT_PARTITIONS)])
        await consumer.seek_to_beginning()
        started = time.perf_counter()
        read = 0
        while read < count:
            if time.perf_counter() - started > timeout_s:
                raise TimeoutError(f"read {read} of {count} records of {topic} in {timeout_s} s")
            batches = await consumer.getmany(timeout_ms=1000, max_records=10000)
            read += sum(len(records) for records in batches.values())
        return time.perf_counter() - started
    finally:
        await consumer.stop()


class MemorySampler:
    """Samples VmRSS and VmHWM of named processes every interval in a thread; keeps the peak of each name."""

    def __init__(self, interval_s: float = SAMPLE_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.pids: dict[str, int] = {}
        self.peak_kib: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def watch(self, pids: dict[str, int]) -> None:
        with self._lock:
            self.pids.update(pids)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.sample()
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        with self._lock:
            pids = dict(self.pids)
        for name, pid in pids.items():
            memory = import_rate.memory_kib(pid)
            if memory:
                peak = max(memory.get("VmRSS", 0), memory.get("VmHWM", 0))
                self.peak_kib[name] = max(self.peak_kib.get(name, 0), peak)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def peaks_mib(self) -> dict[str, float]:
        return {name: round(kib / 1024, 1) for name, kib in sorted(self.peak_kib.items())}


def cloudevent_body(index: int, run: str) -> bytes:
    period_start = datetime(2025, 11, 1, tzinfo=UTC) + timedelta(seconds=index)
    event = {
        "specversion": "1.0",
        "type": "com.example.llm.completion",
        "id": f"{run}-{index}",
        "source": "//bench/webhook",
        "time": period_start.isoformat().replace("+00:00", "Z"),
        "data": {
            "provider": "openai",
            "model": MODEL,
            "quantities": {"input_uncached_tokens": 1000 + index % 500, "output_tokens": 300},
            "request_count": 1,
            "dimensions": {"api_key_id": f"key_{index % KEYS}"},
        },
    }
    return json.dumps(event).encode()


class HttpConnections:
    """A small keep-alive HTTP/1.1 client for one loopback server, cheap enough for hundreds of requests a second."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        if self.idle:
            reader, writer = self.idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port)
            self.opened += 1
        lines = [f"POST {path} HTTP/1.1", f"host: {self.host}:{self.port}", f"content-length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        length = 0
        keep_alive = True
        for line in header_lines:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                keep_alive = False
        await reader.readexactly(length)
        if keep_alive:
            self.idle.append((reader, writer))
        else:
            writer.close()
        return int(status_line.split()[1])

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


async def webhook_latency(stack: Stack, rate: float, seconds: float, tenant: str) -> dict[str, object]:
    """Post signed CloudEvents at ``rate`` per second for ``seconds``, open loop; report latency from the due time."""
    port = stack.processes["ingest"].ports["http_port"]
    secret = stack.config.webhook_secret.encode()
    total = max(1, round(rate * seconds))
    run = uuid.uuid4().hex[:8]
    timestamp = str(int(time.time()))
    requests = []
    for index in range(total):
        body = cloudevent_body(index, run)
        headers = {
            "content-type": "application/cloudevents+json",
            SOURCE_HEADER: LOCAL_WEBHOOK_SOURCE,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: compute_signature(secret, timestamp, body),
            TENANT_HEADER: tenant,
        }
        requests.append((body, headers))
    client = HttpConnections("127.0.0.1", port)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    finished: list[float] = []

    async def one(body: bytes, headers: dict[str, str], due: float) -> None:
        try:
            status = await asyncio.wait_for(client.post("/api/v1/events", body, headers), timeout=60.0)
            statuses[str(status)] += 1
        except Exception as error:  # a refused or timed-out request counts as an error, not a latency
            statuses[type(error).__name__] += 1
            return
        now = time.perf_counter()
        finished.append(now)
        latencies.append(now - due)

    tasks = []
    started = time.perf_counter()
    for index, (body, headers) in enumerate(requests):
        due = started + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(body, headers, due)))
    sent_seconds = time.perf_counter() - started
    await asyncio.gather(*tasks)
    client.close()
    ok = statuses.get("202", 0)
    last = max(finished, default=started)
    return {
        "target_per_s": rate,
        "requests": total,
        "sent_per_s": round(total / sent_seconds, 1) if sent_seconds else None,
        "completed_per_s": round(len(finished) / (last - started), 1) if finished else 0,
        "accepted_202": ok,
        "not_202": {status: count for status, count in sorted(statuses.items()) if status != "202"},
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1) if latencies else None,
        "max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        "mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
        "connections": client.opened,
    }


async def end_to_end(stack: Stack, count: int, timeout_s: float) -> dict[str, float]:
    """Send ``count`` usage events of a new tenant; time the allocation stage and the whole pipeline."""
    events = synthetic_usage(count, f"bench-{uuid.uuid4().hex[:8]}")
    started = time.perf_counter()
    await produce(stack.bootstrap_servers, events)
    allocation_seconds: float | None = None
    deadline = started + timeout_s
    while True:
        now = time.perf_counter()
        if now > deadline:
            raise TimeoutError(f"the pipeline had not drained {count} events after {timeout_s} s")
        for name, service in stack.processes.items():
            if service.process.poll() is not None:
                raise RuntimeError(f"{name} exited with code {service.process.returncode}; see {service.log_file}")
        if allocation_seconds is None:
            if await stack.pending_events(("allocation",)) == 0:
                allocation_seconds = now - started
        elif await stack.pending_events() == 0:
            seconds = time.perf_counter() - started
            break
        await asyncio.sleep(0.2)
    return {
        "events_per_s": round(count / seconds),
        "seconds": round(seconds, 2),
        "allocation_events_per_s": round(count / allocation_seconds),
        "allocation_seconds": round(allocation_seconds, 2),
    }


async def group_assignments(bootstrap: str, group: str) -> tuple[str, list[int]]:
    """Return a consumer group's state and how many partitions each of its members holds."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="aifinops-bench")
    await admin.start()
    try:
        response = (await admin.describe_consumer_groups([group]))[0]
    finally:
        await admin.close()
    _error, _group, state, _protocol_type, _protocol, members, *_ = response.groups[0]
    counts = []
    for member in members:
        assignment = ConsumerProtocolMemberAssignment.decode(member[-1]) if member[-1] else None
        counts.append(sum(len(partitions) for _topic, partitions in assignment.assignment) if assignment else 0)
    return state, sorted(counts)


async def wait_for_members(bootstrap: str, group: str, members: int, timeout_s: float) -> list[int]:
    """Wait until a group is stable with ``members`` members; return their partition counts if the broker reports them.

    NOTE: the embedded Tansu broker (0.6.0) describes members with an empty assignment, so there the counts
    are all zero and only the member count is checked.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        state, counts = await group_assignments(bootstrap, group)
        if state == "Stable" and len(counts) == members and (all(counts) or not any(counts)):
            return counts
        if time.monotonic() > deadline:
            raise TimeoutError(f"group {group} was {state} with partitions {counts} after {timeout_s} s")
        await asyncio.sleep(0.5)


async def run_stack(args: argparse.Namespace, sampler: MemorySampler) -> dict[str, object]:
    count = args.events
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
    result: dict[str, object] = {"events": count, "database": "postgresql" if database_url else "sqlite"}
    timeout_s = max(600.0, count / 20)
    try:
        await stack.start()
        sampler.watch(stack.service_pids())
        raw_events = synthetic_usage(count, f"bench-{uuid.uuid4().hex[:8]}")
        result["usage_events_per_partition"] = partitions_used(raw_events)
        raw_topic = f"aifinops.bench.raw-{uuid.uuid4().hex[:8]}.v1"
        await ensure_topics(stack.bootstrap_servers, [raw_topic])
        raw_seconds = await produce(stack.bootstrap_servers, raw_events, topic=raw_topic)
        consume_seconds = await consume(stack.bootstrap_servers, raw_topic, count, timeout_s)
        raw_rate = count / raw_seconds
        result["raw_produce_events_per_s"] = round(raw_rate)
        result["raw_consume_events_per_s"] = round(count / consume_seconds)
        _report("raw produce and consume", result)

        if args.webhook_rate > 0:
            result["webhook"] = await webhook_latency(stack, args.webhook_rate, args.webhook_seconds, "bench-webhook")
            _report("webhook", result["webhook"])
            await stack.wait_until_drained(timeout_s=timeout_s, quiet_checks=1)

        one = await end_to_end(stack, count, timeout_s)
        result["end_to_end_events_per_s"] = one["events_per_s"]
        result["end_to_end_seconds"] = one["seconds"]
        result["end_to_end_to_raw_ratio"] = round(one["events_per_s"] / raw_rate, 3)
        result["allocation_stage_events_per_s"] = one["allocation_events_per_s"]
        _report("end to end, one allocation", one)

        if args.allocation_copies > 1:
            names = []
            for copy in range(2, args.allocation_copies + 1):
                names.append(stack.start_service("allocation", copy=copy).name)
            await stack.wait_ready(tuple(names), timeout_s=60.0)
            sampler.watch(stack.service_pids())
            # Start the clock only once the group has settled: a rebalance during the run would redeliver records.
            usage_group = group_id("allocation", Topic.USAGE_RECORDED)
            try:
                partitions = await wait_for_members(stack.bootstrap_servers, usage_group, args.allocation_copies, 120.0)
                await asyncio.sleep(args.settle_seconds)
                scaled = await end_to_end(stack, count, timeout_s)
            except TimeoutError as error:
                result["scaled"] = {"allocation_copies": args.allocation_copies, "error": str(error)}
                return result
            result["scaled"] = {
                "allocation_copies": args.allocation_copies,
                "usage_partitions_per_copy": partitions,
                "end_to_end_events_per_s": scaled["events_per_s"],
                "end_to_end_seconds": scaled["seconds"],
                "allocation_stage_events_per_s": scaled["allocation_events_per_s"],
                "end_to_end_speedup": round(scaled["events_per_s"] / one["events_per_s"], 2),
                "allocation_stage_speedup": round(
                    scaled["allocation_events_per_s"] / one["allocation_events_per_s"], 2
                ),
            }
            _report(f"end to end, {args.allocation_copies} allocations", result["scaled"])
    finally:
        sampler.sample()
        stack.stop()
        if server and scratch:
            await drop_database(server, scratch)
        shutil.rmtree(run_dir, ignore_errors=True)
    return result


def _report(phase: str, values: object) -> None:
    print(f"bench: {phase}: {json.dumps(values)}", file=sys.stderr, flush=True)


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


async def run(args: argparse.Namespace) -> dict[str, object]:
    configure_logging("bench", level="WARNING")
    sampler = MemorySampler()
    sampler.start()
    result: dict[str, object] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "load_average_at_start": load_average(),
    }
    try:
        result |= await run_stack(args, sampler)
    finally:
        sampler.stop()
    services = [copy_name(name, copy) for name in SERVICES for copy in range(1, args.allocation_copies + 1)]
    result["peak_rss_mib"] = {name: mib for name, mib in sampler.peaks_mib().items() if name in services}
    if args.import_rows > 0:
        result["import"] = await import_rate.run(args.import_rows, None, sample_interval_s=SAMPLE_INTERVAL_S)
        _report("import", result["import"])
    result["load_average_at_end"] = load_average()
    return result


def table_rows(values: dict[str, object], prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for key, value in values.items():
        if isinstance(value, dict) and value and not all(isinstance(item, int) for item in value.values()):
            rows += table_rows(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", json.dumps(value) if isinstance(value, dict | list) else str(value)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000, help="Synthetic usage events per phase (default 20000).")
    parser.add_argument(
        "--import-rows", type=int, default=1_000_000, help="Rows of the FOCUS import (default 1000000; 0 skips it)."
    )
    parser.add_argument("--quick", action="store_true", help="Skip the FOCUS import (same as --import-rows 0).")
    parser.add_argument(
        "--webhook-rate", type=float, default=500.0, help="Webhook requests per second (default 500; 0 skips)."
    )
    parser.add_argument("--webhook-seconds", type=float, default=10.0, help="Webhook phase length (default 10 s).")
    parser.add_argument(
        "--allocation-copies", type=int, default=2, help="Copies of allocation when scaled out (default 2; 1 skips)."
    )
    parser.add_argument("--settle-seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.import_rows = 0
    # Turn SIGTERM into SystemExit so that the services this run started are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(128 + signal.SIGTERM))
    result = asyncio.run(run(args))
    print(json.dumps(result))
    rows = table_rows(result)
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':{width}}  value", file=sys.stderr)
    for name, value in rows:
        print(f"{name:{width}}  {value}", file=sys.stderr)


if __name__ == "__main__":
    main()
