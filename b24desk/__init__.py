"""b24desk core: client, sources, store, KPI engine. Knows nothing of Flask."""

__version__ = "0.1.0"
