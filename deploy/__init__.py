"""meterwatch: deploy."""
