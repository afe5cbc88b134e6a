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


def _request(path, token=None, query=b""):
    headers = [(b"authorization", bearer(token).encode())] if token else []
    return {"type": "http", "path": path, "headers": headers, "query_string": query}


async def _call(middleware, scope, receive=None):
    """What the middleware answered: (status, JSON body)."""
    sent = []

    async def send(message):
        sent.append(message)

    await middleware(scope, receive, send)
    return sent[0]["status"], json.loads(sent[1]["body"])


def _changes_guard(tmp_path, written):
    async def app(scope, receive, send):
        written.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    return guard.Guard(app, verify, guard.Revocations(str(tmp_path / "revoked.json")))


def test_a_waiting_client_learns_of_a_write_at_once(tmp_path):
    token = make_token(SECRET, "ds@openmined.org")
    written = []
    middleware = _changes_guard(tmp_path, written)

    async def scenario():
        status, first = await _call(middleware, _request("/sync/changes", token, b"since=&wait=20"))
        assert status == 200
        since = first["changes"]
        waiting = asyncio.ensure_future(
            _call(middleware, _request("/sync/changes", token, f"since={since}&wait=20".encode())))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # nothing written yet: the request is held
        started = time.monotonic()
        await _call(middleware, _request("/sync/create", make_token(SECRET, "do1@openmined.org")))
        status, second = await asyncio.wait_for(waiting, 5)
        return status, since, second["changes"], time.monotonic() - started

    status, since, after, took = asyncio.run(scenario())
    assert written == ["/sync/create"] and status == 200
    assert after != since and took < 1.0


@pytest.mark.parametrize("path", ["/sync/create", "/sync/apply_diff", "/sync/delete"])
def test_every_kind_of_write_moves_the_token_and_a_read_does_not(tmp_path, path):
    token = make_token(SECRET, "ds@openmined.org")
    middleware = _changes_guard(tmp_path, [])

    async def scenario():
        before = (await _call(middleware, _request("/sync/changes", token)))[1]["changes"]
        await _call(middleware, _request("/sync/datasite_states", token))
        unchanged = (await _call(middleware, _request("/sync/changes", token)))[1]["changes"]
        await _call(middleware, _request(path, token))
        after = (await _call(middleware, _request("/sync/changes", token)))[1]["changes"]
        return before, unchanged, after

    before, unchanged, after = asyncio.run(scenario())
    assert before == unchanged != after


def test_with_nothing_written_the_wait_ends_with_the_same_token(tmp_path):
    token = make_token(SECRET, "ds@openmined.org")
    middleware = _changes_guard(tmp_path, [])

    async def scenario():
        since = (await _call(middleware, _request("/sync/changes", token)))[1]["changes"]
        started = time.monotonic()
        _, body = await _call(middleware, _request("/sync/changes", token, f"since={since}&wait=0.3".encode()))
        return since, body["changes"], time.monotonic() - started

    since, after, took = asyncio.run(scenario())
    assert after == since and 0.25 < took < 2


@pytest.mark.parametrize("query", [b"since=x&wait=nan", b"since=x&wait=abc", b"since=x&wait=-5", b""])
def test_a_bad_wait_is_no_wait(tmp_path, query):
    token = make_token(SECRET, "ds@openmined.org")
    middleware = _changes_guard(tmp_path, [])
    changes = middleware.changes
    started = time.monotonic()
    mine = changes.token("ds@openmined.org")
    status, body = asyncio.run(_call(middleware, _request("/sync/changes", token, query.replace(b"x", mine.encode()))))
    assert status == 200 and body["changes"] == mine and time.monotonic() - started < 1


def test_changes_need_a_token_and_a_restarted_server_hands_out_a_new_one(tmp_path):
    middleware = _changes_guard(tmp_path, [])
    assert asyncio.run(_call(middleware, _request("/sync/changes")))[0] == 401
    assert guard.Changes().token(A) != guard.Changes().token(A)  # a client's old token always differs


