"""federation.sync_server.guard: what the sync server answers, and to whom."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from federation.common.kit import make_token, verify_token
from federation.sync_server import guard

SECRET = "s3cret"


def verify(token):
    return verify_token(SECRET, token)


def bearer(token):
    return f"Bearer {token}"


@pytest.mark.parametrize("path", ["/auth/request_email_token", "/auth/validate_email_token"])
def test_no_endpoint_trades_an_email_for_a_token(path):
    good = bearer(make_token(SECRET, "ds@openmined.org"))
    for authorization in ("", good):
        status, detail = guard.decide(path, authorization, verify, {})
        assert status == 403 and "operator" in detail


@pytest.mark.parametrize("path", ["/", "/info"])
def test_only_the_banner_and_info_answer_without_a_token(path):
    assert guard.decide(path, "", verify, {}) is None


@pytest.mark.parametrize("path", ["/sync/datasite_states", "/sync/create", "/auth/whoami", "/register"])
def test_sync_needs_a_good_token(path):
    assert guard.decide(path, bearer(make_token(SECRET, "ds@openmined.org")), verify, {}) is None
    assert guard.decide(path, "", verify, {})[0] == 401
    assert guard.decide(path, "Basic abc", verify, {})[0] == 401
    assert guard.decide(path, bearer(make_token("changethis", "ds@openmined.org")), verify, {})[0] == 401
    expired = make_token(SECRET, "ds@openmined.org", expires_in=1, now=time.time() - 10)
    assert guard.decide(path, bearer(expired), verify, {})[0] == 401


@pytest.mark.parametrize("path", ["/datasites", "/datasites/ds@openmined.org/../app_data/x", "/emails/",
                                  "/install.sh", "/docs"])
def test_the_rest_is_not_served_even_with_a_token(path):
    assert guard.decide(path, bearer(make_token(SECRET, "ds@openmined.org")), verify, {})[0] == 404


def test_an_email_token_is_no_access_token():
    import base64

    token = make_token(SECRET, "ds@openmined.org")
    head, body, _ = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    assert claims["type"] == "access_token"
    assert guard.decide("/sync/create", bearer(token), lambda t: claims | {"type": "email_token"}, {})[0] == 401


def test_a_replaced_kit_is_refused():
    now = time.time()
    old = make_token(SECRET, "do1@openmined.org", now=now - 100)
    new = make_token(SECRET, "do1@openmined.org", now=now + 1)
    revoked = {"do1@openmined.org": now}
    assert guard.decide("/sync/create", bearer(old), verify, revoked)[0] == 401
    assert guard.decide("/sync/create", bearer(new), verify, revoked) is None
    assert guard.decide("/sync/create", bearer(make_token(SECRET, "ds@openmined.org", now=now - 100)),
                        verify, revoked) is None


def test_the_middleware_answers_refusals_itself(tmp_path):
    reached = []

    async def app(scope, receive, send):
        reached.append(scope["path"])

    sent = []

    async def send(message):
        sent.append(message)

    middleware = guard.Guard(app, verify, guard.Revocations(str(tmp_path / "revoked.json")))
    scope = {"type": "http", "path": "/auth/request_email_token", "headers": []}
    asyncio.run(middleware(scope, None, send))
    assert reached == [] and sent[0]["status"] == 403
    scope = {"type": "http", "path": "/info", "headers": []}
    asyncio.run(middleware(scope, None, send))
    assert reached == ["/info"]


def test_revocations_are_read_again_when_the_file_changes(tmp_path):
    path = tmp_path / "revoked.json"
    revocations = guard.Revocations(str(path))
    assert revocations.get() == {}
    path.write_text(json.dumps({"DO1@openmined.org": 5}))
    assert revocations.get() == {"do1@openmined.org": 5.0}
    path.write_text("{half")
    assert revocations.get() == {"do1@openmined.org": 5.0}
