"""The ILL node behind ``POST /iso18626``: one admitted message in, its confirmation out.

The message is handled in one unit of work with its log row, so a message is either
fully taken (its effects, the messages it causes in the outbox, its log row) or not at
all.  A body received before (the same bytes: a partner's client that did not get our
answer and sent again) gets the confirmation it got then and changes nothing.  A
message the tables refuse in the leg's state is confirmed with ERROR and logged.  When
the database cannot be reached the endpoint answers 503 (:class:`Unavailable`), so the
partner tries again later.
"""
from __future__ import annotations

from datetime import datetime

from connectors import iso18626 as I
from connectors.iso18626 import model as m
from connectors.iso18626.config import IllConfig, Partner
from lifecycle import table as lt
from lifecycle.ill import IllegalLegTransition

from ..availability import Unavailable, unavailable
from . import requester, supplier
from .common import Ill, confirm_incoming, log_incoming, replayed


class IllNode:
    def __init__(self, ill: Ill):
        self.ill = ill

    @property
    def config(self) -> IllConfig:
        return self.ill.config

    def now(self) -> datetime:
        return self.ill.now()

    async def receive(self, message, partner: Partner, body: bytes) -> m.Confirmation:
        ill = self.ill

        async def work(conn):
            before = await replayed(conn, partner, body)
            if before is not None:
                return I.decode(before.encode())
            log_id = await log_incoming(ill, conn, partner, message, body)
            if isinstance(message, m.Request):
                error, sid = await supplier.receive_request(ill, conn, message, partner)
                ids = {"supply_id": sid}
            elif isinstance(message, m.RequestingAgencyMessage):
                error, sid = await supplier.receive_action(ill, conn, message, partner)
                ids = {"supply_id": sid}
            else:
                error, leg_id = await requester.receive_supplying(ill, conn, message, partner)
                ids = {"leg_id": leg_id}
            conf = I.confirm(message, now=ill.now(), error=error)
            await confirm_incoming(conn, log_id, conf, **ids)
            return conf

        try:
            try:
                conf = await ill.circ.db.run(work)
            except (lt.IllegalTransition, IllegalLegTransition) as e:
                conf = I.confirm(message, now=ill.now(), error=(m.ErrorType.UNRECOGNISED_DATA_VALUE, str(e)))

                async def log(conn):
                    await confirm_incoming(conn, await log_incoming(ill, conn, partner, message, body), conf)

                await ill.circ.db.run(log)
        except Exception as e:
            if unavailable(e):
                raise Unavailable.of(e) from None
            raise
        if conf.confirmation_header.message_status is m.MessageStatus.OK:
            ill.changed()
        return conf
