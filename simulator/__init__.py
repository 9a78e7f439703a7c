"""meterwatch: simulator."""
