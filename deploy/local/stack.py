"""The local stack: four real servers on 127.0.0.1, started and stopped by pid.

- Apache Kafka (KRaft, single node: broker and controller in one JVM), jars from
  Maven Central installed by ``deploy/local/install.sh`` into ``$STACK_DIR/kafka/libs``;
- Redis, nothing persisted (``--save '' --appendonly no``);
- Prometheus, scraping the worker's /metrics port, rules from ``deploy/prometheus/rules``;
- Alertmanager, config from ``deploy/alertmanager/alertmanager.yml.tmpl``, whose receivers
  are webhooks on ``settings.webhook_port`` (tests run that receiver themselves).

Everything the servers write (data, logs, pid records, rendered configs) lives in
``settings.stack_dir``. Every function takes the ``Settings``; only the CLI builds it.
Linux only: process ownership is checked through ``/proc``.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from stream.settings import REPO_ROOT, Settings

Echo = Callable[[str], None]

PROMETHEUS_TEMPLATE = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml.tmpl"
PROMETHEUS_RULES_DIR = REPO_ROOT / "deploy" / "prometheus" / "rules"
ALERTMANAGER_TEMPLATE = REPO_ROOT / "deploy" / "alertmanager" / "alertmanager.yml.tmpl"

# Short intervals: the stack serves tests and demos, where waiting a minute for a
# first scrape or a first notification would make every check slow.
SCRAPE_INTERVAL = "5s"
ALERT_GROUP_WAIT = "1s"
ALERT_GROUP_INTERVAL = "5s"
ALERT_REPEAT_INTERVAL = "4h"
WEBHOOK_PATH = "/alertmanager"

# A single-node broker for development: a small heap leaves room for the workers,
# the other servers and the tests on a small machine.
KAFKA_JVM_OPTIONS = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-Djava.awt.headless=true",
)
KAFKA_FORMAT_TIMEOUT_S = 120.0
HEALTH_POLL_INTERVAL_S = 0.5
STOP_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 15


class StackError(RuntimeError):
    """A server of the stack cannot be prepared or started."""


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class StackLayout:
    """Where each server keeps its files inside the state folder."""

    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def kafka_libs(self) -> Path:
        return self.root / "kafka" / "libs"

    def home(self, server: str) -> Path:
        return self.root / server

    def log_file(self, server: str) -> Path:
        return self.logs / f"{server}.log"

    def pid_file(self, server: str) -> Path:
        return self.pids / f"{server}.json"


# --------------------------------------------------------------------------- configs


def render_template(template: Path, values: dict[str, str]) -> str:
    """Fill a ``${name}`` template; a missing or malformed placeholder is an error.

    The template's leading comment block documents the placeholders and is not
    rendered (so it can name them plainly); one line saying where the file comes
    from replaces it.
    """
    lines = template.read_text(encoding="utf-8").splitlines(keepends=True)
    header = 0
    while header < len(lines) and lines[header].startswith("#"):
        header += 1
    body = "".join(lines[header:])
    try:
        rendered = string.Template(body).substitute(values)
    except (KeyError, ValueError) as error:
        raise StackError(f"cannot render {template}: bad placeholder {error}") from error
    return f"# rendered from {template} by `meterwatch stack up`: edit that file\n{rendered}"


def prometheus_config(settings: Settings, rules_dir: Path = PROMETHEUS_RULES_DIR) -> str:
    return render_template(
        PROMETHEUS_TEMPLATE,
        {
            "scrape_interval": SCRAPE_INTERVAL,
            "worker_targets": ", ".join(
                f'"127.0.0.1:{settings.metrics_port + k}"' for k in range(settings.local_workers)
            ),
            "prometheus_port": str(settings.prometheus_port),
            "alertmanager_port": str(settings.alertmanager_port),
            "rule_files": str(rules_dir / "*.yml"),
        },
    )


def webhook_url(settings: Settings) -> str:
    """Where Alertmanager delivers notifications (tests run this receiver)."""
    return f"http://127.0.0.1:{settings.webhook_port}{WEBHOOK_PATH}"


def alertmanager_config(settings: Settings) -> str:
    return render_template(
        ALERTMANAGER_TEMPLATE,
        {
            "webhook_url": webhook_url(settings),
            "webhook_port": str(settings.webhook_port),
            "group_wait": ALERT_GROUP_WAIT,
            "group_interval": ALERT_GROUP_INTERVAL,
            "repeat_interval": ALERT_REPEAT_INTERVAL,
        },
    )


def kafka_properties(settings: Settings, data_dir: Path) -> str:
    """server.properties of a single KRaft node that is broker and controller."""
    broker = f"127.0.0.1:{settings.kafka_port}"
    controller = f"127.0.0.1:{settings.kafka_controller_port}"
    lines = [
        "# rendered by deploy/local/stack.py; edits are overwritten by `stack up`",
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@{controller}",
        f"listeners=PLAINTEXT://{broker},CONTROLLER://{controller}",
        f"advertised.listeners=PLAINTEXT://{broker}",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        f"log.dirs={data_dir}",
        "num.partitions=1",
        # one node: every internal topic has one replica
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=8",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        # no 3 s wait for more members before the first rebalance: tests join alone
        "group.initial.rebalance.delay.ms=0",
        # A restarted node waits for its previous broker session to expire before it
        # can register again (default 9 s); a short session makes `stack up` after
        # `stack down` as quick as a first start.
        "broker.heartbeat.interval.ms=500",
        "broker.session.timeout.ms=2000",
        "log.retention.hours=24",
        "log.segment.bytes=67108864",
    ]
    return "\n".join(lines) + "\n"


KAFKA_LOG4J2 = """\
# log4j2 configuration of the local broker (Kafka 4 logs through log4j2).
# Everything goes to stdout, which the stack appends to logs/kafka.log.
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
# per-segment and per-partition chatter, useless on a development broker
logger.log.name = kafka.log
logger.log.level = WARN
logger.storage.name = org.apache.kafka.storage
logger.storage.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
"""


def new_kafka_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).decode("ascii").rstrip("=")


# --------------------------------------------------------------------------- health


def tcp_open(port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def http_ready(url: str, timeout_s: float = 5.0) -> str | None:
    """None when ``url`` answers 200, else why not."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"health checks only go to 127.0.0.1 over http, not {url!r}")
    port = int(url.split(":")[2].split("/")[0])
    if not tcp_open(port):
        return f"nothing listens on 127.0.0.1:{port}"
    # no proxy: an http_proxy in the environment must not route a local health check
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout_s) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except (OSError, urllib.error.URLError) as error:
        return f"no answer ({error})"


