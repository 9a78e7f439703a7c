"""Kafka publisher: simulated gateways sending readings to ``meter.readings``.

Two message forms (contract section 1):

- ``single``: one JSON reading per message, key = meter_id;
- ``batch``: ``{"gateway_id", "readings": [...]}``, key = gateway_id. A batch is a run of
  consecutive rows (in arrival order) from one gateway with no newer timestamp than its
  first, so it is what that gateway sent at that moment (late and re-sent readings ride
  along), up to ``max_batch`` readings.

Malformed rows go out the way a broken gateway would send them: an unparsable row is a
truncated JSON text on its own; a NaN reading is a JSON text with a literal ``NaN`` on its
own (so a strict decoder rejects that reading, not a whole batch); a missing field is
omitted; |pf| > 1 and v <= 0 are sent as they are.

Rate control runs on an event-time clock: the event clock is the newest reading
timestamp published so far, and a message whose event time is E is sent no earlier
than wall0 + (E - E0) / speed. ``speed=None`` sends as fast as possible; 1.0 is real
time; 60.0 is an hour of readings per minute. The clock is passed in (``SystemClock``
or ``FakeClock``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

if TYPE_CHECKING:
    import pyarrow as pa
    from rich.console import Console

    from simulator.config import FleetConfig
    from stream.settings import Settings

LABELS_TOPIC = "meter.labels"


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Wall clock (monotonic)."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


@dataclass
class FakeClock:
    """A clock for tests: sleeping advances it instantly and records the sleeps."""

    t: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.sleeps.append(seconds)
            self.t += seconds


def parse_rate(text: str) -> float | None:
    """``max`` -> None (as fast as possible), ``realtime`` -> 1.0, ``x60`` / ``60x`` / ``60``
    -> 60.0."""
    t = text.strip().lower()
    if t in ("max", "fast", "asap"):
        return None
    if t in ("realtime", "real-time", "x1", "1x"):
        return 1.0
    try:
        speed = float(t.strip("x"))
    except ValueError as exc:
        raise ValueError(f"rate {text!r}: use max, realtime or xN") from exc
    if not speed > 0:
        raise ValueError(f"rate {text!r}: N must be > 0")
    return speed


class Pacer:
    """Holds publishing to ``speed`` x event time."""

    def __init__(self, speed: float | None, clock: Clock) -> None:
        self.speed = speed
        self.clock = clock
        self._anchor: tuple[int, float] | None = None
        self._event_ms: int | None = None

    def wait_for(self, event_ms: int) -> None:
        if self.speed is None:
            return
        if self._event_ms is not None and event_ms <= self._event_ms:
            return  # the event clock never runs backwards (late rows do not rewind it)
        self._event_ms = event_ms
        if self._anchor is None:
            self._anchor = (event_ms, self.clock.now())
            return
        e0, w0 = self._anchor
        target = w0 + (event_ms - e0) / 1000.0 / self.speed
        delay = target - self.clock.now()
        if delay > 0:
            self.clock.sleep(delay)


@dataclass
class Message:
    key: bytes
    value: bytes
    event_ms: int | None  # newest reading time in the message (None: unparsable)
    readings: int


@dataclass
class PublishStats:
    readings: int = 0
    messages: int = 0
    malformed_messages: int = 0
    first_event_ms: int | None = None
    last_event_ms: int | None = None
    wall_s: float = 0.0


def _reading(meter: str, ts: int, p: Any, v: Any, i: Any, pf: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"meter_id": meter, "ts": ts}
    for name, value in (("p", p), ("v", v), ("i", i), ("pf", pf)):
        if value is not None:  # a missing field is left out
            out[name] = value
    return out


def encode_table(
    table: pa.Table, form: str, max_batch: int = 500, upload_every_s: float | None = None
) -> Iterator[Message]:
    """Kafka messages for a readings table (file form), in the table's row order.

    ``upload_every_s`` (batch form only) models a gateway that uploads on a schedule
    instead of at each arrival: every gateway buffers what reaches it and sends the buffer
    once it is that old, on the arrival clock (the newest reading time seen so far, the
    rows being in arrival order), or when it holds ``max_batch`` readings. Late and
    re-sent readings then ride along with their gateway's next upload instead of going
    out one per message; they reach the broker up to ``upload_every_s`` later.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from simulator.fleet import decode_strings

    if form not in ("batch", "single"):
        raise ValueError(f"form must be batch or single, not {form!r}")
    table = decode_strings(table)
    ts_col = table.column("ts")
    if pa.types.is_string(ts_col.type) or pa.types.is_large_string(ts_col.type):
        parsed = pc.strptime(ts_col, format="%Y-%m-%dT%H:%M:%S%z", unit="ms", error_is_null=True)
        ts_ms = pc.cast(parsed, pa.int64()).to_pylist()
    else:
        ts_ms = pc.cast(ts_col, pa.int64()).to_pylist()
    meters = table.column("meter_id").to_pylist()
    raw_ts = ts_col.to_pylist()
    p = table.column("power_w").to_pylist()
    v = table.column("voltage_v").to_pylist()
    i = table.column("current_a").to_pylist()
    pf = table.column("pf").to_pylist()
    gws = (
        table.column("gateway_id").to_pylist()
        if "gateway_id" in table.column_names
        else [None] * table.num_rows
    )

    # rows that need a message of their own, found once for the whole table
    has_nan = np.zeros(table.num_rows, dtype=bool)
    for name in ("power_w", "voltage_v", "current_a", "pf"):
        has_nan |= np.isnan(pc.fill_null(table.column(name), 0.0).to_numpy())
    odd_rows = has_nan | np.asarray([t is None for t in ts_ms], dtype=bool)

    def odd_one(k: int) -> Message | None:
        if not odd_rows[k]:
            return None
        if ts_ms[k] is None:  # unparsable: a truncated frame
            text = f'{{"meter_id": "{meters[k]}", "ts": "{raw_ts[k]}", "p": {p[k]}, "v'
            return Message(meters[k].encode(), text.encode(), None, 1)
        if has_nan[k]:  # NaN is not JSON: a lenient encoder wrote it
            body = _reading(meters[k], ts_ms[k], p[k], v[k], i[k], pf[k])
            return Message(meters[k].encode(), json.dumps(body).encode(), ts_ms[k], 1)
        return None

    n = table.num_rows
    if form == "single":
        for k in range(n):
            odd = odd_one(k)
            if odd is not None:
                yield odd
                continue
            body = _reading(meters[k], ts_ms[k], p[k], v[k], i[k], pf[k])
            yield Message(meters[k].encode(), orjson.dumps(body), ts_ms[k], 1)
        return

    if upload_every_s is not None:
        yield from _scheduled_uploads(
            n, gws, meters, ts_ms, odd_one, max_batch, int(upload_every_s * 1000),
            lambda k: _reading(meters[k], ts_ms[k], p[k], v[k], i[k], pf[k]),
        )  # fmt: skip
        return

    batch: list[dict[str, Any]] = []
    batch_gw = ""
    newest = 0

    def flush() -> Message:
        body = {"gateway_id": batch_gw, "readings": batch}
        return Message(batch_gw.encode(), orjson.dumps(body), newest, len(batch))

    for k in range(n):
        gw = gws[k] if gws[k] is not None else meters[k]
        # a batch is what one gateway sends at one moment: a newer step starts a new one
        # (late and re-sent older readings ride along with the current one)
        newer = ts_ms[k] is not None and ts_ms[k] > newest
        if batch and (gw != batch_gw or len(batch) >= max_batch or newer):
            yield flush()
            batch, newest = [], 0
        odd = odd_one(k)
        if odd is not None:
            yield odd
            continue
        batch_gw = str(gw)
        batch.append(_reading(meters[k], ts_ms[k], p[k], v[k], i[k], pf[k]))
        newest = max(newest, ts_ms[k])
    if batch:
        yield flush()


