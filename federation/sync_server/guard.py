"""The legacy SyftBox server (PyPI `syftbox` 0.4.0) behind a guard, served over TLS only.

Runs in the syftbox venv (`federation server` starts it there), so it imports nothing of this
project. The server's own authentication is on (`SYFTBOX_AUTH_ENABLED`, its JWT secret); the
guard in front of it adds what 0.4.0 lacks for a network whose operator hands out credentials:
- no endpoint trades an email for a token (`/auth/request_email_token` and
  `/auth/validate_email_token` answer 403: kits come from the operator);
- only `/` and `/info` answer without a token; `/sync/*`, `/auth/whoami`, `/register` and
  `/log_event` need a valid access token; everything else (the HTML datasite browser, whose
  path handling reaches outside `public/`, the email endpoints) is not served;
- tokens issued before an email's entry in `revoked.json` (a replaced kit) are refused;
- the file listing (`/sync/datasite_states`, `/sync/dir_state`) applies a `{useremail}` rule
  only to that user, as reading a file already does (`patch_listing`): 0.4.0's listing query
  applied such a rule written for every user (`user: "*"`) to everyone, so every party saw the
  names of every other party's RPC requests and code files (not their content).

And one addition: `GET /sync/changes?since=TOKEN&wait=SECONDS` (a token needed, like every
`/sync/` path) answers the party's change token as soon as it differs from `since`, or after
`wait` seconds (at most 30). A party's token changes after a write (`/sync/create`,
`/sync/apply_diff`, `/sync/delete`) of a file the legacy server lets it read, not its own
writes; every party's after a write whose path the guard cannot read. A client that holds this
request open learns of a new file at once instead of at its next poll (`syftbox_launcher.py`
does). It says only that something it may read changed, not what or where: what a party may
read is still only what `/sync/datasite_states` lists for it.

A client may send its ignore rules with that request (`POST`, `{"ignore": "<its _.syftignore>"}`;
rules the guard cannot take are answered 400 and the party is then told of everything):
then a write it would not sync anyway (its rules ignore the path) leaves its token alone, and a
permission file moves its token only when it syncs a file under that file's folder (the only
files whose reading the permission file can change). With 8 owners, each owner syncing its own
datasite and the others' public keys, 7 of every 8 wake-ups an owner got were for files it
ignores (every owner may read the others' public files and job records). A party that sends no
rules is told of every write it may read, and of every permission file.

    python guard.py --data-folder DIR --port 5001 --cert server.pem --key server.key
"""

import asyncio
import json
import os
import re
import sys
import uuid
from urllib.parse import parse_qs

# Run as a script, this file's folder would come first on sys.path and shadow packages.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

OPEN = ("/", "/info")
SYNC = "/sync/"  # every sync endpoint: a token
WITH_TOKEN = ("/auth/whoami", "/register", "/log_event")
NEVER = ("/auth/request_email_token", "/auth/validate_email_token")
CHANGES = "/sync/changes"
WRITES = ("/sync/create", "/sync/apply_diff", "/sync/delete")
LONGEST_WAIT = 30.0
LONGEST_RULES = 64 * 1024  # bytes of ignore rules a client may send with /sync/changes


def decide(path, authorization, verify, revoked):
    """None when the request may pass, else (status, detail). `verify(token)` returns the
    token's claims or raises; `revoked` maps an email to the time before which its tokens
    are refused."""
    if path in NEVER:
        return 403, "this network issues credentials through its operator: ask for a kit"
    if path in OPEN:
        return None
    if not (path.startswith(SYNC) or path in WITH_TOKEN):
        return 404, "not served on this network"
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return 401, "an access token is required"
    try:
        claims = verify(token.strip())
    except Exception as e:  # whatever the JWT library says: the token is not good
        return 401, f"invalid access token: {e}"
    if claims.get("type") != "access_token":
        return 401, "not an access token"
    email = str(claims.get("email", "")).lower()
    if float(claims.get("iat", 0)) < revoked.get(email, 0):
        return 401, "this kit was replaced: ask the operator for the new one"
    return None


