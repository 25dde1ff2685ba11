"""The batch failure policy: poison messages go to the dead-letter topic, outages are retried, good records land."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from sqlalchemy import exc

from shared.consumer import BatchProcessor, DeadLetters, Incoming
from shared.events import DeadLetterRecorded, Evidence, UsageRecorded
from shared.kafka import OutgoingEvent
from shared.topics import Topic


class RecordingPublisher:
    """Stands in for the Kafka publisher and keeps what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[OutgoingEvent] = []

    async def publish(self, events: Sequence[OutgoingEvent]) -> None:
        self.sent.extend(events)


def record(offset: int, value: bytes) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(
        topic="t",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=value,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=len(value),
        headers=(),
    )


def usage_json(event_id: str) -> bytes:
    return (
        UsageRecorded(
            event_id=event_id,
            occurred_at="2025-10-05T00:00:00Z",
            source="test",
            tenant="acme",
            correlation_id="c",
            provider="openai",
            period_start="2025-10-05T00:00:00Z",
            period_end="2025-10-06T00:00:00Z",
            evidence=Evidence(format="test"),
        )
        .model_dump_json()
        .encode()
    )


def processor(handle: Any, publisher: RecordingPublisher) -> BatchProcessor[UsageRecorded]:
    return BatchProcessor(
        event_model=UsageRecorded,
        handle=handle,
        dead_letters=DeadLetters(publisher, "allocation"),  # type: ignore[arg-type]
        max_attempts=3,
        retry_pause_s=0.0,
    )


async def test_invalid_message_is_dead_lettered_and_the_rest_handled() -> None:
    publisher = RecordingPublisher()
    handled: list[str] = []

    async def handle(batch: Sequence[Incoming[UsageRecorded]]) -> None:
        handled.extend(item.event.event_id for item in batch)

    await processor(handle, publisher).process(
        [record(0, usage_json("a")), record(1, b'{"tenant": 5}'), record(2, usage_json("b"))]
    )
    assert handled == ["a", "b"]
    assert len(publisher.sent) == 1
    letter = DeadLetterRecorded.model_validate_json(publisher.sent[0].value)
    assert publisher.sent[0].topic == str(Topic.DEAD_LETTER)
    assert letter.original_offset == 1
    assert base64.b64decode(letter.original_bytes_b64) == b'{"tenant": 5}'
    assert "invalid usage.recorded event" in letter.reason


async def test_poison_message_is_retried_then_dead_lettered() -> None:
    publisher = RecordingPublisher()
    attempts: dict[str, int] = {}
    stored: list[str] = []

    async def handle(batch: Sequence[Incoming[UsageRecorded]]) -> None:
        for item in batch:
            attempts[item.event.event_id] = attempts.get(item.event.event_id, 0) + 1
        if any(item.event.event_id == "poison" for item in batch):
            raise ValueError("cannot price this")
        stored.extend(item.event.event_id for item in batch)

    await processor(handle, publisher).process([record(0, usage_json("good")), record(1, usage_json("poison"))])
    assert stored == ["good"]  # the batch failed once, then each record was handled alone
    assert attempts == {"good": 2, "poison": 4}  # 1 in the batch + 3 alone
    letter = DeadLetterRecorded.model_validate_json(publisher.sent[0].value)
    assert letter.attempts == 3
    assert "cannot price this" in letter.reason


async def test_database_outage_is_raised_for_redelivery() -> None:
    publisher = RecordingPublisher()

    async def handle(batch: Sequence[Incoming[UsageRecorded]]) -> None:
        raise exc.OperationalError("INSERT", {}, ConnectionRefusedError("database is down"))

    with pytest.raises(exc.OperationalError):
        await processor(handle, publisher).process([record(0, usage_json("a"))])
    assert publisher.sent == []  # nothing is dead-lettered for an outage
