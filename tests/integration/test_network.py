"""A network that knows who is who: intruders refused, kits checked, TLS only, remote owners in."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.integration.helpers import (DATASITES, PROJECT, assert_aggregate_matches, compose, docker_exec, ds_finish,
                                       ds_start, exec_in, invite, jobs_table, run_once, start_owner, stop_owner,
                                       wait_healthy, write_kit)

INTRUDER = Path(__file__).with_name("intruder.py")
MALLORY = "mallory@evil.org"
DO1 = "do1@openmined.org"
KIT_IN_CONTAINER = "/run/federation/kit/kit.json"
PIMA = REPO_ROOT.parent / "shared" / "data" / "pima-indians-diabetes.csv"


def token_of(kit: str) -> str:
    return json.loads(kit)["access_token"]


def forged_job_request() -> tuple[str, str, str]:
    """A well-formed syft-rpc request to do1's job/create that claims to come from the DS,
    filed in mallory's own folder (the only one the server lets her write): (path, JSON, id)."""
    from syft_core.url import SyftBoxURL
    from syft_rpc.protocol import SyftRequest

    request = SyftRequest(sender="ds@openmined.org", url=SyftBoxURL(f"syft://{DO1}/app_data/RDS/rpc/job/create"),
                          body=json.dumps({"name": "exfiltrate", "dataset_name": "pima"}).encode())
    path = f"{DO1}/app_data/RDS/rpc/job/create/{MALLORY}/{request.id}.request"
    return path, request.dumps(), str(request.id)


def protected_paths() -> list[str]:
    """Files on the server that only the DS (or do1) may read: the DS's Flower messages, the DS's
    own root permission file. The DS's code copies at the owners never reach the server."""
    out = exec_in("syftbox", "sh", "-c", "cd /home/syft/server/snapshot && find . -type f").stdout.split()
    paths = [p[2:] for p in out]
    assert [p for p in paths if "/app_data/RDS/user_files/" in p] == []
    return [next(p for p in paths if "/rpc/messages/ds@openmined.org/" in p), "ds@openmined.org/syftperm.yaml"]


def run_intruder(env: dict[str, str]) -> list[dict]:
    """intruder.py in a fresh container on the stack's network that holds no kit."""
    env_args = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
    proc = subprocess.run(["docker", "run", "--rm", "-i", "--network", f"{PROJECT}_default", *env_args,
                           "--entrypoint", "python", "federation:latest", "-"],
                          input=INTRUDER.read_text(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_replaced_kit_is_refused_and_its_successor_accepted(stack):
    email = f"leaky-{uuid.uuid4().hex[:6]}@hospital.org"
    old = token_of(invite(email))
    new = token_of(invite(email, "--replace"))
    probe = ("import json, ssl, sys, urllib.request\n"
             "ctx = ssl.create_default_context(cafile='/home/syft/server/credentials/ca.pem')\n"
             "ctx.check_hostname = False\n"  # localhost inside the server's container
             "out = {}\n"
             "for name, token in (('old', sys.argv[1]), ('new', sys.argv[2])):\n"
             "    r = urllib.request.Request('https://localhost:5001/auth/whoami', data=b'', method='POST',\n"
             "                               headers={'Authorization': 'Bearer ' + token})\n"
             "    try:\n"
             "        out[name] = urllib.request.urlopen(r, context=ctx).status\n"
             "    except urllib.error.HTTPError as e:\n"
             "        out[name] = e.code\n"
             "print(json.dumps(out))\n")
    result = exec_in("syftbox", "python", "-c", probe, old, new)
    assert json.loads(result.stdout) == {"old": 401, "new": 200}


def _bad_kit_cases(tmp_path: Path) -> dict[str, tuple[dict, str]]:
    """case -> (how the owner is started, what its one line must say)."""
    from federation.sync_server import credentials

    email = "badkit@openmined.org"
    good = json.loads(invite(email))
    other_ca = credentials.ensure(tmp_path / "other-ca").ca_cert.read_text()
    syftbox_ip = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
         compose("ps", "-q", "syftbox").stdout.strip()], capture_output=True, text=True, check=True).stdout.strip()

    def kit(name: str, doc: dict | str) -> Path:
        return write_kit(tmp_path / f"{name}.kit", doc if isinstance(doc, str) else json.dumps(doc))

    return {
        "missing": ({"kit": kit("missing-unused", good), "KIT_FILE": "/run/federation/kit/none.json"},
                    "no kit at /run/federation/kit/none.json"),
        "other-email": ({"kit": kit("other", json.loads(invite("someone@openmined.org")))},
                        f"the kit {KIT_IN_CONTAINER} is for someone@openmined.org, but SYFTBOX_EMAIL is {email}"),
        "malformed": ({"kit": kit("malformed", '{"server_url": "https://syftbox:5001", ')},
                      f"the kit {KIT_IN_CONTAINER} is not JSON"),
        "bad-token": ({"kit": kit("badtoken", good | {"access_token": "abc.def"})},
                      f"the kit {KIT_IN_CONTAINER}: the access token is not a JWT"),
        "expired": ({"kit": kit("expired", json.loads(invite(email, "--expires-days", "-1")))},
                    f"the kit {KIT_IN_CONTAINER}: the access token expired"),
        "other-ca": ({"kit": kit("otherca", good | {"ca_pem": other_ca})},
                     f"has a certificate the CA in the kit {KIT_IN_CONTAINER} did not sign"),
        "other-name": ({"kit": kit("othername", good | {"server_url": "https://sync.wrong.example:5001"}),
                        "docker_args": ("--add-host", f"sync.wrong.example:{syftbox_ip}")},
                       "the sync server's certificate is not for 'sync.wrong.example'"),
    }


