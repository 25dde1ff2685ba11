"""Batch consumption with a written-down failure policy, shared by every service.

A FastStream batch subscriber hands each batch of raw records to
``BatchProcessor.process``. The policy:

- A record that is not a valid event of the expected type goes to the
  dead-letter topic at once, with the field path and reason, because retrying
  cannot make it valid.
- The valid records are handled together, in one database transaction.
- If that fails because the database or broker is unavailable, the error is
  re-raised after a pause: the subscriber (``AckPolicy.NACK_ON_ERROR``) rewinds
  the partitions and the batch is read again, so nothing is committed early.
- If it fails for any other reason, each record is handled alone, up to
  ``max_attempts`` times, and a record that still fails goes to the dead-letter
  topic, so one poison message cannot stop its partition.

Offsets are committed by the subscriber only after ``process`` returns, that is
after every record is stored or dead-lettered.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from shared.db import is_transient_error
from shared.events import DeadLetterRecorded, EventEnvelope, utc_now
from shared.kafka import EventPublisher, OutgoingEvent
from shared.logging import get_logger
from shared.topics import Topic

log = get_logger(__name__)

EventT = TypeVar("EventT", bound=EventEnvelope)


@dataclass(frozen=True, slots=True)
class Incoming(Generic[EventT]):
    """A decoded event with the record it came from."""

    record: ConsumerRecord[Any, Any]
    event: EventT


def describe_validation_error(error: ValidationError) -> tuple[str, str]:
    """Return the dotted path of the first invalid field and a one-line reason naming every error."""
    details = error.errors()
    first_path = ".".join(str(part) for part in details[0]["loc"]) if details else ""
    reasons = "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or '(message)'}: {item['msg']}" for item in details[:5]
    )
    return first_path, reasons


class DeadLetters:
    """Sends messages that cannot be processed to the dead-letter topic."""

    def __init__(self, publisher: EventPublisher, consumer: str) -> None:
        self.publisher = publisher
        self.consumer = consumer

    async def send(
        self,
        *,
        original: bytes,
        reason: str,
        tenant: str = "unknown",
        field_path: str | None = None,
        attempts: int = 1,
        record: ConsumerRecord[Any, Any] | None = None,
        correlation_id: str | None = None,
    ) -> None:
        digest = hashlib.sha256(original).hexdigest()
        position = f"{record.topic}:{record.partition}:{record.offset}" if record is not None else digest
        letter = DeadLetterRecorded(
            event_id=f"dlq:{self.consumer}:{position}",
            occurred_at=utc_now(),
            source=self.consumer,
            tenant=tenant,
            correlation_id=correlation_id or digest,
            consumer=self.consumer,
            original_topic=record.topic if record is not None else None,
            original_partition=record.partition if record is not None else None,
            original_offset=record.offset if record is not None else None,
            original_key_b64=base64.b64encode(record.key).decode() if record is not None and record.key else None,
            original_bytes_b64=base64.b64encode(original).decode(),
            reason=reason[:4000],
            field_path=field_path,
            attempts=attempts,
        )
        await self.publisher.publish([OutgoingEvent.of(Topic.DEAD_LETTER, letter, key=self.consumer)])
        log.warning(
            "message.dead_lettered",
            consumer=self.consumer,
            position=position,
            field_path=field_path,
            reason=reason[:300],
            attempts=attempts,
        )


class BatchProcessor(Generic[EventT]):
    """Decodes a batch of records into events of one type and applies a handler under the failure policy."""

    def __init__(
        self,
        *,
        event_model: type[EventT],
        handle: Callable[[Sequence[Incoming[EventT]]], Awaitable[None]],
        dead_letters: DeadLetters,
        max_attempts: int = 3,
        retry_pause_s: float = 1.0,
    ) -> None:
        self.event_model = event_model
        self.handle = handle
        self.dead_letters = dead_letters
        self.max_attempts = max_attempts
        self.retry_pause_s = retry_pause_s

    async def process(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        decoded: list[Incoming[EventT]] = []
        validate = self.event_model.model_validate_json
        for record in records:
            raw = record.value if isinstance(record.value, bytes) else bytes(record.value or b"")
            try:
                decoded.append(Incoming(record=record, event=validate(raw)))
            except ValidationError as error:
                await self._dead_letter_invalid(record, raw, error)
        if not decoded:
            return
        try:
            await self.handle(decoded)
        except Exception as error:
            if is_transient_error(error):
                log.warning("batch.retry_later", consumer=self.dead_letters.consumer, error=repr(error)[:300])
                await asyncio.sleep(self.retry_pause_s)
                raise
            log.warning(
                "batch.failed_isolating",
                consumer=self.dead_letters.consumer,
                size=len(decoded),
                error=repr(error)[:300],
            )
            for item in decoded:
                await self._handle_alone(item)

    async def _dead_letter_invalid(self, record: ConsumerRecord[Any, Any], raw: bytes, error: ValidationError) -> None:
        field_path, reason = describe_validation_error(error)
        await self.dead_letters.send(
            original=raw,
            reason=f"invalid {self.event_model.EVENT_TYPE} event: {reason}",
            field_path=field_path,
            record=record,
        )

    async def _handle_alone(self, item: Incoming[EventT]) -> None:
        last_error: Exception | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self.handle([item])
                return
            except Exception as error:
                if is_transient_error(error):
                    await asyncio.sleep(self.retry_pause_s)
                    raise
                last_error = error
                log.warning(
                    "message.failed",
                    consumer=self.dead_letters.consumer,
                    event_id=item.event.event_id,
                    attempt=attempt,
                    error=repr(error)[:300],
                )
                await asyncio.sleep(min(self.retry_pause_s * attempt, 5.0) / 10)
        raw = item.record.value if isinstance(item.record.value, bytes) else b""
        await self.dead_letters.send(
            original=raw,
            reason=f"processing failed after {self.max_attempts} attempts: {last_error!r}",
            tenant=item.event.tenant,
            attempts=self.max_attempts,
            record=item.record,
            correlation_id=item.event.correlation_id,
        )
