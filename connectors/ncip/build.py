"""Building the responses the gateway answers with.  Pure functions of their arguments."""
from __future__ import annotations

from . import model as m
from .model import ProtocolError, SchemeValue

MAX_TEXT = 500     # Problem details and values are cut to this length


def response_header(header: m.InitiationHeader | None, us: SchemeValue) -> m.ResponseHeader | None:
    """The ResponseHeader answering ``header`` (from us to the agency that asked), or
    None when the message had no InitiationHeader (both are optional in NCIP)."""
    if header is None:
        return None
    return m.ResponseHeader(from_agency_id=m.FromAgencyId(us),
                            to_agency_id=m.ToAgencyId(header.from_agency_id.agency_id))


def problem(problem_type: SchemeValue, detail: str = "", *, element: str | None = None,
            value: str | None = None) -> m.Problem:
    return m.Problem(problem_type=problem_type, problem_detail=detail[:MAX_TEXT] or None,
                     problem_element=element, problem_value=None if value is None else value[:MAX_TEXT])


def problem_response(service: str | None, problems: tuple[m.Problem, ...],
                     header: m.ResponseHeader | None = None) -> m.Response:
    """The response of ``service`` carrying ``problems``: its own response type when it
    is one of ours, a :class:`~.model.ProblemResponse` otherwise (``service`` None: the
    Problems stand directly under NCIPMessage)."""
    message_type = m.MESSAGE_TYPES.get(service or "")
    cls = m.RESPONSE_FOR.get(message_type) if message_type is not None else None
    if cls is not None:
        return cls(response_header=header, problem=problems)
    return m.ProblemResponse(problems, service if service in m.SERVICES else None, header)


def refusal(err: ProtocolError, header: m.ResponseHeader | None = None) -> m.Response:
    """The response to a message refused with ``err``."""
    p = problem(err.problem_type, err.detail, element=err.element, value=err.value)
    return problem_response(err.service, (p,), header)