def _scheduled_uploads(
    n: int,
    gws: list[Any],
    meters: list[Any],
    ts_ms: list[Any],
    odd_one: Callable[[int], Message | None],
    max_batch: int,
    period_ms: int,
    reading: Callable[[int], dict[str, Any]],
) -> Iterator[Message]:
    """Batch messages of gateways that upload every ``period_ms`` (see ``encode_table``)."""
    from collections import deque

    if period_ms < 0:
        raise ValueError("upload_every_s must be >= 0")
    buffers: dict[str, list[dict[str, Any]]] = {}
    newest: dict[str, int] = {}
    opened_at: dict[str, int] = {}
    # gateways in the order their buffers opened, with the arrival clock at opening: the
    # clock never goes back, so the oldest buffer is always at the left
    opened: deque[tuple[int, str]] = deque()
    clock = -(2**62)

    def flush(gw: str) -> Message:
        batch = buffers.pop(gw)
        del opened_at[gw]
        body = {"gateway_id": gw, "readings": batch}
        return Message(gw.encode(), orjson.dumps(body), newest.pop(gw), len(batch))

    for k in range(n):
        odd = odd_one(k)
        if odd is not None:
            yield odd
            continue
        if ts_ms[k] > clock:
            clock = ts_ms[k]
            while opened and opened[0][0] + period_ms <= clock:
                at, due = opened.popleft()
                if opened_at.get(due) == at:  # else flushed full and reopened since
                    yield flush(due)
        gw = str(gws[k] if gws[k] is not None else meters[k])
        if gw not in buffers:
            buffers[gw], newest[gw], opened_at[gw] = [], ts_ms[k], clock
            opened.append((clock, gw))
        buffers[gw].append(reading(k))
        newest[gw] = max(newest[gw], ts_ms[k])
        if len(buffers[gw]) >= max_batch:
            yield flush(gw)  # its entry in ``opened`` is skipped when due
    while opened:
        at, gw = opened.popleft()
        if opened_at.get(gw) == at:
            yield flush(gw)


