"""The comparison operators an eligibility condition may use (`knowledge/rules/*.yaml`).

One tuple, shared by the schema that validates rule files at ingest (`ingest/schema.py`) and the
evaluator that applies them (`bot/eligibility.py`), kept apart so the evaluator loads without the
schema's pydantic models.
"""

OPERATORS = ("equals", "in", "not_in", "min", "max", "on_or_after", "on_or_before")
