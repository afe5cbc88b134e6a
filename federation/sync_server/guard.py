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

    python guard.py --data-folder DIR --port 5001 --cert server.pem --key server.key
"""

import json
import os
import sys

# Run as a script, this file's folder would come first on sys.path and shadow packages.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

OPEN = ("/", "/info")
SYNC = "/sync/"  # every sync endpoint: a token
WITH_TOKEN = ("/auth/whoami", "/register", "/log_event")
NEVER = ("/auth/request_email_token", "/auth/validate_email_token")


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


class Guard:
    """ASGI middleware: answers refused requests itself, passes the rest to the server."""

    def __init__(self, app, verify, revocations):
        self.app, self.verify, self.revocations = app, verify, revocations

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            refusal = decide(scope["path"], headers.get("authorization", ""), self.verify, self.revocations.get())
            if refusal:
                status, detail = refusal
                body = json.dumps({"detail": detail}).encode()
                await send({"type": "http.response.start", "status": status,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


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

    guarded = Guard(app, verify, Revocations(args.revoked_file))
    uvicorn.run(guarded, host="0.0.0.0", port=args.port, log_level="warning",
                ssl_certfile=args.cert, ssl_keyfile=args.key)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