# ---------------------------------------------------------------- who learns of a write

A, B, DS = "do1@openmined.org", "do2@openmined.org", "ds@openmined.org"


def _write(path, writer, body=b""):
    scope = _request(path, make_token(SECRET, writer))
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def app(scope, receive, send):
        await receive()  # the legacy server reads the body through the guard
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    return scope, receive, sent, app


def _guard_reading(rule):
    """A guard whose readers are those `rule(email, path)` allows, and a way to write through it."""
    seen = []

    def readers_of(path, parties):
        seen.append((path, sorted(parties)))
        return [e for e in parties if rule(e, path)]

    middleware = guard.Guard(None, verify, guard.Revocations("/nowhere"), readers_of)

    async def write(path, writer, body):
        scope, receive, sent, app = _write(path, writer, body)
        middleware.app = app

        async def send(message):
            sent.append(message)

        await middleware(scope, receive, send)

    async def token(email):
        return (await _call(middleware, _request("/sync/changes", make_token(SECRET, email))))[1]["changes"]

    return middleware, write, token, seen


def multipart(path):
    return (b'--b\r\nContent-Disposition: form-data; name="file"; filename="' + path.encode()
            + b'"\r\nContent-Type: application/octet-stream\r\n\r\ndata\r\n--b--\r\n')


def test_a_write_moves_the_tokens_of_those_who_may_read_it_only():
    """A request the DS writes into do1's datasite concerns do1 (and not do2, nor the DS's own
    client, which wrote it); do1's reply concerns the DS."""
    def rule(email, path):
        return path.startswith(email) or (email == DS and "/rpc/" in path)

    middleware, write, token, seen = _guard_reading(rule)

    async def scenario():
        before = {e: await token(e) for e in (A, B, DS)}
        await write("/sync/create", DS, multipart(f"{A}/app_data/flwr/rpc/messages/{DS}/1.request"))
        after_request = {e: await token(e) for e in (A, B, DS)}
        await write("/sync/apply_diff", A, json.dumps({"path": f"{A}/app_data/flwr/rpc/messages/{DS}/1.response",
                                                       "diff": "x", "expected_hash": "y"}).encode())
        after_reply = {e: await token(e) for e in (A, B, DS)}
        return before, after_request, after_reply

    before, after_request, after_reply = asyncio.run(scenario())
    assert after_request[A] != before[A] and after_request[B] == before[B] and after_request[DS] == before[DS]
    assert after_reply[DS] != after_request[DS] and after_reply[A] == after_request[A]
    assert after_reply[B] == before[B]
    assert seen[0] == (f"{A}/app_data/flwr/rpc/messages/{DS}/1.request", sorted([A, B]))  # not the writer


def test_a_waiting_client_a_write_does_not_concern_stays_waiting():
    middleware, write, token, _ = _guard_reading(lambda email, path: path.startswith(email))

    async def scenario():
        since = await token(B)
        waiting = asyncio.ensure_future(
            _call(middleware, _request("/sync/changes", make_token(SECRET, B), f"since={since}&wait=20".encode())))
        await asyncio.sleep(0.1)
        await write("/sync/delete", DS, json.dumps({"path": f"{A}/public/x.csv"}).encode())
        await asyncio.sleep(0.3)
        held = not waiting.done()
        await write("/sync/delete", DS, json.dumps({"path": f"{B}/public/x.csv"}).encode())
        status, body = await asyncio.wait_for(waiting, 5)
        return held, since, body["changes"]

    held, since, after = asyncio.run(scenario())
    assert held and after != since


