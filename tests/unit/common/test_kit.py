"""federation.common.kit: a party's credential is checked before the container goes on."""

from __future__ import annotations

import json
import time

import pytest

from federation.common.kit import Kit, KitError, load_kit, make_token, token_claims, verify_token
from federation.sync_server import credentials

EMAIL = "do1@openmined.org"


@pytest.fixture(scope="module")
def creds(tmp_path_factory):
    return credentials.ensure(tmp_path_factory.mktemp("server") / "credentials")


def write_kit(path, creds, email=EMAIL, **changes):
    kit = credentials.issue(creds, email, "https://syftbox:5001", creds.ca_cert.read_text())
    doc = json.loads(kit.to_json()) | changes
    path.write_text(json.dumps(doc))
    return path


def test_a_token_verifies_with_its_secret_only():
    token = make_token("s3cret", EMAIL)
    assert verify_token("s3cret", token)["email"] == EMAIL
    with pytest.raises(KitError, match="not signed by this server"):
        verify_token("changethis", token)


def test_an_expired_token_is_refused():
    token = make_token("s3cret", EMAIL, expires_in=60, now=time.time() - 120)
    with pytest.raises(KitError, match="expired"):
        verify_token("s3cret", token)


def test_a_good_kit_loads(tmp_path, creds):
    kit = load_kit(write_kit(tmp_path / "kit.json", creds), EMAIL)
    assert kit.email == EMAIL and kit.server_url == "https://syftbox:5001"
    assert token_claims(kit.access_token)["type"] == "access_token"
    assert kit.ssl_context().verify_mode.name == "CERT_REQUIRED"


@pytest.mark.parametrize("changes, message", [
    ({"email": "ds@openmined.org"}, "is for ds@openmined.org, but SYFTBOX_EMAIL is do1@openmined.org"),
    ({"access_token": "not-a-jwt"}, "not a JWT"),
    ({"access_token": make_token("x", "ds@openmined.org")}, "access token is for 'ds@openmined.org'"),
    ({"access_token": make_token("x", EMAIL, expires_in=1, now=1000)}, "expired"),
    ({"server_url": "http://syftbox:5001"}, "is not https://"),
    ({"ca_pem": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"}, "ca_pem is not a PEM"),
    ({"access_token": ""}, "lacks access_token"),
])
def test_a_bad_kit_is_one_line_naming_the_file(tmp_path, creds, changes, message):
    path = write_kit(tmp_path / "kit.json", creds, **changes)
    with pytest.raises(KitError) as caught:
        load_kit(path, EMAIL)
    assert message in str(caught.value) and str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_or_malformed_kit(tmp_path):
    with pytest.raises(KitError, match=f"no kit at {tmp_path / 'none.json'}"):
        load_kit(tmp_path / "none.json", EMAIL)
    (tmp_path / "kit.json").write_text("{not json")
    with pytest.raises(KitError, match="is not JSON"):
        load_kit(tmp_path / "kit.json", EMAIL)


def test_credentials_are_made_once_and_kept(tmp_path):
    folder = tmp_path / "credentials"
    first = credentials.ensure(folder)
    made = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert set(made) >= {"jwt_secret", "ca.pem", "ca.key", "server.pem", "server.key"}
    assert (folder / "jwt_secret").stat().st_mode & 0o077 == 0
    assert (folder / "ca.key").stat().st_mode & 0o077 == 0
    assert first.secret() != "changethis" and len(first.secret()) == 64
    credentials.ensure(folder)  # a restart: nothing changes, kits stay valid
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == made
    # a new name for the server: a new certificate from the same CA, the same secret
    credentials.ensure(folder, (*credentials.DEFAULT_NAMES, "sync.example.org"))
    assert "sync.example.org" in credentials.certificate_names(folder / "server.pem")
    assert (folder / "ca.pem").read_bytes() == made["ca.pem"]
    assert (folder / "jwt_secret").read_bytes() == made["jwt_secret"]


def test_the_server_certificate_verifies_against_the_ca_for_its_names(tmp_path):
    from cryptography import x509

    folder = tmp_path / "credentials"
    credentials.ensure(folder)
    cert = x509.load_pem_x509_certificate((folder / "server.pem").read_bytes())
    ca = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert credentials.certificate_names(folder / "server.pem") >= {"syftbox", "localhost", "127.0.0.1"}


def test_party_kits_go_each_into_its_own_folder_and_are_kept(tmp_path, creds):
    parties, kits = tmp_path / "parties", tmp_path / "kits"
    parties.mkdir()
    (parties / "ds.env").write_text("# the DS\nSYFTBOX_EMAIL=ds@openmined.org\nDATASITES=a@b.org\n")
    (parties / "do1.env").write_text(f"SYFTBOX_EMAIL={EMAIL}\n")
    for name in ("ds", "do1"):
        (kits / name).mkdir(parents=True)
    ca = creds.ca_cert.read_text()
    done = credentials.issue_party_kits(creds, parties, kits, "https://syftbox:5001", ca, owner_uid=None)
    assert done == ["do1: issued a kit for do1@openmined.org", "ds: issued a kit for ds@openmined.org"]
    assert load_kit(kits / "ds" / "kit.json", "ds@openmined.org").email == "ds@openmined.org"
    assert load_kit(kits / "do1" / "kit.json", EMAIL).email == EMAIL
    again = credentials.issue_party_kits(creds, parties, kits, "https://syftbox:5001", ca, owner_uid=None)
    assert again == ["do1: kept the kit for do1@openmined.org", "ds: kept the kit for ds@openmined.org"]
    # a party whose email changed gets a new kit
    (parties / "do1.env").write_text("SYFTBOX_EMAIL=do1@hospital.org\n")
    changed = credentials.issue_party_kits(creds, parties, kits, "https://syftbox:5001", ca, owner_uid=None)
    assert "do1: issued a kit for do1@hospital.org" in changed


def test_a_kit_folder_without_settings_is_an_error(tmp_path, creds):
    (tmp_path / "kits" / "do9").mkdir(parents=True)
    (tmp_path / "parties").mkdir()
    with pytest.raises(KitError, match="no settings for party do9"):
        credentials.issue_party_kits(creds, tmp_path / "parties", tmp_path / "kits", "https://x:1", "", owner_uid=None)


def test_replacing_a_kit_revokes_the_earlier_ones(tmp_path):
    creds = credentials.ensure(tmp_path / "credentials")
    old = credentials.issue(creds, EMAIL, "https://syftbox:5001", creds.ca_cert.read_text())
    cut = credentials.replace(creds, EMAIL)
    new = credentials.issue(creds, EMAIL, "https://syftbox:5001", creds.ca_cert.read_text())
    assert creds.revoked()[EMAIL] == cut
    assert token_claims(old.access_token)["iat"] < cut <= token_claims(new.access_token)["iat"]
    assert isinstance(new, Kit)
