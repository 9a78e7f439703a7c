"""Committed model artifacts (package data: shipped inside the wheel). See README.md."""
