"""Dagster wiring for Roost: definitions, resources, jobs."""
