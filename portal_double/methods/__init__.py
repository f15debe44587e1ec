"""Importing this package registers every method handler in ``registry.METHODS``.

Besides the core modules here, the package-level modules claimed by other helpers register theirs
(see STATUS.md): push_methods, viewer_methods, openlines (imported by server.py) and app_context
(imported by PortalDouble).
"""

from . import common, crm, im, lists, tasks  # noqa: F401
