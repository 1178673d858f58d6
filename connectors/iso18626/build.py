"""Building the messages the gateway sends and the confirmations it answers with.

Pure functions of their arguments; the caller passes the clock (``now``, an
aware datetime) and the agencies.
"""
from __future__ import annotations

from datetime import datetime

from . import model as m
from .model import AgencyId, ErrorType, MessageStatus, ProtocolError


def header(*, requesting: AgencyId, supplying: AgencyId, request_id: str, now: datetime,
           supplying_request_id: str | None = None,
           authentication: m.Authentication | None = None) -> m.Header:
    return m.Header(supplying_agency_id=supplying, requesting_agency_id=requesting, timestamp=now,
                    requesting_agency_request_id=request_id,
                    supplying_agency_request_id=supplying_request_id,
                    requesting_agency_authentication=authentication)


def supplying_message(h: m.Header, reason: m.ReasonForMessage, status: m.Status, *, now: datetime,
                      answer: bool | None = None, note: str | None = None,
                      reason_unfilled: str | None = None, reason_retry: str | None = None,
                      offered_costs: m.Costs | None = None, retry_after: datetime | None = None,
                      retry_before: datetime | None = None,
                      due_date: datetime | None = None, expected_delivery: datetime | None = None,
                      delivery: m.DeliveryInfo | None = None,
                      return_info: m.ReturnInfo | None = None) -> m.SupplyingAgencyMessage:
    info = m.MessageInfo(
        reason_for_message=reason,
        answer_yes_no=None if answer is None else (m.YesNo.Y if answer else m.YesNo.N),
        note=note,
        reason_unfilled=m.SchemeValue(reason_unfilled) if reason_unfilled else None,
        reason_retry=m.SchemeValue(reason_retry) if reason_retry else None,
        offered_costs=offered_costs, retry_after=retry_after, retry_before=retry_before)
    status_info = m.StatusInfo(status=status, last_change=now, due_date=due_date,
                               expected_delivery_date=expected_delivery)
    return m.SupplyingAgencyMessage(header=h, message_info=info, status_info=status_info,
                                    delivery_info=delivery, return_info=return_info)


def requesting_message(h: m.Header, action: m.Action, note: str | None = None) -> m.RequestingAgencyMessage:
    return m.RequestingAgencyMessage(header=h, action=action, note=note)


def _confirmation(kind: type, *, now: datetime, received: datetime, ids: dict,
                  error: m.ErrorData | None, echo=None) -> m.Confirmation:
    status = MessageStatus.OK if error is None else MessageStatus.ERROR
    ch = m.ConfirmationHeader(
        supplying_agency_id=ids.get("supplyingAgencyId"),
        requesting_agency_id=ids.get("requestingAgencyId"),
        timestamp=now,
        requesting_agency_request_id=ids.get("requestingAgencyRequestId") or None,
        multiple_item_request_id=ids.get("multipleItemRequestId") or None,
        timestamp_received=received, message_status=status)
    conf = m.CONFIRMATION_FOR.get(kind, m.RequestConfirmation)
    if conf is m.SupplyingAgencyMessageConfirmation:
        return conf(confirmation_header=ch, reason_for_message=echo, error_data=error)
    if conf is m.RequestingAgencyMessageConfirmation:
        return conf(confirmation_header=ch, action=echo, error_data=error)
    return conf(confirmation_header=ch, error_data=error)


def _ids(h: m.Header) -> dict:
    return {"supplyingAgencyId": h.supplying_agency_id, "requestingAgencyId": h.requesting_agency_id,
            "requestingAgencyRequestId": h.requesting_agency_request_id,
            "multipleItemRequestId": h.multiple_item_request_id}


def _echo(message):
    if isinstance(message, m.SupplyingAgencyMessage):
        return message.message_info.reason_for_message
    if isinstance(message, m.RequestingAgencyMessage):
        return message.action
    return None


def confirm(message: m.Request | m.SupplyingAgencyMessage | m.RequestingAgencyMessage, *,
            now: datetime, error: tuple[ErrorType, str] | None = None) -> m.Confirmation:
    """The confirmation of a message we accepted (``error`` None) or refused for what
    it says (e.g. an unknown agency, a status not expected now).  ``timestampReceived``
    echoes the confirmed message's own timestamp, which identifies it."""
    data = None if error is None else m.ErrorData(error[0], error[1][:500])
    return _confirmation(type(message), now=now, received=message.header.timestamp,
                         ids=_ids(message.header), error=data, echo=_echo(message))


def confirm_protocol_error(err: ProtocolError, *, now: datetime) -> m.Confirmation:
    """The ERROR confirmation of a message that could not be read.  A body whose kind
    is unknown (not XML, wrong root) gets a requestConfirmation; otherwise the
    kind's own confirmation, echoing whatever ids the header held."""
    received = now
    raw = err.header.get("timestamp")
    if raw:
        try:
            received = datetime.fromisoformat(raw)
        except ValueError:
            pass
    return _confirmation(err.kind or m.Request, now=now, received=received, ids=err.header,
                         error=m.ErrorData(err.error_type, err.value[:500]))
