"""An intruder on the stack's network: tries to become a party, or to act past its own kit.

Run inside a container of the image on the test stack's network (stdlib only; the test feeds
this file to `python -` with the inputs in the environment). It targets only the stack's own
sync server, by its service name. It prints one JSON report: every attempt, the HTTP status
(or what the socket gave back) and whether the server refused it.

    SERVER            https://syftbox:5001
    MALLORY_TOKEN     a valid access token of an invited party no owner trusts
    EXPIRED_TOKEN     a token the server signed for the DS, already expired
    PROTECTED         JSON list of paths mallory may not read (the DS's messages, its permissions)
    FORGED_UPLOADS    JSON list of [path, content]: requests in the DS's name
"""

import base64
import hashlib
import hmac
import json
import os
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

SERVER = os.environ.get("SERVER", "https://syftbox:5001")
# The intruder has no kit, hence no CA: it simply does not verify the certificate.
INSECURE = ssl._create_unverified_context()
DS = "ds@openmined.org"
DO1 = "do1@openmined.org"
attempts = []


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(secret, email, kind="access_token", exp=None):
    """A JWT as the legacy server's would look, signed with a secret the intruder guesses."""
    payload = {"email": email, "type": kind, "iat": int(time.time())}
    if exp is not None:
        payload["exp"] = exp
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(payload).encode())
    sig = b64(hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


def call(path, token=None, json_body=None, form_file=None, query=None, user=None):
    """(status, body text) of one request to the sync server."""
    url = SERVER + path + (("?" + urllib.parse.urlencode(query)) if query else "")
    headers = {"X-Syftbox-User": user or DS, "email": user or DS}
    data = None
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if json_body is not None:
        data = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    if form_file is not None:
        name, content = form_file
        boundary = uuid.uuid4().hex
        data = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    request = urllib.request.Request(url, data=data if data is not None else b"", headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10, context=INSECURE) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def attempt(what, status, body, refused):
    attempts.append({"what": what, "status": status, "refused": bool(refused), "body": body[:200]})


def expect_refused(what, path, **kwargs):
    status, body = call(path, **kwargs)
    attempt(what, status, body, status in (400, 401, 403, 404))
    return status, body


def without_a_kit():
    for email in (DS, DO1):
        status, body = call("/auth/request_email_token", json_body={"email": email})
        attempt(f"ask for the email token of {email}", status, body,
                status >= 400 and "email_token\": \"" not in body)
    for secret, label in (("changethis", "the library's development secret"), ("secret", "a guessed secret")):
        email_token = forge(secret, DS, kind="email_token")
        expect_refused(f"trade an email token signed with {label} for an access token",
                       "/auth/validate_email_token", token=email_token, query={"email": DS})
    tokens = {
        "no token": None,
        "a token signed with the library's development secret": forge("changethis", DS),
        "a token signed with a guessed secret": forge("syftbox", DS),
        "an expired token": os.environ["EXPIRED_TOKEN"],
        "a token with no signature": forge("x", DS).rsplit(".", 1)[0] + ".",
    }
    for label, token in tokens.items():
        expect_refused(f"list every datasite's files with {label}", "/sync/datasite_states", token=token)
        expect_refused(f"whoami with {label}", "/auth/whoami", token=token)
        expect_refused(f"create a file in {DO1}'s job store with {label}", "/sync/create", token=token,
                       form_file=(f"{DO1}/app_data/RDS/store/job/{uuid.uuid4()}.yaml", b"status: approved\n"))
    expect_refused("browse a datasite past its public folder", f"/datasites/{DS}/../app_data/RDS/app.yaml")
    expect_refused("browse the datasites listing", "/datasites")


def with_mallorys_kit():
    token = os.environ["MALLORY_TOKEN"]
    mallory = "mallory@evil.org"
    writes = [
        (f"write into {DO1}'s job store", f"{DO1}/app_data/RDS/store/job/{uuid.uuid4()}.yaml"),
        (f"write into {DO1}'s dataset store", f"{DO1}/app_data/RDS/store/dataset/{uuid.uuid4()}.yaml"),
        (f"write into {DO1}'s public keys", f"{DO1}/public/did-{uuid.uuid4().hex[:6]}.json"),
        (f"write a job request in {DS}'s folder of {DO1}'s RPC", f"{DO1}/app_data/RDS/rpc/job/create/{DS}/{uuid.uuid4()}.request"),
        (f"write into {DS}'s own datasite", f"{DS}/app_data/{uuid.uuid4().hex[:6]}.json"),
        (f"replace {DO1}'s permission rules", f"{DO1}/app_data/RDS/{uuid.uuid4().hex[:4]}/syftperm.yaml"),
    ]
    for what, path in writes:
        expect_refused(f"mallory: {what}", "/sync/create", token=token, user=mallory, form_file=(path, b"{}"))
    for what, path in ((f"delete {DO1}'s public key", f"{DO1}/public/did.json"),
                       (f"delete {DO1}'s permission rules", f"{DO1}/app_data/RDS/syftperm.yaml")):
        expect_refused(f"mallory: {what}", "/sync/delete", token=token, user=mallory, json_body={"path": path})
    for path in json.loads(os.environ.get("PROTECTED", "[]")):
        expect_refused(f"mallory: read {path}", "/sync/download", token=token, user=mallory, json_body={"path": path})
    status, body = call("/sync/datasite_states", token=token, user=mallory)
    visible = [m["path"] for files in (json.loads(body).values() if status == 200 else []) for m in files]
    leaked = [p for p in visible if p.startswith(f"{DS}/") and not p.startswith(f"{DS}/public/")]
    attempt(f"mallory: list the DS's non-public files ({len(visible)} files visible)", status,
            json.dumps(leaked), status == 200 and not leaked)
    # In its own folder mallory may write a request; it claims to be the DS: the owner must ignore it.
    for path, content in json.loads(os.environ.get("FORGED_UPLOADS", "[]")):
        status, body = call("/sync/create", token=token, user=mallory, form_file=(path, content.encode()))
        attempts.append({"what": f"mallory: upload a request in the DS's name to {path}", "status": status,
                         "refused": False, "accepted_by_server": status == 200, "body": body[:200]})


def plain_http():
    host = urllib.parse.urlsplit(SERVER).hostname
    port = urllib.parse.urlsplit(SERVER).port or 443
    got = b""
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(f"POST /sync/datasite_states HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n".encode())
        s.settimeout(5)
        try:
            while chunk := s.recv(4096):
                got += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    attempt("plain HTTP to the sync server's port", None, repr(got[:120]),
            b"HTTP/1.1 200" not in got and b"{" not in got)


if __name__ == "__main__":
    without_a_kit()
    with_mallorys_kit()
    plain_http()
    print(json.dumps(attempts))