def http_reload(url: str, timeout_s: float = 30.0) -> str | None:
    """POST ``url`` (Prometheus' and Alertmanager's ``/-/reload``); None when accepted."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"reloads only go to 127.0.0.1 over http, not {url!r}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, data=b"", method="POST")  # noqa: S310 (checked above)
    try:
        with opener.open(request, timeout=timeout_s) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", "replace").strip()
        return f"HTTP {error.code}: {detail[:500]}"
    except (OSError, urllib.error.URLError) as error:
        return f"no answer ({error})"


def kafka_health(port: int) -> str | None:
    if not tcp_open(port):
        return f"nothing listens on 127.0.0.1:{port}"
    from kafka import KafkaAdminClient  # the import costs ~0.3 s, only when needed

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=f"127.0.0.1:{port}",
            client_id="meterwatch-stack-health",
            # generous: on a loaded machine a healthy broker can take seconds to answer
            bootstrap_timeout_ms=5000,
            request_timeout_ms=5000,
        )
    except Exception as error:  # any failure means "not ready yet"
        return f"broker does not answer ({type(error).__name__}: {error})"
    try:
        cluster = admin.describe_cluster()
    except Exception as error:
        return f"no cluster metadata ({type(error).__name__}: {error})"
    finally:
        admin.close()
    if not cluster.get("brokers"):
        return "broker is up but not registered yet"
    return None


def redis_health(port: int) -> str | None:
    if not tcp_open(port):
        return f"nothing listens on 127.0.0.1:{port}"
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # no retries: redis-py's default retries with backoff would turn "down" into seconds
    client = redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=5,
        socket_connect_timeout=2,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        return None if client.ping() else "PING failed"
    except redis.RedisError as error:
        return f"no answer ({error})"
    finally:
        client.close()


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class PidRecord:
    """What `up` records about a process it started, to recognise it later."""

    pid: int
    start_ticks: int  # /proc/<pid>/stat field 22: tells a reused pid apart
    program: str  # must appear in /proc/<pid>/cmdline
    port: int = 0  # the port it was started on (0: unknown); settings may change since

    def to_json(self) -> str:
        return json.dumps(
            {
                "pid": self.pid,
                "start_ticks": self.start_ticks,
                "program": self.program,
                "port": self.port,
            }
        )

    @classmethod
    def read(cls, path: Path) -> PidRecord | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                int(data["pid"]),
                int(data["start_ticks"]),
                str(data["program"]),
                int(data.get("port", 0)),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a live pid, else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
    return fields[0], int(fields[19])


# Popen objects of the servers this process started. Kept so they are not garbage
# collected (and warned about) while the servers, which outlive us, still run.
_LAUNCHED: list[subprocess.Popen[bytes]] = []


def _reap(pid: int) -> None:
    """Collect a zombie if this process happens to be its parent (``up`` in a test run)."""
    for process in _LAUNCHED:
        if process.pid == pid:
            process.poll()  # reaps through Popen, which then knows the exit status
            return
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def owned_and_alive(record: PidRecord) -> bool:
    """True when the recorded pid is still the very process the stack started."""
    _reap(record.pid)
    stat = _proc_stat(record.pid)
    if stat is None or stat[0] in {"Z", "X"} or stat[1] != record.start_ticks:
        return False
    try:
        cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    # Pid plus start time identify a process; the program name is a second check. Right
    # after exec, /proc/<pid>/cmdline can read empty for a moment: that is no mismatch.
    return not cmdline or record.program.encode() in cmdline


# --------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class Server:
    name: str
    port: int
    program: str  # identifies the process in /proc/<pid>/cmdline
    argv: tuple[str, ...]
    health: Callable[[], str | None]
    prepare: Callable[[], None] = field(default=lambda: None)
    # servers that re-read their rendered config on POST (Prometheus, Alertmanager):
    # `up` re-renders and reloads them when they already run, so edits to the templates
    # or to deploy/prometheus/rules reach a running stack without a restart
    reload_url: str | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def _require_program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise StackError(f"`{name}` not found: run `make sysdeps` (deploy/local/install.sh)")
    return path


def _program_or_name(name: str) -> str:
    return shutil.which(name) or name


def build_servers(settings: Settings) -> list[Server]:
    """The four servers, in start order. Builds paths and argv; starts nothing.

    Kafka comes last: its first start formats the storage (a JVM run of a few seconds),
    which should not hold up the others.
    """
    layout = StackLayout(settings.stack_dir)
    kafka_home = layout.home("kafka")
    kafka_data = kafka_home / "data"
    kafka_props = kafka_home / "server.properties"
    kafka_log4j = kafka_home / "log4j2.properties"
    prom_home = layout.home("prometheus")
    am_home = layout.home("alertmanager")
    redis_home = layout.home("redis")

    def prepare_kafka() -> None:
        java = _require_program("java")
        jars = sorted(layout.kafka_libs.glob("kafka_2.13-*.jar"))
        if not jars:
            raise StackError(
                f"Kafka jars missing in {layout.kafka_libs}: "
                "run `make sysdeps` (deploy/local/install.sh)"
            )
        kafka_data.mkdir(parents=True, exist_ok=True)
        kafka_props.write_text(kafka_properties(settings, kafka_data), encoding="utf-8")
        kafka_log4j.write_text(KAFKA_LOG4J2, encoding="utf-8")
        if (kafka_data / "meta.properties").exists():
            return
        # First start: format the KRaft storage once, with a cluster id kept beside it.
        cluster_id_file = kafka_home / "cluster.id"
        if not cluster_id_file.exists():
            cluster_id_file.write_text(new_kafka_cluster_id() + "\n", encoding="ascii")
        cluster_id = cluster_id_file.read_text(encoding="ascii").strip()
        log_path = layout.log_file("kafka")
        with log_path.open("ab") as log:
            log.write(f"=== {_now()} formatting KRaft storage, cluster {cluster_id}\n".encode())
            log.flush()
            try:
                done = subprocess.run(  # noqa: S603 (fixed argv, no shell)
                    [
                        java,
                        *_kafka_java_options(kafka_log4j, layout),
                        "kafka.tools.StorageTool",
                        "format",
                        # one argument with "=": a random id may start with "-", which
                        # the tool's parser would take for an option (1 start in 64)
                        f"--cluster-id={cluster_id}",
                        "--config",
                        str(kafka_props),
                        "--ignore-formatted",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=KAFKA_FORMAT_TIMEOUT_S,
                    check=False,
                )
            except subprocess.TimeoutExpired as error:
                raise StackError(f"formatting Kafka storage timed out; log: {log_path}") from error
        if done.returncode != 0:
            raise StackError(f"formatting Kafka storage failed; log: {log_path}")

    def prepare_redis() -> None:
        _require_program("redis-server")
        redis_home.mkdir(parents=True, exist_ok=True)

    def prepare_prometheus() -> None:
        _require_program("prometheus")
        (prom_home / "data").mkdir(parents=True, exist_ok=True)
        (prom_home / "prometheus.yml").write_text(prometheus_config(settings), encoding="utf-8")

    def prepare_alertmanager() -> None:
        _require_program("prometheus-alertmanager")
        (am_home / "data").mkdir(parents=True, exist_ok=True)
        (am_home / "alertmanager.yml").write_text(alertmanager_config(settings), encoding="utf-8")

    return [
        Server(
            name="redis",
            port=settings.redis_port,
            program="redis-server",
            argv=(
                _program_or_name("redis-server"),
                "--bind",
                "127.0.0.1",
                "--port",
                str(settings.redis_port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(redis_home),
                "--daemonize",
                "no",
                "--logfile",
                "",
            ),
            health=lambda: redis_health(settings.redis_port),
            prepare=prepare_redis,
        ),
        Server(
            name="prometheus",
            port=settings.prometheus_port,
            program="prometheus",
            argv=(
                _program_or_name("prometheus"),
                f"--config.file={prom_home / 'prometheus.yml'}",
                f"--storage.tsdb.path={prom_home / 'data'}",
                "--storage.tsdb.retention.time=2d",
                f"--web.listen-address=127.0.0.1:{settings.prometheus_port}",
                # lets rule authors reload with POST /-/reload instead of a restart
                "--web.enable-lifecycle",
            ),
            health=lambda: http_ready(f"http://127.0.0.1:{settings.prometheus_port}/-/ready"),
            prepare=prepare_prometheus,
            reload_url=f"http://127.0.0.1:{settings.prometheus_port}/-/reload",
        ),
        Server(
            name="alertmanager",
            port=settings.alertmanager_port,
            program="alertmanager",
            argv=(
                _program_or_name("prometheus-alertmanager"),
                f"--config.file={am_home / 'alertmanager.yml'}",
                f"--storage.path={am_home / 'data'}",
                f"--web.listen-address=127.0.0.1:{settings.alertmanager_port}",
                # a single instance: no gossip port, nothing listening beyond the web port
                "--cluster.listen-address=",
            ),
            health=lambda: http_ready(f"http://127.0.0.1:{settings.alertmanager_port}/-/ready"),
            prepare=prepare_alertmanager,
            reload_url=f"http://127.0.0.1:{settings.alertmanager_port}/-/reload",
        ),
        Server(
            name="kafka",
            port=settings.kafka_port,
            program="kafka.Kafka",
            argv=(
                _program_or_name("java"),
                *_kafka_java_options(kafka_log4j, layout),
                "kafka.Kafka",
                str(kafka_props),
            ),
            health=lambda: kafka_health(settings.kafka_port),
            prepare=prepare_kafka,
        ),
    ]


def _kafka_java_options(log4j: Path, layout: StackLayout) -> list[str]:
    return [
        *KAFKA_JVM_OPTIONS,
        f"-Dlog4j2.configurationFile={log4j}",
        f"-Dkafka.logs.dir={layout.logs}",
        "-cp",
        f"{layout.kafka_libs}/*",  # java expands the wildcard itself
    ]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join("    | " + line for line in text.splitlines()[-lines:])


# --------------------------------------------------------------------------- state


@dataclass(frozen=True)
class ServerState:
    name: str
    address: str
    healthy: bool
    detail: str  # why not healthy, or "" when healthy
    pid: int | None  # recorded pid still owned by the stack, else None


def check_health(servers: Sequence[Server]) -> dict[str, str | None]:
    """Each server's health check, run side by side: a broker still starting (its check
    can take seconds) must not hold up the verdict on the others."""
    if not servers:
        return {}
    with ThreadPoolExecutor(max_workers=len(servers), thread_name_prefix="health") as pool:
        reasons = list(pool.map(lambda server: server.health(), servers))
    return {server.name: reason for server, reason in zip(servers, reasons, strict=True)}


def server_states(servers: Sequence[Server], layout: StackLayout) -> list[ServerState]:
    reasons = check_health(servers)
    states = []
    for server in servers:
        record = PidRecord.read(layout.pid_file(server.name))
        pid = record.pid if record is not None and owned_and_alive(record) else None
        reason = reasons[server.name]
        if reason is not None and pid is not None and record is not None:
            if record.port not in {0, server.port}:
                reason += f" (the stack's {server.name} runs on port {record.port})"
        states.append(ServerState(server.name, server.address, reason is None, reason or "", pid))
    return states


# --------------------------------------------------------------------------- commands


def client_settings_elsewhere(settings: Settings) -> list[str]:
    """Client settings (what the worker and tests connect to) that do not point at this
    stack's servers: fine when meant (existing servers), a trap when a port was changed
    without the matching URL."""
    from urllib.parse import urlsplit

    notes = []
    stack_kafka = f"127.0.0.1:{settings.kafka_port}"
    if settings.kafka_bootstrap.split(",")[0].strip() not in {
        stack_kafka,
        f"localhost:{settings.kafka_port}",
    }:
        notes.append(
            f"METERWATCH_KAFKA_BOOTSTRAP={settings.kafka_bootstrap} (stack: {stack_kafka})"
        )
    for name, url, port in (
        ("REDIS_URL", settings.redis_url, settings.redis_port),
        ("PROMETHEUS_URL", settings.prometheus_url, settings.prometheus_port),
        ("ALERTMANAGER_URL", settings.alertmanager_url, settings.alertmanager_port),
    ):
        parts = urlsplit(url)
        if parts.hostname not in {"127.0.0.1", "localhost"} or parts.port != port:
            notes.append(f"METERWATCH_{name}={url} (stack: 127.0.0.1:{port})")
    return notes


def _echo_elsewhere(settings: Settings, echo: Echo) -> None:
    for note in client_settings_elsewhere(settings):
        echo(f"note: clients do not use this stack's server: {note}")


@contextlib.contextmanager
def _exclusive(layout: StackLayout, echo: Echo) -> Iterator[None]:
    """One `up` or `down` at a time per state folder: two concurrent `up`s would both
    start a server, and the loser's pid record would overwrite the winner's."""
    layout.root.mkdir(parents=True, exist_ok=True)
    with (layout.root / ".stack.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            echo("another `stack up` or `stack down` is running here: waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def stack_status(settings: Settings, echo: Echo = print) -> int:
    """Print each server's state; 0 only when all four are healthy."""
    layout = StackLayout(settings.stack_dir)
    states = server_states(build_servers(settings), layout)
    for state in states:
        if state.healthy:
            owner = f"pid {state.pid}" if state.pid else "not started by this stack"
            word = "healthy"
        elif state.pid:
            owner, word = f"pid {state.pid}, {state.detail}", "unhealthy"
        else:
            owner, word = state.detail, "stopped"
        echo(f"{state.name:<13} {word:<10} {state.address:<16} {owner}")
    _echo_elsewhere(settings, echo)
    healthy = sum(state.healthy for state in states)
    if healthy == len(states):
        echo(f"stack: all {healthy} servers healthy (state in {layout.root})")
        return 0
    if healthy == 0 and not any(state.pid for state in states):
        echo(f"stack: not running (0/{len(states)} healthy). Start it: meterwatch stack up")
    else:
        echo(f"stack: {healthy}/{len(states)} healthy. Logs: {layout.logs}")
    return 1