def test_a_bad_kit_stops_the_owner_at_start_with_one_line_naming_it(stack, tmp_path):
    private = tmp_path / "private"
    private.mkdir()
    subprocess.run(["cp", str(PIMA), str(private / "pima.csv")], check=True)
    failures = []
    for case, (start, message) in _bad_kit_cases(tmp_path).items():
        start = dict(start)
        name = start_owner(f"{PROJECT}-badkit-{case}-{uuid.uuid4().hex[:4]}", "badkit@openmined.org", private,
                           kit=start.pop("kit"), docker_args=start.pop("docker_args", ()),
                           APPROVE_JOBS_FROM="ds@openmined.org", **start)
        try:
            code = subprocess.run(["docker", "wait", name], capture_output=True, text=True, timeout=120).stdout.strip()
            logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
            last = (logs.stderr.strip().splitlines() or [""])[-1]  # the CLI's one line (logs are on stdout)
            if code != "2" or message not in last or "Traceback" in logs.stderr:
                failures.append(f"{case}: exit {code}, last line {last!r}")
        finally:
            stop_owner(name)
    assert not failures, "\n".join(failures)
    # none of them reached the network
    assert "badkit@openmined.org" not in exec_in("syftbox", "ls", "/home/syft/server/snapshot").stdout.split()


def test_the_data_scientist_without_its_kit_stops_naming_it(stack):
    code, output = run_once("ds", "ds", env={"KIT_FILE": "/run/federation/kit/missing.json"})
    assert code == 2
    assert output.strip().splitlines()[-1].startswith("federation ds: no kit at /run/federation/kit/missing.json")


def test_a_remote_owner_joins_through_the_published_port_and_counts(stack, private_csvs, tmp_path):
    """A hospital elsewhere: its own docker network (nothing shared with the stack), the sync
    server only through the host's published port, over TLS, with the kit the operator sent."""
    import os

    email = "remote@hospital.org"
    private = tmp_path / "private"
    private.mkdir()
    rows = PIMA.read_text().splitlines()
    (private / "ward.csv").write_text("\n".join(rows[:121]) + "\n")  # header + 120 rows
    kit = write_kit(tmp_path / "remote.kit", invite(email, "--server-url",
                                                    f"https://host.docker.internal:{os.environ['SYNC_PORT']}"))
    network = f"{PROJECT}-remote"
    subprocess.run(["docker", "network", "create", network], capture_output=True)
    name = start_owner(f"{PROJECT}-remote-owner", email, private, kit=kit, network=network,
                       docker_args=("--add-host", "host.docker.internal:host-gateway"),
                       APPROVE_JOBS_FROM="ds@openmined.org")
    try:
        wait_healthy(name, timeout=180)
        reach = docker_exec(name, "getent", "hosts", "syftbox")
        assert reach.returncode != 0, "the remote owner must not resolve the stack's services"
        code, output = ds_finish(ds_start("ds", env={"DATASITES": ",".join([*DATASITES, email]),
                                                     "RESULTS_DIR": "/tmp/results-remote"}), timeout=400)
        assert code == 0, output[-3000:]
        aggregate = json.loads(exec_in("ds", "cat", "/tmp/results-remote/aggregate.json").stdout)
        assert email in aggregate["datasites"]
        files = [p for owner_files in private_csvs.values() for p in owner_files] + [private / "ward.csv"]
        assert_aggregate_matches(aggregate, files)
    finally:
        stop_owner(name)
        subprocess.run(["docker", "network", "rm", network], capture_output=True)


