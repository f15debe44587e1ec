"""Registers the ``flask`` commands of shared/spec/interfaces.md on the app.

Each command lives beside the code it drives; this module only collects them.
"""
from __future__ import annotations

import importlib

# module path -> attribute holding a click command
COMMANDS = [
    ("b24desk.sync", "sync_command"),
    ("b24desk.kpi.cli", "kpi_command"),
    ("b24desk.capacity.cli", "capacity_command"),
    ("reports.push", "push_command"),
    ("demo", "demo_command"),
]


def init_app(app) -> None:
    for module, attr in COMMANDS:
        app.cli.add_command(getattr(importlib.import_module(module), attr))
