"""How a party reaches the network: its SyftBox client, its keys, its sync rules.

Each party runs the legacy SyftBox client as a child process on its own data
folder; everything the parties exchange are files that client syncs through the
server. Nothing here knows about datasets or jobs.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

from federation.common import settings, sync_now
from federation.common.files import atomic_write
from federation.common.kit import Kit, KitError, load_kit
from federation.common.settings import Party

log = logging.getLogger(__name__)

LAUNCHER = Path(__file__).with_name("syftbox_launcher.py")
START_ATTEMPTS = 3


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll `check` until it is true; on timeout raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def server_answers(url: str, context: ssl.SSLContext | None = None) -> bool:
    """The sync server is up (a TLS failure is not "down": `check_server` names it)."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/info", timeout=2, context=context) as resp:
            return resp.status == 200
    except urllib.error.URLError as e:
        return isinstance(e.reason, ssl.SSLError)
    except ssl.SSLError:
        return True
    except OSError:
        return False


def check_server(url: str, kit: Kit) -> None:
    """The server is the one the kit trusts and accepts the kit's token; KitError naming the
    cause and the kit's file otherwise."""
    host = urllib.parse.urlsplit(url).hostname
    request = urllib.request.Request(f"{url.rstrip('/')}/auth/whoami", method="POST", data=b"",
                                     headers={"Authorization": f"Bearer {kit.access_token}"})
    try:
        with urllib.request.urlopen(request, timeout=10, context=kit.ssl_context()) as resp:
            who = json.loads(resp.read() or b"{}").get("email")
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")[:200]
        raise KitError(f"the sync server at {url} refuses the access token in the kit {kit.path} "
                       f"(HTTP {e.code}: {detail})") from None
    except (urllib.error.URLError, ssl.SSLError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, ssl.SSLCertVerificationError) and "hostname" in str(reason).lower():
            raise KitError(f"the sync server's certificate is not for {host!r} (the server URL of "
                           f"the kit {kit.path} or SYFTBOX_SERVER_URL): {reason.verify_message}") from None
        if isinstance(reason, ssl.SSLError):
            raise KitError(f"the sync server at {url} has a certificate the CA in the kit {kit.path} "
                           f"did not sign ({getattr(reason, 'verify_message', None) or reason})") from None
        raise KitError(f"the sync server at {url} cannot be reached: {reason}") from None
    if str(who).lower() != kit.email.lower():
        raise KitError(f"the sync server says the kit {kit.path} is for {who}, not {kit.email}")


def _client_answers(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).close()
    except urllib.error.HTTPError:
        pass  # any HTTP answer means it is up
    except (urllib.error.URLError, OSError):
        return False
    return True


