"""meterwatch: rules."""
