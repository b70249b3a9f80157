"""Roost's pure library: geography, data, models, training, refinement, evaluation.

Nothing under ``ml`` imports dagster; the orchestration layer wraps these functions.
"""

__version__ = "0.1.0"