class SyncClient:
    """The party's SyftBox client process, started once and watched."""

    def __init__(self, party: Party):
        self.party = party
        self.proc: subprocess.Popen | None = None
        self.server_url: str | None = None  # once joined: the kit's, or SYFTBOX_SERVER_URL
        self.reused = False  # started: another process of this container runs the client

    def join(self, timeout: float = 120) -> Kit:
        """The party's kit, checked against the running server; the client's config then holds
        its token and the kit's CA is the only one its client trusts. KitError on any mismatch."""
        party = self.party
        kit = load_kit(party.kit, party.email)
        url = party.server_url or kit.server_url
        if not url.startswith("https://"):
            raise KitError(f"SYFTBOX_SERVER_URL {url!r} is not https:// (the network serves TLS only)")
        context = kit.ssl_context()
        wait_for(lambda: server_answers(url, context), timeout, f"the sync server at {url}")
        check_server(url, kit)
        party.state_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.ca_file, kit.ca_pem)
        self._write_config(url, kit.access_token)
        return kit

    @property
    def ca_file(self) -> Path:
        return self.party.state_dir / "network-ca.pem"

    def _write_config(self, url: str, token: str) -> None:
        """The legacy client's config with the kit's token (it would otherwise ask the server for
        an email token, which this network never hands out). Readable by this user only."""
        party = self.party
        try:
            config = json.loads(party.config_path.read_text())
        except (OSError, ValueError):
            config = {}
        config |= {"data_dir": str(party.syftbox_dir), "email": party.email, "server_url": url,
                   "client_url": f"http://127.0.0.1:{party.client_port}", "access_token": token}
        atomic_write(party.config_path, json.dumps(config, indent=2))
        party.config_path.chmod(0o600)
        self.server_url = url

    def start(self, timeout: float = 120, meanwhile: Callable[[], None] | None = None) -> None:
        """Start this party's SyftBox client and wait until it syncs; `meanwhile` runs (once, in
        this thread) while the client process starts, so the two start-ups overlap."""
        party = self.party
        if self.running_here():
            # A second command in this container (`docker exec ds federation ds`): use the
            # client that runs already. A second client for one identity would make new
            # keys and fight the first over the same datasite.
            log.info("using the SyftBox client already running for %s", party.email)
            self.reused = True
            if meanwhile is not None:
                meanwhile()
            return
        self.join(timeout)
        # (before each attempt below: a pidfile left by the previous container names a PID
        # that, in this new container, may well be alive (PIDs start again at 1), and the
        # client would refuse to start; only this process runs a client on this folder)
        log_file = open(party.state_dir / "syftbox-client.log", "ab")
        interval = ["--sync-interval", str(party.sync_interval)] if party.sync_interval else []
        cmd = [
            str(settings.syftbox_bin() / "python"), str(LAUNCHER), *interval, "client",
            "--config", str(party.config_path),
            "--email", party.email,
            "--data-dir", str(party.syftbox_dir),
            "--server", self.server_url,
            "--port", str(party.client_port),
            "--no-open-dir",
        ]
        log.debug("starting SyftBox client: %s", " ".join(cmd))
        # The legacy client's httpx trusts SSL_CERT_FILE: the kit's CA, nothing else.
        env = settings.child_environment(SSL_CERT_FILE=str(self.ca_file))
        for attempt in range(1, START_ATTEMPTS + 1):
            (party.syftbox_dir / "syftbox.pid").unlink(missing_ok=True)
            self.proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env)
            if meanwhile is not None:
                meanwhile, work = None, meanwhile
                work()
            try:
                self.wait(self._ready, timeout, f"the SyftBox client of {party.email} (log: {log_file.name})")
                break
            except RuntimeError:
                # 254: "unhandled exception when starting the client", e.g. a server call while
                # the sync server itself restarts; a moment later it starts. Anything else is final.
                if self.proc.returncode != 254 or attempt == START_ATTEMPTS:
                    raise
                log.warning("the SyftBox client failed to start (attempt %d); trying again", attempt)
                time.sleep(2 * attempt)
        log.info("SyftBox client of %s is syncing with %s", party.email, self.server_url)

    def _ready(self) -> bool:
        """The client answers on its local port (files alone may be left from an earlier run)."""
        if not (self.party.config_path.exists() and self.ignore_file.exists() and self.datasite.exists()):
            return False
        return _client_answers(self.party.client_port)

    def running_here(self) -> bool:
        """A client for this identity and data folder already answers in this container."""
        try:
            config = json.loads(self.party.config_path.read_text())
        except (OSError, ValueError):
            return False
        same = config.get("email") == self.party.email and Path(config.get("data_dir", "")) == self.party.syftbox_dir
        return same and _client_answers(self.party.client_port)

    def wait(self, check: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
        """`wait_for`, failing at once if the SyftBox client has died meanwhile."""
        def alive_and_done() -> bool:
            self.check_alive()
            return check()

        wait_for(alive_and_done, timeout, what, interval)

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"the SyftBox client exited with code {self.proc.returncode}; "
                f"see {self.party.state_dir / 'syftbox-client.log'}"
            )

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    @property
    def datasites(self) -> Path:
        return self.party.syftbox_dir / "datasites"

    @property
    def datasite(self) -> Path:
        return self.datasites / self.party.email

    @property
    def ignore_file(self) -> Path:
        return self.datasites / "_.syftignore"

    def sync_only_own_and_keys(self) -> None:
        """Sync only our own datasite, and of the others only their public keys (did.json).

        An owner reads nothing else of another party's: it answers in its own datasite, and it
        needs the DS's key for the DS's messages. Without this every owner mirrored every other
        owner's datasets and job records, so with 8 owners each change was downloaded 8 times.
        The rules go first in the ignore file, so the client's own rules and those added later
        (`keep_off_the_wire`) still apply to our files.
        """
        block = [OWN_AND_KEYS, "/*/**", f"!/{self.party.email}/**", "!/*/public/did.json"]
        lines = self.ignore_file.read_text().splitlines()
        if OWN_AND_KEYS not in lines:
            atomic_write(self.ignore_file, "\n".join(block + lines) + "\n")
            log.info("sync keeps only %s and the other parties' public keys", self.party.email)

    def keep_off_the_wire(self, path_in_datasite: str, why: str = "private to this party") -> None:
        """Never upload this folder of our own datasite (a gitwildmatch rule in _.syftignore).

        Permission files cannot stop an owner's client from uploading its own files;
        the ignore file can. The rule must be in place before anything is written there.
        """
        rule = f"/{self.party.email}/{path_in_datasite.strip('/')}/"
        lines = self.ignore_file.read_text().splitlines()
        if rule not in lines:
            with self.ignore_file.open("a") as f:
                f.write(f"\n# never synced: {why}\n{rule}\n")
            log.info("sync ignores %s", rule)

    def ensure_keys(self):
        """Create this party's encryption keys (did.json is published, the private key stays)."""
        from syft_core import Client
        from syft_crypto import ensure_bootstrap

        keys = ensure_bootstrap(Client.load(self.party.config_path))
        sync_now.nudge()  # every party waits for the others' did.json: up at once, not at the next loop
        return keys

    def public_key_path(self, email: str) -> Path:
        return self.datasites / email / "public" / "did.json"

    def wait_for_public_key(self, email: str, timeout: float) -> None:
        """Messages from or to `email` need its did.json locally, or decryption fails and the job hangs."""
        self.wait(self.public_key_path(email).exists, timeout, f"the public key of {email} to sync")


OWN_AND_KEYS = "# only this party's own datasite, and the others' public keys"


def point_libraries_at(party: Party) -> None:
    """syft-rds and syft_flwr find the client config through SYFTBOX_CLIENT_CONFIG_PATH in places
    that take no path (e.g. syft-rds's server probe): the role's main sets it once, at start."""
    os.environ["SYFTBOX_CLIENT_CONFIG_PATH"] = str(party.config_path)