def stack_up(settings: Settings, echo: Echo = print) -> int:
    """Start whatever is not already healthy, wait for health; 0 when all four are."""
    layout = StackLayout(settings.stack_dir)
    with _exclusive(layout, echo):
        return _stack_up(settings, layout, echo)


def _stack_up(settings: Settings, layout: StackLayout, echo: Echo) -> int:
    began = time.monotonic()
    for folder in (layout.root, layout.logs, layout.pids):
        folder.mkdir(parents=True, exist_ok=True)
    servers = build_servers(settings)

    waiting: dict[str, Server] = {}
    failed: list[str] = []
    reasons = check_health(servers)
    for server in servers:
        reason = reasons[server.name]
        record = PidRecord.read(layout.pid_file(server.name))
        ours = record is not None and owned_and_alive(record)
        if reason is None:
            if not (ours and record is not None):
                owner = "not started by this stack"
                echo(f"{server.name}: already healthy at {server.address} ({owner})")
                continue
            problem = _refresh(server)
            if problem is None:
                reloaded = ", config re-rendered and reloaded" if server.reload_url else ""
                owner = f"pid {record.pid}{reloaded}"
                echo(f"{server.name}: already healthy at {server.address} ({owner})")
            else:
                echo(
                    f"{server.name}: FAILED to reload its config ({problem}); it keeps the "
                    f"previous one. Log: {layout.log_file(server.name)}"
                )
                failed.append(server.name)
            continue
        if ours and record is not None and record.port not in {0, server.port}:
            echo(
                f"{server.name}: FAILED: the stack's {server.name} (pid {record.pid}) runs on "
                f"port {record.port}, the settings now say {server.port}: "
                "`meterwatch stack down` first (with the settings it was started with, "
                "or these: down goes by pid)"
            )
            failed.append(server.name)
            continue
        if ours and record is not None:
            echo(f"{server.name}: started earlier (pid {record.pid}), waiting for it to be healthy")
            waiting[server.name] = server
            continue
        layout.pid_file(server.name).unlink(missing_ok=True)
        try:
            _start(server, layout, echo)
        except StackError as error:
            echo(f"{server.name}: FAILED to start: {error}")
            failed.append(server.name)
            continue
        waiting[server.name] = server

    failed += _wait_healthy(waiting, layout, settings.stack_start_timeout_s, echo, began)
    _echo_elsewhere(settings, echo)
    if failed:
        echo(
            f"stack up: FAILED ({', '.join(failed)}) after {time.monotonic() - began:.1f}s. "
            "Servers that did start keep running; `meterwatch stack down` stops them."
        )
        return 1
    echo(f"stack up: all {len(servers)} servers healthy in {time.monotonic() - began:.1f}s")
    return 0