LISTING_RULES = """        WHERE r.user = ? -- Direct user match
        OR r.user = '*' -- Wildcard match
        OR rf.match_for_email = ? -- Email pattern match"""
LISTING_RULES_FIXED = """        WHERE (r.user = ? OR r.user = '*')
        AND (rf.match_for_email IS NULL OR rf.match_for_email = ?)"""


def patch_listing(db):
    """Fix syftbox.server.db.db.get_read_permissions_for_user's rule filter (same parameters).
    Refuses to start the server when the pinned package's query is not the one expected."""
    import inspect

    function = db.get_read_permissions_for_user
    source = inspect.getsource(function)
    if LISTING_RULES not in source:
        raise RuntimeError("syftbox.server.db.db.get_read_permissions_for_user is not the 0.4.0 query "
                           "the guard patches: check the pinned syftbox version")
    namespace = {}
    exec(compile(source.replace(LISTING_RULES, LISTING_RULES_FIXED), inspect.getsourcefile(function), "exec"),
         db.__dict__, namespace)
    db.get_read_permissions_for_user = namespace[function.__name__]


class Revocations:
    """revoked.json, read again when it changes (an operator replaces a kit while the server runs)."""

    def __init__(self, path):
        self.path, self.mtime, self.value = path, None, {}

    def get(self):
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError:
            return {}
        if mtime != self.mtime:
            try:
                with open(self.path) as f:
                    self.value = {k.lower(): float(v) for k, v in json.load(f).items()}
            except (OSError, ValueError, AttributeError):
                pass  # a half-written file: keep the last good one
            self.mtime = mtime
        return self.value


class Changes:
    """A change token per party, that moves after every write the party may read; its waiters
    learn of it at once. Used from the server's event loop only. Tokens start with this
    process's own id, so a restarted server never hands out a token a client saw before."""

    def __init__(self):
        self.boot = uuid.uuid4().hex[:12]
        self.everyone = 0  # writes that concern every party (a permission file, a path not read)
        self.mine = {}  # email -> writes that concern it; the parties that ever asked
        self._changed = {}  # email -> an asyncio.Event made in the loop that waits on it

    def token(self, email):
        return f"{self.boot}-{self.everyone + self.mine.get(email, 0)}"

    @property
    def parties(self):
        return list(self.mine)

    def bump(self, emails=None):
        """A write that `emails` may read (None: every party)."""
        if emails is None:
            self.everyone += 1
            emails = list(self._changed)
        else:
            for email in emails:
                self.mine[email] = self.mine.get(email, 0) + 1
        for email in emails:
            event = self._changed.pop(email, None)
            if event is not None:
                event.set()

    async def wait(self, email, since, seconds):
        """`email`'s token once it differs from `since`, or after `seconds`."""
        self.mine.setdefault(email, 0)
        if since != self.token(email) or seconds <= 0:
            return self.token(email)
        changed = self._changed.setdefault(email, asyncio.Event())
        try:
            await asyncio.wait_for(changed.wait(), min(seconds, LONGEST_WAIT))
        except asyncio.TimeoutError:
            pass
        return self.token(email)


class Scopes:
    """What each party's client syncs: the ignore rules (gitwildmatch, paths relative to the
    datasites folder, as the legacy client reads its `_.syftignore`) it sent with its last
    `/sync/changes`. A party that sent none syncs everything it may read."""

    def __init__(self):
        self._rules = {}  # email -> (the rules' text, their PathSpec)

    def update(self, email, text):
        if text is None:
            self._rules.pop(email, None)
        elif self._rules.get(email, (None,))[0] != text:
            import pathspec

            self._rules[email] = (text, pathspec.PathSpec.from_lines("gitwildmatch", text.splitlines()))

    def syncs(self, email, path):
        """Whether `email`'s client syncs `path` (a path its rules do not ignore)."""
        rules = self._rules.get(email)
        return rules is None or not rules[1].match_file(path)


