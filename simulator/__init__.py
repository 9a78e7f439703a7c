"""meterwatch simulator: a labelled smart-meter fleet.

Library API (heavy imports happen inside the functions):

- ``simulator.config.FleetConfig``: every knob (meters, days, cadence_s, seed, start,
  theft_share, behaviour_share, malformed_share, nominal_voltage_v, transport_faults,
  household_mix, topology sizes, latitude, utc_offset_h, holidays, max_lateness_s, ...).
- ``simulator.fleet.simulate(config) -> (pyarrow.Table, labels dict)``: readings in the
  replay file form (arrival order) and ``meterwatch.labels.v1`` ground truth.
- ``simulator.fleet.iter_tables(config)``: the same readings chunk by chunk (bounded memory).
- ``simulator.fleet.write_files(config, out)``: ``.parquet`` or ``.csv`` + ``NAME.labels.json``.
- ``simulator.publish.publish_fleet(settings, table, form="batch"|"single", speed|rate,
  clock)`` and ``publish_config(settings, config, labels_out, ...)``: Kafka publishers with
  event-time rate control; ``encode_table`` gives the messages without a broker;
  ``SystemClock`` / ``FakeClock``; ``FleetPublisher(settings, clock)`` keeps one producer.
- ``simulator.realism``: the comparison with real AMPds2 readings
  (``python -m simulator.realism``).

Modules: ``plan`` (topology, appliances, routines, injected incidents and faults, drawn
from the seed), ``load`` (appliance-level P and Q), ``generate`` (voltage physics,
metering, theft, transport faults, chunked), ``fleet`` (tables, labels, files),
``publish`` (Kafka), ``cli`` (``meterwatch simulate``).
"""