def publish_messages(
    producer: Any,
    topic: str,
    messages: Iterable[Message],
    pacer: Pacer,
    stats: PublishStats,
    on_readings: Callable[[int], None] | None = None,
) -> None:
    """Send messages through a kafka-python ``KafkaProducer`` (or anything with ``send``)."""
    for msg in messages:
        if msg.event_ms is not None:
            pacer.wait_for(msg.event_ms)
            if stats.first_event_ms is None:
                stats.first_event_ms = msg.event_ms
            stats.last_event_ms = max(stats.last_event_ms or msg.event_ms, msg.event_ms)
        else:
            stats.malformed_messages += 1
        producer.send(topic, key=msg.key, value=msg.value)
        stats.messages += 1
        stats.readings += msg.readings
        if on_readings is not None:
            on_readings(msg.readings)


def make_producer(settings: Settings) -> Any:
    from kafka import KafkaProducer

    return KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        linger_ms=20,
        batch_size=256 * 1024,
        max_request_size=8 * 1024 * 1024,
        acks=1,
    )


def publish_fleet(
    settings: Settings,
    table: pa.Table,
    form: str = "batch",
    speed: float | None = None,
    clock: Clock | None = None,
    producer: Any = None,
    max_batch: int = 500,
    rate: str | None = None,
) -> PublishStats:
    """Publish a readings table (e.g. from ``simulate``) to ``settings.topic_readings``.

    ``speed`` (None = as fast as possible, 1.0 = real time, N = N x) or, equivalently,
    ``rate`` as the CLI spells it (``max``, ``realtime``, ``x60``)."""
    if rate is not None:
        speed = parse_rate(rate)
    clock = clock if clock is not None else SystemClock()
    own = producer is None
    producer = make_producer(settings) if own else producer
    stats = PublishStats()
    started = clock.now()
    try:
        publish_messages(
            producer,
            settings.topic_readings,
            encode_table(table, form, max_batch),
            Pacer(speed, clock),
            stats,
        )
        producer.flush()
    finally:
        if own:
            producer.close()
    stats.wall_s = clock.now() - started
    return stats