async def _read_scope(receive):
    """The ignore rules a `POST /sync/changes` body sends; ValueError when the body is not
    `{"ignore": "<text>"}` (or is longer than LONGEST_RULES)."""
    body = bytearray()
    while True:
        message = await receive()
        body.extend(message.get("body", b""))
        if len(body) > LONGEST_RULES:
            raise ValueError(f"more than {LONGEST_RULES} bytes of ignore rules")
        if not message.get("more_body", False):
            break
    payload = json.loads(bytes(body) or b"{}")  # a JSONDecodeError is a ValueError
    rules = payload.get("ignore") if isinstance(payload, dict) else None
    if not isinstance(rules, str):
        raise ValueError('the body must be {"ignore": "<the client\'s ignore rules>"}')
    return rules


# The path a write names: /sync/create sends it as the uploaded file's name (multipart), the
# others as "path" in a JSON body. Read from the first bytes of the body, as it passes through.
WRITTEN_PATH = (
    (re.compile(rb'filename="([^"]+)"'), bytes.decode),
    (re.compile(rb'"path"\s*:\s*"((?:[^"\\]|\\.)*)"'), lambda text: json.loads(b'"' + text + b'"')),
)
BODY_TAP = 4096
PERMISSION_FILE = "syftperm.yaml"


def written_path(head):
    """The path a write's body names, from its first bytes; None when it cannot tell."""
    for pattern, decode in WRITTEN_PATH:
        match = pattern.search(head)
        if match:
            try:
                path = decode(match.group(1))
            except ValueError:  # UnicodeDecodeError and JSON's errors are ValueErrors
                return None
            return path.strip("/") or None
    return None


def _wait_arguments(query_string):
    """(since, seconds) from `since=...&wait=...`; a bad or missing wait is no wait."""
    query = parse_qs(query_string.decode("latin-1"))
    since = (query.get("since") or [""])[0]
    try:
        seconds = float((query.get("wait") or ["0"])[0])
    except ValueError:
        seconds = 0.0
    return since, seconds if seconds == seconds else 0.0  # NaN is no wait


