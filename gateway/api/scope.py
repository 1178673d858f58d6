"""Staff act within their own library system: the one check every staff route goes
through (:func:`check`), driven by the route's :class:`~.session.Owned` inputs.

Each input that names something is resolved to the system it belongs to, and compared
with the staff member's (``Principal.library``):

========  =====================================  ==================================
kind      resolved through                       another system's
========  =====================================  ==================================
branch    the profiles (an unknown branch: 404)  403 ``branch_not_yours``
item      the copy's serving system (a partner   403 ``item_not_yours``
          university's copy: its city)
patron    the patron's card                      404 ``not_found`` (as if none)
request   the request's serving system           404 ``not_found`` (as if none)
library   the code itself                        403 ``library_not_yours``
========  =====================================  ==================================

Patrons and requests are personal data: another system's are answered like ones that
do not exist, so their existence is not told. Branches and copies are public (the
barcode is on the book), so the refusal names whose they are. Something that does not
exist passes the check and gets the handler's own answer (404 or a refusal).
Jobs act on every system at once: they need the network-wide role (see staff.py).
"""
from __future__ import annotations

from circulation import queries
from circulation.store import NotFound

from .errors import ApiError
from .session import Ctx, Owned

KINDS = ("branch", "item", "patron", "request", "library")


async def system_of(ctx: Ctx, kind: str, value) -> str | None:
    """The library system ``value`` (of ``kind``) belongs to; None when it does not exist."""
    circ = ctx.circ
    if kind == "branch":
        return queries.branch_system(circ, value)          # NotFound: 404
    if kind == "item":
        return await queries.item_system(circ, value)
    if kind == "patron":
        return await queries.patron_system(circ, value)
    if kind == "request":
        return await queries.request_system(circ, value)
    if kind == "library":
        return value
    raise ValueError(f"unknown kind {kind!r}")


async def check(ctx: Ctx, owns: tuple[Owned, ...]) -> None:
    """Refuse the request when one of its ``owns`` inputs names another system's thing."""
    mine = ctx.principal.library
    for o in owns:
        value = ctx.value(o.name)
        if value is None:
            continue                                  # the default is the staff member's own
        system = await system_of(ctx, o.kind, value)
        if system is None or system == mine:
            continue
        if o.kind in ("patron", "request"):
            raise NotFound(f"{o.kind} {value} of {system}")
        code = {"branch": "branch_not_yours", "item": "item_not_yours", "library": "library_not_yours"}[o.kind]
        details = {o.name: value, "library": system} if o.kind != "library" else {"library": value}
        raise ApiError(403, code, details=details)
