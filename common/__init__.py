"""Shared lowest layer: typed settings, the database base and engine, the clock.

`common` imports neither `ingest` nor `bot`; `ingest` imports `common`; `bot` imports both.
"""