def _refresh(server: Server) -> str | None:
    """Re-render and reload the config of a running server of ours; None when done."""
    if server.reload_url is None:
        return None
    try:
        server.prepare()
    except StackError as error:
        return str(error)
    return http_reload(server.reload_url)


def _start(server: Server, layout: StackLayout, echo: Echo) -> None:
    server.prepare()
    log_path = layout.log_file(server.name)
    echo(f"{server.name}: starting on {server.address} (log {log_path})")
    with log_path.open("ab") as log:
        log.write(f"=== {_now()} starting: {' '.join(server.argv)}\n".encode())
        log.flush()
        try:
            process = subprocess.Popen(  # noqa: S603 (fixed argv, no shell)
                server.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=layout.home(server.name),
                start_new_session=True,  # outlives this command, ignores its Ctrl-C
            )
        except OSError as error:
            raise StackError(f"cannot execute {server.argv[0]}: {error}") from error
    _LAUNCHED.append(process)
    stat = _proc_stat(process.pid)
    start_ticks = stat[1] if stat else -1
    record = PidRecord(process.pid, start_ticks, server.program, server.port)
    layout.pid_file(server.name).write_text(record.to_json() + "\n", encoding="utf-8")


def _wait_healthy(
    waiting: dict[str, Server],
    layout: StackLayout,
    timeout_s: float,
    echo: Echo,
    began: float,
) -> list[str]:
    """Poll until every waiting server is healthy; return the names that failed."""
    failed: list[str] = []
    deadline = time.monotonic() + timeout_s
    last_reason: dict[str, str] = {}
    while waiting:
        records: dict[str, PidRecord] = {}
        for name in list(waiting):
            record = PidRecord.read(layout.pid_file(name))
            if record is None or not owned_and_alive(record):
                log_path = layout.log_file(name)
                echo(f"{name}: FAILED: the process exited. Log: {log_path}\n{_tail(log_path)}")
                failed.append(name)
                del waiting[name]
            else:
                records[name] = record
        reasons = check_health(list(waiting.values()))
        for name, server in list(waiting.items()):
            record, reason = records[name], reasons[name]
            if reason is None:
                elapsed = time.monotonic() - began
                echo(f"{name}: healthy at {server.address} (pid {record.pid}, {elapsed:.1f}s)")
                del waiting[name]
            else:
                last_reason[name] = reason
        if not waiting:
            break
        if time.monotonic() >= deadline:
            for name in waiting:
                log_path = layout.log_file(name)
                echo(
                    f"{name}: FAILED: not healthy within {timeout_s:.0f}s "
                    f"({last_reason.get(name, 'no check ran')}). Log: {log_path}\n{_tail(log_path)}"
                )
                failed.append(name)
            break
        time.sleep(HEALTH_POLL_INTERVAL_S)
    return failed