@pytest.mark.parametrize("body", [
    json.dumps({"path": "do1@openmined.org/public/syftperm.yaml"}).encode(),  # what anyone may read changes
    json.dumps({"path": "do1@openmined.org/public/more.syftperm.yaml"}).encode(),  # the server's test: endswith
    b"not a body that names a path",
    json.dumps({"path": "do1@openmined.org/public/x.csv"}).encode(),  # the rule fails below
])
def test_everyone_learns_of_a_write_when_who_may_read_it_is_not_known(body):
    def rule(email, path):
        if path.endswith("x.csv"):
            raise OSError("the permission store is locked")
        return False

    _, write, token, _ = _guard_reading(rule)

    async def scenario():
        before = {e: await token(e) for e in (A, B, DS)}
        await write("/sync/delete", A, body)
        return before, {e: await token(e) for e in (A, B, DS)}

    before, after = asyncio.run(scenario())
    assert all(after[e] != before[e] for e in (A, B, DS))


def test_the_path_a_write_names_is_read_from_its_body():
    assert guard.written_path(multipart("do1@openmined.org/a b/c.csv")) == "do1@openmined.org/a b/c.csv"
    assert guard.written_path(b'{"path": "do1@openmined.org/x\\"y.json", "diff": ""}') == 'do1@openmined.org/x"y.json'
    assert guard.written_path(b'{"diff": "", "path":"/do1@openmined.org/z"}') == "do1@openmined.org/z"
    assert guard.written_path(b"") is None and guard.written_path(b'{"path": ""}') is None
    assert guard.written_path(b'{"path": "bad\\x escape"}') is None


def test_a_party_is_known_by_its_email_as_the_legacy_server_compares_it():
    """The server's rules compare emails as they are (an owner reads its own datasite): a party
    whose kit says Do2@OpenMined.org learns of a write into its datasite."""
    upper = "Do2@OpenMined.org"
    _, write, token, _ = _guard_reading(lambda email, path: path.startswith(email + "/"))

    async def scenario():
        before = await token(upper)
        await write("/sync/delete", DS, json.dumps({"path": f"{upper}/app_data/flwr/x.request"}).encode())
        return before, await token(upper)

    before, after = asyncio.run(scenario())
    assert after != before


# ---------------------------------------------------------------- what a party's client syncs

# An owner's rules as federation writes them (common/syftbox.py): its own datasite and the
# others' public keys; the rest of every datasite ignored.
OWNER_RULES = "/*/**\n!/{me}/**\n!/*/public/did.json\n/{me}/private/\n"


def _post_changes(token, body, query=b""):
    """A POST /sync/changes with `body`: (scope, receive) for the middleware."""
    scope = _request("/sync/changes", token, query) | {"method": "POST"}
    chunks = [body[:5], body[5:]]  # in two parts, as a client may send it

    async def receive():
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    return scope, receive


def _guard_syncing(rule=lambda email, path: True, stored=()):
    """A guard whose readers are those `rule` allows, whose store holds `stored`; and helpers to
    send a party's ignore rules, write through it and read a token."""
    middleware, write, token, seen = _guard_reading(rule)
    asked = []

    def files_under(folder):
        asked.append(folder)
        return [f for f in stored if f.startswith(folder + "/")]

    middleware.files_under = files_under

    async def send_rules(email, rules):
        return await _call(middleware, *_post_changes(make_token(SECRET, email), json.dumps({"ignore": rules}).encode()))

    return middleware, send_rules, write, token, asked


def test_a_write_a_party_ignores_leaves_its_token_alone():
    """do2's client syncs its own datasite and the others' public keys: the DS's request to do1
    and do1's job record (both readable by do2, a guest too) do not wake it; do1's key does."""
    _, send_rules, write, token, _ = _guard_syncing()

    async def scenario():
        assert (await send_rules(B, OWNER_RULES.format(me=B)))[0] == 200
        before = {e: await token(e) for e in (A, B, DS)}
        await write("/sync/create", DS, multipart(f"{A}/app_data/RDS/rpc/job/create/{DS}/1.request"))
        await write("/sync/apply_diff", A, json.dumps({"path": f"{A}/app_data/RDS/store/job/1.yaml"}).encode())
        ignored = {e: await token(e) for e in (A, B, DS)}
        await write("/sync/create", A, multipart(f"{A}/public/did.json"))
        key = await token(B)
        await write("/sync/create", DS, multipart(f"{B}/app_data/RDS/rpc/job/create/{DS}/2.request"))
        return before, ignored, key, await token(B)

    before, ignored, key, own = asyncio.run(scenario())
    assert ignored[B] == before[B]  # nothing it syncs
    assert ignored[A] != before[A] and ignored[DS] != before[DS]  # no rules sent: told as before
    assert key != ignored[B] and own != key  # another's public key; a request into its datasite