async def _answer(send, status, payload):
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: answers refused requests and `/sync/changes` itself, passes the rest to
    the server, and marks every write as a change for the parties that may read what it wrote
    and sync it (`readers_of(path, parties)`: those of `parties` who may; None: every party;
    `files_under(folder)`: the paths the server holds under a folder, for permission files)."""

    def __init__(self, app, verify, revocations, readers_of=None, files_under=None):
        self.app, self.verify, self.revocations, self.readers_of = app, verify, revocations, readers_of
        self.files_under = files_under
        self.changes = Changes()
        self.scopes = Scopes()

    def _email(self, headers):
        """The (already verified) token's email, as the legacy server reads it (case and all:
        its rules compare it as it is)."""
        token = headers.get("authorization", "").partition(" ")[2].strip()
        return str(self.verify(token).get("email", ""))

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            refusal = decide(scope["path"], headers.get("authorization", ""), self.verify, self.revocations.get())
            if refusal:
                status, detail = refusal
                await _answer(send, status, {"detail": detail})
                return
            if scope["path"] == CHANGES:
                since, seconds = _wait_arguments(scope.get("query_string", b""))
                email = self._email(headers)
                if scope.get("method") == "POST":
                    try:
                        self.scopes.update(email, await _read_scope(receive))
                    except (ValueError, RecursionError) as e:  # (json's answer to deep nesting)
                        self.scopes.update(email, None)  # told of everything, as a client that sends none
                        await _answer(send, 400, {"detail": f"ignore rules not taken: {e}"})
                        return
                token = await self.changes.wait(email, since, seconds)
                await _answer(send, 200, {"changes": token})
                return
            if scope["path"] in WRITES:
                writer = self._email(headers)
                head = bytearray()

                async def tapped():
                    message = await receive()
                    if len(head) < BODY_TAP:
                        head.extend(message.get("body", b"")[:BODY_TAP - len(head)])
                    return message

                try:
                    await self.app(scope, tapped, send)
                finally:  # a refused write marks a change too: a needless pass costs little
                    try:
                        readers = await self._readers(written_path(bytes(head)), writer)
                    except asyncio.CancelledError:  # the write may have happened: tell everyone
                        self.changes.bump()
                        raise
                    self.changes.bump(readers)
                return
        await self.app(scope, receive, send)

    async def _readers(self, path, writer):
        """Who is told of a write to `path` by `writer` (None: every party). The writer's own
        client made it; a permission file may change what anyone reads of the files under its
        folder, so it concerns whoever syncs one of them."""
        if self.readers_of is None or path is None:
            return None
        parties = [e for e in self.changes.parties if e != writer]
        try:
            if path.rsplit("/", 1)[-1].endswith(PERMISSION_FILE):
                if self.files_under is None:
                    return None
                return await asyncio.to_thread(self._syncing_under, path, parties)
            parties = [e for e in parties if self.scopes.syncs(e, path)]
            return await asyncio.to_thread(self.readers_of, path, parties) if parties else []
        except Exception:  # the permission store could not say: tell everyone
            return None

    def _syncing_under(self, permission_file, parties):
        """Those of `parties` that sync the permission file or a file under its folder (a thread:
        a datasite's root folder may hold many files)."""
        folder = permission_file.rsplit("/", 1)[0] if "/" in permission_file else ""
        files = [permission_file, *self.files_under(folder)]
        return [e for e in parties if any(self.scopes.syncs(e, f) for f in files)]


def reading_rule(db_path):
    """readers_of(path, parties) by the legacy server's own rule for reading a file (its
    permission files' rules on the path; an owner reads its whole datasite)."""
    from pathlib import Path

    from syftbox.lib.permissions import ComputedPermission, PermissionType
    from syftbox.server.db.db import get_rules_for_path
    from syftbox.server.db.schema import get_db

    def readers_of(path, parties):
        connection = get_db(db_path)
        try:  # the rules on the path once; then, per party, what file_store's reads compute
            rules = get_rules_for_path(connection, Path(path))
        finally:
            connection.close()
        return [e for e in parties if ComputedPermission.from_user_rules_and_path(
            rules=rules, user=e, path=Path(path)).has_permission(PermissionType.READ)]

    return readers_of


def stored_files(db_path):
    """files_under(folder): the paths the legacy server holds under `folder` (every datasite for "")."""
    from syftbox.server.db.db import get_all_metadata
    from syftbox.server.db.schema import get_db

    def files_under(folder):
        connection = get_db(db_path)
        try:
            return [m.path.as_posix() for m in get_all_metadata(connection, path_like=f"{folder}/" if folder else None)]
        finally:
            connection.close()

    return files_under


def main(argv):
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--data-folder", required=True)
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--secret-file", required=True)
    parser.add_argument("--revoked-file", required=True)
    args = parser.parse_args(argv)

    with open(args.secret_file) as f:
        secret = f.read().strip()
    # The legacy server's settings come from its environment (pydantic settings, SYFTBOX_*).
    os.environ.update({
        "SYFTBOX_DATA_FOLDER": args.data_folder,
        "SYFTBOX_AUTH_ENABLED": "true",
        "SYFTBOX_JWT_SECRET": secret,
        # Required by 0.4.0 with auth on; never used: the guard answers the email-token endpoints.
        "SYFTBOX_SENDGRID_SECRET": "unused",
    })
    import jwt
    import uvicorn
    from syftbox.server.db import db
    from syftbox.server.server import app

    patch_listing(db)

    def verify(token):
        return jwt.decode(token, secret, algorithms=["HS256"])

    from syftbox.server.settings import ServerSettings

    db_path = ServerSettings().file_db_path
    guarded = Guard(app, verify, Revocations(args.revoked_file), reading_rule(db_path), stored_files(db_path))
    # Clients hold `/sync/changes` open for up to 30 s: at shutdown, wait 2 s for requests, not 30.
    uvicorn.run(guarded, host="0.0.0.0", port=args.port, log_level="warning",
                ssl_certfile=args.cert, ssl_keyfile=args.key, timeout_graceful_shutdown=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