def stack_down(settings: Settings, echo: Echo = print, timeout_s: float = STOP_TIMEOUT_S) -> int:
    """Stop the processes the stack started (by recorded pid); leave anything else alone."""
    layout = StackLayout(settings.stack_dir)
    with _exclusive(layout, echo):
        return _stack_down(settings, layout, echo, timeout_s)


def _stack_down(settings: Settings, layout: StackLayout, echo: Echo, timeout_s: float) -> int:
    stopping: dict[str, PidRecord] = {}
    for server in reversed(build_servers(settings)):
        pid_file = layout.pid_file(server.name)
        record = PidRecord.read(pid_file)
        if record is None:
            echo(f"{server.name}: not started by this stack, nothing to stop")
            pid_file.unlink(missing_ok=True)
            continue
        if not owned_and_alive(record):
            echo(
                f"{server.name}: pid {record.pid} is gone or is no longer {record.program}; "
                "not killing it, removing the stale pid record"
            )
            pid_file.unlink(missing_ok=True)
            continue
        echo(f"{server.name}: stopping pid {record.pid} (SIGTERM)")
        os.kill(record.pid, signal.SIGTERM)
        stopping[server.name] = record

    deadline = time.monotonic() + timeout_s
    while stopping and time.monotonic() < deadline:
        for name, record in list(stopping.items()):
            if not owned_and_alive(record):
                echo(f"{name}: stopped")
                layout.pid_file(name).unlink(missing_ok=True)
                del stopping[name]
        if stopping:
            time.sleep(0.2)
    for name, record in stopping.items():
        echo(f"{name}: still running after {timeout_s:.0f}s, SIGKILL pid {record.pid}")
        os.kill(record.pid, signal.SIGKILL)
        _wait_gone(record, 5.0)
        layout.pid_file(name).unlink(missing_ok=True)
    return 0


