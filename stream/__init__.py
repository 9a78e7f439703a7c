"""meterwatch: stream."""
