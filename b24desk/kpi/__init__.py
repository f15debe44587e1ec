"""The KPI engine (kpi.md): metrics computed from the store, separate from any view.

``build_report(db, portal, date_from, date_to, filters=..., group_by=...)`` gives section 6's JSON;
``render(report, fmt)`` turns it into json / csv / xlsx / table. See README.md beside this file for
the choices made where the spec is silent.
"""

from .report import SCHEMA, ReportEnv, build_report

__all__ = ["SCHEMA", "ReportEnv", "build_report"]