def _wait_gone(record: PidRecord, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while owned_and_alive(record) and time.monotonic() < deadline:
        time.sleep(0.1)


def restart_server(
    settings: Settings, name: str, echo: Echo = print, timeout_s: float = STOP_TIMEOUT_S
) -> int:
    """Stop one server of the stack by its recorded pid, start it again, wait for health.

    The same safety as ``down``: only a pid this stack recorded, still alive and still
    the same program, is signalled. A server with a stale record (it died) is started
    again; one with no record (not started by this stack) is left alone. Returns 0 when
    the server is healthy again, 1 when it cannot be restarted, 2 for an unknown name.
    """
    servers = {server.name: server for server in build_servers(settings)}
    server = servers.get(name)
    if server is None:
        echo(f"unknown server {name!r}: one of {', '.join(servers)}")
        return 2
    layout = StackLayout(settings.stack_dir)
    with _exclusive(layout, echo):
        return _restart(server, settings, layout, echo, timeout_s)


def _restart(
    server: Server, settings: Settings, layout: StackLayout, echo: Echo, timeout_s: float
) -> int:
    began = time.monotonic()
    pid_file = layout.pid_file(server.name)
    record = PidRecord.read(pid_file)
    if record is None:
        echo(
            f"{server.name}: not started by this stack (no pid record in {layout.pids}), "
            "not touching it: `meterwatch stack up` starts it"
        )
        return 1
    if record.port not in {0, server.port}:
        echo(
            f"{server.name}: FAILED: the stack's {server.name} (pid {record.pid}) runs on "
            f"port {record.port}, the settings now say {server.port}: restart it with the "
            "settings it was started with"
        )
        return 1
    if owned_and_alive(record):
        echo(f"{server.name}: stopping pid {record.pid} (SIGTERM)")
        os.kill(record.pid, signal.SIGTERM)
        _wait_gone(record, timeout_s)
        if owned_and_alive(record):
            echo(f"{server.name}: still running after {timeout_s:.0f}s, SIGKILL pid {record.pid}")
            os.kill(record.pid, signal.SIGKILL)
            _wait_gone(record, 5.0)
        echo(f"{server.name}: stopped ({time.monotonic() - began:.1f}s)")
    else:
        echo(
            f"{server.name}: pid {record.pid} is gone or is no longer {record.program}; "
            "not killing it, starting a new one"
        )
    pid_file.unlink(missing_ok=True)
    try:
        _start(server, layout, echo)
    except (StackError, OSError) as error:  # OSError: its folders cannot be prepared
        echo(f"{server.name}: FAILED to start: {error}")
        return 1
    failed = _wait_healthy(
        {server.name: server}, layout, settings.stack_start_timeout_s, echo, began
    )
    if failed:
        echo(f"stack restart {server.name}: FAILED after {time.monotonic() - began:.1f}s")
        return 1
    new = PidRecord.read(pid_file)
    new_pid = new.pid if new is not None else "?"
    echo(
        f"stack restart {server.name}: healthy again in {time.monotonic() - began:.1f}s "
        f"(pid {record.pid} -> {new_pid})"
    )
    return 0