def test_a_party_s_rules_are_the_last_it_sent():
    _, send_rules, write, token, _ = _guard_syncing()

    async def scenario():
        await send_rules(B, OWNER_RULES.format(me=B))
        before = await token(B)
        await write("/sync/delete", DS, json.dumps({"path": f"{A}/public/x.csv"}).encode())
        narrow = await token(B)
        await send_rules(B, "# nothing ignored\n")
        await write("/sync/delete", DS, json.dumps({"path": f"{A}/public/y.csv"}).encode())
        return before, narrow, await token(B)

    before, narrow, wide = asyncio.run(scenario())
    assert narrow == before and wide != narrow


def test_a_permission_file_concerns_those_who_sync_a_file_under_its_folder():
    """do1's RDS permission file can change who reads do1's RDS files only: the DS (which syncs
    them) learns of it, do2 (which ignores them) does not; do1's root permission file covers
    do1's public key, which do2 syncs."""
    stored = [f"{A}/app_data/RDS/store/job/1.yaml", f"{A}/public/did.json", f"{B}/app_data/RDS/app.yaml"]
    _, send_rules, write, token, asked = _guard_syncing(stored=stored)

    async def scenario():
        await send_rules(B, OWNER_RULES.format(me=B))
        before = {e: await token(e) for e in (B, DS)}
        await write("/sync/create", A, multipart(f"{A}/app_data/RDS/syftperm.yaml"))
        rds = {e: await token(e) for e in (B, DS)}
        await write("/sync/apply_diff", A, json.dumps({"path": f"{A}/syftperm.yaml"}).encode())
        return before, rds, {e: await token(e) for e in (B, DS)}

    before, rds, root = asyncio.run(scenario())
    assert rds[B] == before[B] and rds[DS] != before[DS]
    assert root[B] != rds[B] and root[DS] != rds[DS]
    assert asked == [f"{A}/app_data/RDS", A]


def test_everyone_learns_of_a_permission_file_when_the_store_cannot_say():
    middleware, send_rules, write, token, _ = _guard_syncing()

    def broken(folder):
        raise OSError("database is locked")

    middleware.files_under = broken

    async def scenario():
        await send_rules(B, OWNER_RULES.format(me=B))
        before = await token(B)
        await write("/sync/create", A, multipart(f"{A}/app_data/RDS/syftperm.yaml"))
        return before, await token(B)

    before, after = asyncio.run(scenario())
    assert after != before


@pytest.mark.parametrize("body", [b"{not json", b'{"ignore": 3}', b"[]", json.dumps({"ignore": "x" * 70_000}).encode(),
                                  b"[" * 50_000])
def test_rules_it_cannot_take_are_refused_and_the_party_is_told_of_everything(body):
    middleware, send_rules, write, token, _ = _guard_syncing()

    async def scenario():
        await send_rules(B, OWNER_RULES.format(me=B))
        status, answer = await _call(middleware, *_post_changes(make_token(SECRET, B), body))
        before = await token(B)
        await write("/sync/delete", DS, json.dumps({"path": f"{A}/public/x.csv"}).encode())
        return status, answer["detail"], before, await token(B)

    status, detail, before, after = asyncio.run(scenario())
    assert status == 400 and "ignore rules not taken" in detail
    assert after != before  # the rules it sent before no longer narrow what it is told