def test_intruders_are_refused_and_a_forged_request_runs_nothing(stack):
    """After the remote owner's run: the files it protects (Flower messages) are that run's,
    still synced (SYNCED_RETENTION)."""
    jobs_before = {row["ID"] for row in jobs_table(f"{PROJECT}-do1-1")}
    forged_path, forged_content, forged_id = forged_job_request()
    report = run_intruder({
        "MALLORY_TOKEN": token_of(invite(MALLORY)),  # invited by the operator, trusted by no owner
        "EXPIRED_TOKEN": token_of(invite("ds@openmined.org", "--expires-days", "-1")),
        "PROTECTED": json.dumps(protected_paths()),
        "FORGED_UPLOADS": json.dumps([[forged_path, forged_content]]),
    })
    probes = [a for a in report if "accepted_by_server" not in a]
    refused = [a for a in probes if a["refused"]]
    print(f"\nintruder: {len(refused)} of {len(probes)} attempts refused")
    for a in probes:
        print(f"  {'refused' if a['refused'] else 'ALLOWED'} ({a['status']}): {a['what']}")
    assert len(probes) >= 30
    assert refused == probes, [a for a in probes if not a["refused"]]
    # The forged request is in mallory's own folder: the server takes it; do1 ignores it.
    (upload,) = [a for a in report if "accepted_by_server" in a]
    assert upload["accepted_by_server"], upload
    deadline = time.monotonic() + 60
    while f"{forged_id}.request" not in (logs := compose("logs", "--no-color", "do1", check=False).stdout):
        assert time.monotonic() < deadline, "do1 never saw the forged request"
        time.sleep(1)
    (line,) = [x for x in logs.splitlines() if f"{forged_id}.request" in x]
    assert "ignored request" in line and "claims to be from ds@openmined.org" in line, line
    jobs = jobs_table(f"{PROJECT}-do1-1")
    assert {row["ID"] for row in jobs} == jobs_before, jobs  # no job, let alone one that runs


def _credential_hashes() -> dict[str, str]:
    out = exec_in("syftbox", "sh", "-c", "cd /home/syft/server/credentials && sha256sum *").stdout
    return {line.split()[1]: line.split()[0] for line in out.splitlines()}


@pytest.mark.disruptive
def test_a_restarted_server_keeps_its_secret_certificate_and_the_kits(stack):
    before = _credential_hashes()
    assert {"jwt_secret", "ca.pem", "ca.key", "server.pem", "server.key"} <= set(before)
    kit_before = exec_in("do1", "cat", KIT_IN_CONTAINER).stdout
    # the one-shot again, as every `up` does: every kit kept
    compose("up", "--no-deps", "credentials")
    logs = compose("logs", "--no-color", "credentials").stdout
    assert "do1: kept the kit for do1@openmined.org" in logs, logs[-2000:]
    subprocess.run(["docker", "restart", compose("ps", "-q", "syftbox").stdout.strip()], check=True, capture_output=True)
    wait_healthy(compose("ps", "-q", "syftbox").stdout.strip(), timeout=120)
    assert _credential_hashes() == before
    assert exec_in("do1", "cat", KIT_IN_CONTAINER).stdout == kit_before
    probe = ("import json, ssl, urllib.request\n"
             f"kit = json.load(open('{KIT_IN_CONTAINER}'))\n"
             "r = urllib.request.Request(kit['server_url'] + '/auth/whoami', data=b'', method='POST',\n"
             "                           headers={'Authorization': 'Bearer ' + kit['access_token']})\n"
             "print(json.load(urllib.request.urlopen(r, context=ssl.create_default_context(cadata=kit['ca_pem'])))['email'])\n")
    assert exec_in("do1", "python", "-c", probe).stdout.strip() == DO1
