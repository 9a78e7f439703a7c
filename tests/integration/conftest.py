"""Fixtures of the integration tier: the real local stack, no mocks.

- ``settings``: ``Settings()`` from the environment (session).
- ``stack``: the local stack, healthy, or the test is skipped / fails (session):
  healthy already -> used as it is; else ``METERWATCH_REQUIRE_STACK=1`` (what
  ``make test`` sets) -> ``stack up`` is called, and a failure fails the run loudly;
  else the test is skipped, with the command that starts the stack. Returns the Settings.
- ``kafka_admin``: a kafka-python ``KafkaAdminClient`` on ``settings.kafka_bootstrap``.
- ``unique_topic``: factory ``unique_topic(partitions=1, create=True) -> name``; names are
  unique per call (``mwtest.<test>.<random>``), created topics are deleted afterwards.
- ``redis_client``: a redis-py client on the dedicated test database ``TEST_REDIS_DB`` (15)
  of the stack's Redis (the engine uses the db in ``settings.redis_url``, 0 by default).
  Afterwards it deletes the keys that appeared in that db during the test, and only those.
- ``webhook_receiver``: an HTTP server on ``settings.webhook_port`` (where Alertmanager's
  default route delivers) collecting every JSON body POSTed to it; ``wait_for(predicate,
  timeout_s)`` returns the first body matching, or fails with what did arrive.

Mark integration tests ``@pytest.mark.integration`` (or ``pytestmark``).
Several people may run tests against one shared stack: use ``unique_topic`` and unique
label values, never fixed names. The webhook port and the worker's metrics port can be
held by one process at a time; the fixtures wait for it (up to 60 s, see
``stack_support.bind_with_patience``) and then fail saying who to look for.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from stack_support import bind_with_patience, free_port

from stream.settings import Settings

TEST_REDIS_DB = 15
WAIT_POLL_S = 0.1


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Settings:
    from deploy.local.stack import stack_status, stack_up

    # A second look before deciding: on a loaded machine one health check can time out.
    for attempt in range(2):
        report: list[str] = []
        if stack_status(settings, echo=report.append) == 0:
            return settings
        if attempt == 0:
            time.sleep(2.0)
    if os.environ.get("METERWATCH_REQUIRE_STACK") == "1":
        started: list[str] = []
        if stack_up(settings, echo=started.append) != 0:
            pytest.fail(
                "METERWATCH_REQUIRE_STACK=1 but the local stack cannot start:\n"
                + "\n".join(started),
                pytrace=False,
            )
        return settings
    pytest.skip(
        "the local stack is not running (run `make test`, or `.venv/bin/meterwatch stack up` "
        "first): " + " | ".join(report)
    )


@pytest.fixture(scope="session")
def kafka_admin(stack: Settings) -> Iterator[Any]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(
        bootstrap_servers=stack.kafka_bootstrap, client_id="meterwatch-tests-admin"
    )
    yield admin
    admin.close()


@pytest.fixture
def unique_topic(kafka_admin: Any, request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    created: list[str] = []
    test_name = re.sub(r"[^A-Za-z0-9_-]", "-", request.node.name)[:60]

    def make(partitions: int = 1, create: bool = True) -> str:
        name = f"mwtest.{test_name}.{secrets.token_hex(4)}"
        if create:
            kafka_admin.create_topics(
                {name: {"num_partitions": partitions, "replication_factor": 1}},
                wait_for_metadata=True,
            )
            created.append(name)
        return name

    yield make
    if created:
        kafka_admin.delete_topics(created, raise_errors=False)


@pytest.fixture
def redis_client(stack: Settings) -> Iterator[Any]:
    import redis

    # The URL's own db (".../0") would win over a db= keyword in from_url, so the test
    # db goes into the URL itself.
    url = urlsplit(stack.redis_url)._replace(path=f"/{TEST_REDIS_DB}").geturl()
    client = redis.Redis.from_url(url)
    keys_before = set(client.scan_iter(count=1000))
    yield client
    new_keys = set(client.scan_iter(count=1000)) - keys_before
    if new_keys:
        client.delete(*new_keys)
    client.close()


@dataclass
class WebhookReceiver:
    """Collects the JSON bodies POSTed to it (Alertmanager's webhook notifications)."""

    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.bodies)

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = 30.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            for body in self.received():
                if predicate(body):
                    return body
            if time.monotonic() >= deadline:
                pytest.fail(
                    f"no matching webhook body within {timeout_s}s at {self.url}; "
                    f"received {len(self.received())}: {self.received()!r:.2000}",
                    pytrace=False,
                )
            time.sleep(WAIT_POLL_S)


@pytest.fixture
def webhook_receiver(settings: Settings) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(url=f"http://127.0.0.1:{settings.webhook_port}/")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server API)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"_unparsable": raw.decode("utf-8", "replace")}
            with receiver.lock:
                receiver.bodies.append(body)
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # keep test output quiet

    server = bind_with_patience(
        lambda: ThreadingHTTPServer(("127.0.0.1", settings.webhook_port), Handler),
        f"webhook receiver on 127.0.0.1:{settings.webhook_port} (METERWATCH_WEBHOOK_PORT)",
    )
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def private_settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings of a private stack (own state folder, free ports) that the test starts
    itself; whatever it started is stopped afterwards. Kafka is left to the test."""
    from deploy.local.stack import stack_down

    missing = [
        p for p in ("redis-server", "prometheus", "prometheus-alertmanager") if not shutil.which(p)
    ]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: run `make sysdeps`")
    settings = Settings(
        stack_dir=tmp_path / "stack",
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        redis_port=free_port(),
        prometheus_port=free_port(),
        alertmanager_port=free_port(),
        webhook_port=free_port(),
        metrics_port=free_port(),
        stack_start_timeout_s=30,
    )
    yield settings
    stack_down(settings, echo=lambda _line: None)
