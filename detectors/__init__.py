"""meterwatch: detectors."""
