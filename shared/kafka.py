"""Kafka plumbing: the event publisher, topic creation and consumer lag.

Publishing goes through one aiokafka producer per process with ``acks="all"``,
a short linger and compression, so many events share one request. The producer
is not idempotent because the embedded broker rejects InitProducerId: exactly-once
comes from idempotent consumers, which skip event ids they have stored.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import murmur2

from shared.events import EventEnvelope
from shared.logging import get_logger
from shared.topics import DEFAULT_PARTITIONS, Topic, partition_key

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    """An event ready to send: where it goes and the stable key that picks its partition."""

    topic: str
    key: bytes
    value: bytes
    event_id: str
    event_type: str
    correlation_id: str

    @classmethod
    def of(cls, topic: Topic | str, event: EventEnvelope, key: str) -> OutgoingEvent:
        return cls(
            topic=str(topic),
            key=partition_key(event.tenant, key),
            value=event.model_dump_json().encode(),
            event_id=event.event_id,
            event_type=event.EVENT_TYPE,
            correlation_id=event.correlation_id,
        )

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            ("event_type", self.event_type.encode()),
            ("event_id", self.event_id.encode()),
            ("correlation_id", self.correlation_id.encode()),
            ("content-type", b"application/json"),
        ]


# murmur2 is pure Python in aiokafka and cost about 40 us a message in the import profile, while a
# pipeline has few distinct keys (one per tenant and owner), so each key's hash is computed once.
_cached_murmur2 = functools.lru_cache(maxsize=65536)(murmur2)


def key_partitioner(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """Pick the partition exactly as aiokafka's DefaultPartitioner (and the Java client) does, caching key hashes."""
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[(_cached_murmur2(key) & 0x7FFFFFFF) % len(all_partitions)]


class EventPublisher:
    """Send events and wait until the broker has acknowledged every one of them."""

    def __init__(self, bootstrap_servers: str, *, client_id: str, linger_ms: int = 5) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            acks="all",
            linger_ms=linger_ms,
            compression_type="lz4",
            max_batch_size=512 * 1024,
            request_timeout_ms=30000,
            partitioner=key_partitioner,
        )
        self._started = False

    async def start(self) -> None:
        await self._producer.start()
        self._started = True

    async def stop(self) -> None:
        if self._started:
            await self._producer.stop()
            self._started = False

    async def publish(self, events: Sequence[OutgoingEvent]) -> None:
        """Send the events in order and return once all are acknowledged; raise if any send failed."""
        if not events:
            return
        futures = [
            await self._producer.send(event.topic, event.value, key=event.key, headers=event.headers())
            for event in events
        ]
        await asyncio.gather(*futures)

    async def send_raw(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        future = await self._producer.send(topic, value, key=key)
        await future


async def ensure_topics(
    bootstrap_servers: str, topics: Iterable[str] | None = None, partitions: int = DEFAULT_PARTITIONS
) -> None:
    """Create the pipeline's topics when they do not exist yet."""
    names = list(topics) if topics is not None else [str(topic) for topic in Topic]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="aifinops-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in names if name not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [NewTopic(name=name, num_partitions=partitions, replication_factor=1) for name in missing]
                )
            except TopicAlreadyExistsError:
                pass
            log.info("kafka.topics_created", topics=",".join(missing), partitions=partitions)
    finally:
        await admin.close()


async def consumer_lag(bootstrap_servers: str, group_id: str, topics: Sequence[str]) -> int:
    """Return how many records the group has not committed yet, summed over all partitions of the topics."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="aifinops-lag")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        partitions: list[TopicPartition] = []
        for topic in topics:
            for partition in consumer.partitions_for_topic(topic) or await _fetch_partitions(consumer, topic):
                partitions.append(TopicPartition(topic, partition))
        if not partitions:
            return 0
        end_offsets = await consumer.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(group_id, partitions=partitions)
        lag = 0
        for partition in partitions:
            metadata = committed.get(partition)
            position = metadata.offset if metadata is not None and metadata.offset >= 0 else 0
            lag += max(0, end_offsets[partition] - position)
        return lag
    finally:
        await consumer.stop()
        await admin.close()


async def _fetch_partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    try:
        await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public refresh
    except KafkaError:
        return set()
    return consumer.partitions_for_topic(topic) or set()
