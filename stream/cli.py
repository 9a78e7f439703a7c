"""The ``meterwatch`` command line.

Each area owns its commands in its own module; this file only assembles them.
Command modules keep heavy imports (torch, faust, pyarrow) inside the command
functions so that ``meterwatch stack status`` starts in well under a second.
"""

from __future__ import annotations

import typer

from deploy.grafana.cli import grafana_app
from deploy.local.cli import stack_app
from detectors.cli import train_ae_command
from simulator.cli import inject_command, simulate_command
from stream.cli_engine import evaluate_command, replay_command
from stream.cli_worker import demo_command, worker_command

app = typer.Typer(
    name="meterwatch",
    help="Real-time electricity-theft and consumption-anomaly detection for smart-meter fleets.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(stack_app, name="stack", help="Local stack: Kafka, Redis, Prometheus, Alertmanager.")
app.add_typer(grafana_app, name="grafana", help="Grafana dashboards: publish.")
app.command("simulate", help="Simulate a meter fleet with labelled theft.")(simulate_command)
app.command("inject", help="Inject labelled theft into copies of a real meter.")(inject_command)
app.command("replay", help="Replay a CSV or Parquet file through the engine.")(replay_command)
app.command("evaluate", help="Score events.jsonl against simulator labels.")(evaluate_command)
app.command("train-ae", help="Train and export the frozen autoencoder artifact.")(train_ae_command)
app.command("worker", help="Run the streaming Faust worker.")(worker_command)
app.command("demo", help="The whole job: stack, worker, simulated fleet, alerts.")(demo_command)


def main() -> None:
    app()
