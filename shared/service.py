"""The process around a service: database, publisher, subscribers, ops server, HTTP, outbox relay, shutdown.

``ServiceRuntime.run`` starts the parts in dependency order and, on SIGTERM or
SIGINT, stops them in reverse: the subscribers first (FastStream waits up to
``graceful_timeout`` for the batch in hand, whose offsets are committed only
if it was stored), then the relay, HTTP, the publisher and the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import uvicorn
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from sqlalchemy import Table

from shared.consumer import BatchProcessor, DeadLetters, EventT, Incoming
from shared.db import Database
from shared.kafka import EventPublisher, ensure_topics
from shared.logging import configure_logging, get_logger
from shared.ops import OpsSecurity, OpsServer, ServiceRegistration
from shared.outbox import Outbox
from shared.settings import ServiceSettings
from shared.topics import group_id

log = get_logger(__name__)

# Batch size limit for the subscribers of cost.allocated, whose work per batch is mostly a recomputation.
COST_BATCH_RECORDS = 10000


class ServiceRuntime:
    def __init__(self, name: str, settings: ServiceSettings) -> None:
        configure_logging(name, level=settings.log_level, fmt=settings.log_format)
        self.name = name
        self.settings = settings
        self.database = Database(settings.database_url_for(name))
        self.publisher = EventPublisher(settings.kafka_bootstrap_servers, client_id=f"aifinops-{name}")
        self.outbox = Outbox(name, self.database, self.publisher)
        self.dead_letters = DeadLetters(self.publisher, name)
        self.broker = KafkaBroker(settings.kafka_bootstrap_servers, graceful_timeout=30.0, client_id=f"aifinops-{name}")
        self.group_ids: list[str] = []
        self._stop = asyncio.Event()

    def subscribe(
        self,
        topic: str,
        event_model: type[EventT],
        handle: Callable[[Sequence[Incoming[EventT]]], Awaitable[None]],
        *,
        max_records: int = 2000,
    ) -> None:
        processor = BatchProcessor(event_model=event_model, handle=handle, dead_letters=self.dead_letters)
        group = group_id(self.name, topic)
        self.group_ids.append(group)

        @self.broker.subscriber(
            topic,
            group_id=group,
            batch=True,
            max_records=max_records,
            batch_timeout_ms=100,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=_leave_undecoded,
        )
        async def on_batch(message: KafkaMessage) -> None:
            records = message.raw_message
            await processor.process(records if isinstance(records, tuple) else (records,))

    async def run(
        self,
        tables: Sequence[Table],
        *,
        http_app: Any | None = None,
        http_port: int = 0,
        registrations: Sequence[ServiceRegistration] = (),
        on_started: Callable[[], Awaitable[None]] | None = None,
        background: Sequence[Callable[[asyncio.Event], Awaitable[None]]] = (),
    ) -> None:
        """Serve until SIGTERM or SIGINT.

        Each ``background`` function runs as a task from start to stop. It must return soon after the event it is
        given is set, because the tasks are awaited after the subscribers stop and before the database closes.
        """
        await self.database.create_tables(tables)
        await ensure_topics(self.settings.kafka_bootstrap_servers)
        await self.publisher.start()
        await _start_subscribers(self.broker)
        security = OpsSecurity(
            tokens_file=self.settings.grpc_tokens_file,
            tls_cert_file=self.settings.grpc_tls_cert_file,
            tls_key_file=self.settings.grpc_tls_key_file,
        )
        ops = OpsServer(
            self.name, self.settings.grpc_port, registrations, host=self.settings.grpc_host, security=security
        )
        await ops.start()

        http_server: uvicorn.Server | None = None
        http_task: asyncio.Task[None] | None = None
        ports: dict[str, int] = {"grpc_port": ops.port}
        if http_app is not None:
            http_server, http_task, bound_port = await _start_http(http_app, self.settings.http_host, http_port)
            ports["http_port"] = bound_port
        relay = asyncio.create_task(self.outbox.run_relay(self._stop))
        tasks = [asyncio.create_task(work(self._stop)) for work in background]
        if on_started is not None:
            await on_started()

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        self._write_ready_file(ports)
        log.info("service.started", groups=",".join(self.group_ids), pid=os.getpid(), **ports)

        await self._stop.wait()
        log.info("service.stopping")
        await self.broker.stop()
        await relay
        for task in tasks:
            await task
        if http_server is not None and http_task is not None:
            http_server.should_exit = True
            await http_task
        await ops.stop()
        await self.publisher.stop()
        await self.database.dispose()
        log.info("service.stopped")

    def request_stop(self) -> None:
        self._stop.set()

    def _write_ready_file(self, ports: dict[str, int]) -> None:
        if self.settings.ready_file is None:
            return
        path = self.settings.ready_file
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"service": self.name, "pid": os.getpid(), **ports}))
        temporary.replace(path)


async def _leave_undecoded(_message: Any) -> None:
    """Skip FastStream's decoding of a batch, because BatchProcessor validates the raw records itself.

    FastStream would otherwise parse every record into a message object and then into JSON, only to discard both.
    """
    return None


async def _start_http(app: Any, host: str, port: int) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    # uvicorn installs its own SIGTERM/SIGINT handlers while serving; the runtime replaces them
    # with its loop handlers after this returns, so a signal stops the whole service in order.
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return server, task, int(bound)


async def _start_subscribers(broker: KafkaBroker) -> None:
    """Start the broker with its subscribers joining their consumer groups at the same time.

    KafkaBroker.start starts subscribers one after another, and each start waits until its group assigns it
    partitions. On the embedded broker that takes half the session timeout, 5 s by default, so a service with
    six subscriptions took half a minute to start. The steps are those of KafkaBroker.start in FastStream 0.7.
    """
    await broker.connect()
    await asyncio.gather(*(subscriber.start() for subscriber in broker.subscribers))
    for publisher in broker.publishers:
        await publisher.start()
    broker.running = True


def run_service(main: Callable[[], Awaitable[None]]) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