def read_readings_file(path: Path) -> pa.Table:
    """A readings file (contract section 1, ``.parquet`` or ``.csv``, e.g. from
    ``meterwatch simulate --out``) as a table in its row order, for :func:`publish_file`."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pq.read_table(path)
    if suffix == ".csv":
        # ts stays text: encode_table parses ISO-8601 and epoch ms alike
        options = pacsv.ConvertOptions(column_types={"ts": "string", "meter_id": "string"})
        return pacsv.read_csv(path, convert_options=options)
    raise ValueError(f"readings file must end in .parquet or .csv, not {path.name!r}")


def publish_file(
    settings: Settings,
    path: Path,
    form: str = "batch",
    rate: str | None = None,
    producer: Any = None,
    max_batch: int = 500,
    clock: Clock | None = None,
) -> PublishStats:
    """Publish the rows of a readings file, in file order, to ``settings.topic_readings``:
    the stream then gets exactly the readings ``meterwatch replay`` reads from that file."""
    return publish_fleet(
        settings,
        read_readings_file(path),
        form=form,
        rate=rate,
        producer=producer,
        max_batch=max_batch,
        clock=clock,
    )


def publish_labels(producer: Any, labels: dict[str, Any], topic: str = LABELS_TOPIC) -> int:
    """Labels to their own topic: one ``meterwatch.labels.v1`` document per meter, keyed by
    meter_id (one document for the whole fleet could pass Kafka's message size limit)."""
    head = {k: v for k, v in labels.items() if k != "meters"}
    sent = 0
    for meter in labels["meters"]:
        body = dict(head, meters=[meter])
        producer.send(topic, key=meter["meter_id"].encode(), value=orjson.dumps(body))
        sent += 1
    return sent


def publish_config(
    settings: Settings,
    config: FleetConfig,
    labels_out: Path,
    form: str = "batch",
    speed: float | None = None,
    clock: Clock | None = None,
    producer: Any = None,
    progress: bool = False,
    console: Console | None = None,
    labels_topic: str = LABELS_TOPIC,
) -> PublishStats:
    """Simulate ``config`` and publish it chunk by chunk (bounded memory); labels go to
    ``labels_out`` and to the ``meter.labels`` topic at the end."""
    from rich.progress import Progress

    from simulator.fleet import build_labels, iter_tables, write_labels
    from simulator.generate import GenerationLog
    from simulator.plan import build_plan

    clock = clock if clock is not None else SystemClock()
    own = producer is None
    producer = make_producer(settings) if own else producer
    stats = PublishStats()
    pacer = Pacer(speed, clock)
    plan = build_plan(config)
    logs: list[GenerationLog] = []
    started = clock.now()
    try:
        with Progress(console=console, disable=not progress, transient=True) as bar:
            task = bar.add_task("publishing", total=config.steps * config.meters)
            for table in iter_tables(config, plan, logs):
                publish_messages(
                    producer,
                    settings.topic_readings,
                    encode_table(table, form),
                    pacer,
                    stats,
                    on_readings=lambda n: bar.advance(task, n),
                )
        labels = build_labels(plan, logs[0])
        write_labels(labels, labels_out)
        publish_labels(producer, labels, labels_topic)
        producer.flush()
    finally:
        if own:
            producer.close()
    stats.wall_s = clock.now() - started
    return stats


class FleetPublisher:
    """The publisher as an object: Settings and clock in, one producer kept open.

    with FleetPublisher(settings, SystemClock()) as pub:
        pub.publish(table, form="batch", rate="x60")
    """

    def __init__(self, settings: Settings, clock: Clock | None = None, producer: Any = None):
        self.settings = settings
        self.clock = clock if clock is not None else SystemClock()
        self._own = producer is None
        self.producer = make_producer(settings) if producer is None else producer

    def publish(
        self,
        table: pa.Table,
        form: str = "batch",
        rate: str | None = None,
        speed: float | None = None,
        max_batch: int = 500,
    ) -> PublishStats:
        return publish_fleet(
            self.settings,
            table,
            form=form,
            speed=speed,
            clock=self.clock,
            producer=self.producer,
            max_batch=max_batch,
            rate=rate,
        )

    def publish_labels(self, labels: dict[str, Any], topic: str = LABELS_TOPIC) -> int:
        sent = publish_labels(self.producer, labels, topic)
        self.producer.flush()
        return sent

    def close(self) -> None:
        if self._own:
            self.producer.close()

    def __enter__(self) -> FleetPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
