"""Methods the embedded reports need to verify a launch's viewer, beside the double's user methods.

``user.admin`` (DOCS api-reference/common/users/user-admin.md): scope ``basic``, any user may call
it, no parameters, ``result`` is ``true`` for a portal administrator. The double's administrators
are ``portal.admins`` when a test sets it, else user 1 (the same rule as its ``profile`` method).
Importing this module registers the method (``portal_double.server`` imports it).
"""

from __future__ import annotations

from .registry import Call, method


def admins(portal) -> set:
    found = getattr(portal, "admins", None)
    return {int(x) for x in found} if found else {1}


@method("user.admin", "basic")
def user_admin(c: Call, params: dict):
    return int(c.user_id) in admins(c.portal)
