"""Thin Dagster assets, one module per stage group; each wraps one ``ml`` function."""
