"""Output sinks of the streaming worker: Redis, Alertmanager, Kafka (events and DLQ).

Every sink is idempotent on (event_id, version) or tolerant of replays, and every
write goes through :func:`stream.sinks.retry.retry_until_done`, so a sink that is
down stalls the worker (back-pressure) instead of losing outputs or crashing it.
"""
