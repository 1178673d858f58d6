"""What a partner's ISO 18626 implementation accepts and how it says things, as data.

Real peers speak dialects of the standard (see the design notes' lifecycle digest):
one vendor refuses the ``ExpectToSupply`` status, others give loan conditions only
in the ``note`` of a ``WillSupply`` (marked with a token at its start) instead of
``RetryPossible``.  A partner's configuration names its dialect; the connector asks
the dialect what to send and how to read what comes back.  We always *accept* every
form the schema allows, whatever the dialect.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    name: str
    # the partner accepts supplyingAgencyMessages with status ExpectToSupply
    expect_to_supply: bool = True
    # conditions travel in the note of a WillSupply starting with this token
    # (None: as RetryPossible with reasonRetry, the standard's way)
    condition_note_token: str | None = None
    # the requester agrees to conditions with a Notification whose note starts with this
    condition_accept_token: str | None = None

    def conditions_in_note(self, note: str | None) -> str | None:
        """The conditions a note carries in this dialect, or None."""
        token = self.condition_note_token
        if not token or not note or not note.lstrip().startswith(token):
            return None
        return note.lstrip()[len(token):].strip() or token


STANDARD = Dialect("standard")
DIALECTS: dict[str, Dialect] = {d.name: d for d in (
    STANDARD,
    Dialect("no-expect-to-supply", expect_to_supply=False),
    # the convention of ReShare-based peers
    Dialect("conditions-in-note", condition_note_token="#ReShareAddLoanCondition#",
            condition_accept_token="#ReShareLoanConditionAgreeResponse#"),
)}


def dialect(name: str | None) -> Dialect:
    """The dialect of that name (``standard`` when None); KeyError for an unknown one."""
    return DIALECTS[name or "standard"]
