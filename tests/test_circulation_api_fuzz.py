"""Property-based fuzzing of every operation of the OpenAPI document with schemathesis:
data the document accepts and data it does not (its negative mode), as a logged-in
patron or staff member where the operation needs one. Every answer must be no server
error (5xx), a status the document lists for the operation, in its content type and
schema; and the service must log no error or traceback meanwhile.

A bounded, derandomized run per operation is part of the normal suite (on SQLite and
PostgreSQL); ``-m slow`` runs many more examples with fresh random seeds."""
from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api_service import shared  # noqa: F401 - the module-scoped service fixture
from circ_helpers import add_patron
from circulation import auth
from gateway.api import API, ROUTES
from log_checks import no_errors_logged
from test_circulation_api import DOC

pytestmark = pytest.mark.usefixtures("cheap_hashing")

SCHEMA = schemathesis.openapi.from_dict(DOC)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = int(os.environ.get("UNIONCAT_FUZZ_EXAMPLES", "12"))          # per operation and mode


def _headers(shared, route, index: int) -> dict:
    """A session of its own for the operation (a patron of its own: fuzzing the password
    change or logout must not lock out or log out anybody else)."""
    if route.who in ("patron", "any"):
        card = f"29{index:08d}"
        shared.run(add_patron, card, "iizuka", email=f"fuzz{index}@example.jp", phone="0948-00-0000",
                   default_pickup_branch="iizuka")
        d = shared.run(auth.set_password, card=card, new_password="fuzz1234", role="staff", actor="test")
        assert d.allowed, d
        c = shared.client()
        c.login(card, "fuzz1234", bearer=True)
        return {"Authorization": f"Bearer {c.token}"}
    if route.who == "staff":
        return {"Authorization": f"Bearer {shared.staff().token}"}
    return {}


def _fuzz(shared, route, index: int, examples: int, derandomize: bool, caplog) -> None:
    op = SCHEMA[API + route.path][route.method]
    headers = _headers(shared, route, index)
    strategy = st.one_of(op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE))

    @settings(max_examples=examples, derandomize=derandomize, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(case=strategy)
    def run(case):
        response = case.call(base_url=shared.server.base, headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS)

    with no_errors_logged(caplog):
        run()


INDEXED = list(enumerate(ROUTES))


@pytest.mark.parametrize("index,route", INDEXED, ids=[f"{r.method} {r.path}" for r in ROUTES])
def test_every_operation_answers_fuzzed_input_without_a_server_error(shared, index, route, caplog):
    _fuzz(shared, route, index, EXAMPLES, True, caplog)


@pytest.mark.slow
@pytest.mark.parametrize("index,route", INDEXED, ids=[f"{r.method} {r.path}" for r in ROUTES])
def test_every_operation_under_a_long_random_fuzz(shared, index, route, caplog):
    _fuzz(shared, route, 100 + index, 500, False, caplog)
