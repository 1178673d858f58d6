"""Sending ISO 18626 messages to a partner over HTTP (the thin I/O shell around
:mod:`connectors.iso18626`).

    sender = Sender(session)
    confirmation = await sender.send(partner, message)     # raises SendFailed

One POST of the XML document to the partner's URL, ``Authorization: Bearer`` with
the partner's token when it has one.  Lost calls are retried with exponential
backoff (tenacity): connection errors, timeouts, HTTP 408/425/429/5xx.  Every message
carries its own ids, and the receiving side treats a repeat as a no-op, so a retry
after a lost *answer* does no harm.  What comes back must be the confirmation of
that message (the right kind, the same ``requestingAgencyRequestId``); anything else
is :class:`SendFailed` with ``transient`` False (a partner that speaks something else).
An ERROR confirmation is *returned*: the message arrived and was refused, which the
caller records.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from connectors import iso18626 as I
from connectors.iso18626 import model as m
from connectors.iso18626.config import Partner

CONTENT_TYPE = "application/xml; charset=utf-8"
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_RESPONSE = 1 << 20


class SendFailed(Exception):
    """The message could not be delivered (``transient``: later may work)."""

    def __init__(self, message: str, *, transient: bool, attempts: int = 1):
        super().__init__(message)
        self.transient, self.attempts = transient, attempts


class _Retry(Exception):
    """A failure worth another attempt (internal)."""


class Sender:
    """Sends messages with retries; ``sleep`` and the waits are injectable for tests."""

    def __init__(self, session: aiohttp.ClientSession, *, attempts: int = 4, timeout: float = 15.0,
                 wait_min: float = 0.5, wait_max: float = 8.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.session, self.attempts, self.timeout = session, attempts, timeout
        self.wait_min, self.wait_max, self.sleep = wait_min, wait_max, sleep

    async def send(self, partner: Partner, message: m.Request | m.SupplyingAgencyMessage
                   | m.RequestingAgencyMessage) -> m.Confirmation:
        body = I.encode(message)
        headers = {"Content-Type": CONTENT_TYPE, "Accept": "application/xml"}
        if partner.token:
            headers["Authorization"] = f"Bearer {partner.token}"
        attempts = 0
        last = ""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.wait_min, max=self.wait_max),
            retry=retry_if_exception(lambda e: isinstance(e, _Retry)), sleep=self.sleep, reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    try:
                        data = await self._post(partner.url, body, headers)
                    except _Retry as e:
                        last = str(e)
                        raise
        except _Retry:
            raise SendFailed(f"{partner.name}: not delivered after {attempts} attempts ({last})",
                             transient=True, attempts=attempts) from None
        return self._confirmation(partner, message, data, attempts)

    async def _post(self, url: str, body: bytes, headers: dict) -> bytes:
        try:
            async with self.session.post(url, data=body, headers=headers,
                                         timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                data = await resp.content.read(MAX_RESPONSE + 1)
                if resp.status in RETRY_STATUS:
                    raise _Retry(f"HTTP {resp.status}")
                if len(data) > MAX_RESPONSE:
                    raise SendFailed(f"{url}: answer over {MAX_RESPONSE} bytes", transient=False)
                if resp.status >= 400 and not data.strip():
                    raise SendFailed(f"{url}: HTTP {resp.status}", transient=False)
                return data
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError) as e:
            raise _Retry(f"{type(e).__name__}: {e}"[:200]) from None
        except aiohttp.InvalidURL as e:  # pragma: no cover - the configuration checks URLs
            raise SendFailed(f"{url}: {e}", transient=False) from None

    @staticmethod
    def _confirmation(partner: Partner, message, data: bytes, attempts: int) -> m.Confirmation:
        try:
            conf = I.decode(data)
        except m.ProtocolError as e:
            raise SendFailed(f"{partner.name}: the answer is not ISO 18626 ({e.value})",
                             transient=False, attempts=attempts) from None
        expected = m.CONFIRMATION_FOR[type(message)]
        if not isinstance(conf, (m.RequestConfirmation, m.SupplyingAgencyMessageConfirmation,
                                 m.RequestingAgencyMessageConfirmation)) or not isinstance(conf, expected):
            raise SendFailed(f"{partner.name}: answered {type(conf).__name__}, not {expected.__name__}",
                             transient=False, attempts=attempts)
        rid = conf.confirmation_header.requesting_agency_request_id
        if rid is not None and rid != message.header.requesting_agency_request_id:
            raise SendFailed(f"{partner.name}: the confirmation names request {rid!r}",
                             transient=False, attempts=attempts)
        return conf
