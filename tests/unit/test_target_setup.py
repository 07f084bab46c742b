"""The grader's set-up of the selected targets is checked before any connection, and no error shows a secret.

``resolve_targets`` (what ``--target`` goes through) reports every unset ``user_env``/``password_env``/
``MAILCONFORM_PASSWORD``, every unusable ``tls.ca_file``/``MAILCONFORM_CA_FILE`` and every password in a
URL at once, in one :class:`TargetsError`; parsing a file alone (``load_targets``) still accepts unset
variables, so tools can read ``targets.toml`` anywhere."""

import datetime
import tomllib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailconform import targets as targets_module
from mailconform.targets import TargetsError, load_targets, parse_targets, redact_url, resolve_targets, target_from_url

REPO_TARGETS = Path(__file__).resolve().parents[2] / "targets.toml"
NO_ENV: dict = {}
SECRET = "Tr0ub4dor&3"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("checking the set-up must not touch the network")
    monkeypatch.setattr("socket.create_connection", refuse)
    monkeypatch.setattr("socket.getaddrinfo", refuse)


@pytest.fixture(scope="module")
def certificate():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "set-up test CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))


@pytest.fixture
def pem(tmp_path, certificate):
    path = tmp_path / "ca.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def write_targets(tmp_path, text):
    path = tmp_path / "targets.toml"
    path.write_text(text)
    return path


ENV_ACCOUNT = """
[targets.lab]
host = "127.0.0.1"
[targets.lab.services]
pop3 = 110
[targets.lab.account]
user_env = "LAB_USER"
password_env = "LAB_PW"
"""

OTHER = """
[targets.other]
host = "127.0.0.2"
[targets.other.services]
smtp = 25
"""


def problems(specs, targets_file, env):
    with pytest.raises(TargetsError) as caught:
        resolve_targets(specs, targets_file, env=env)
    return caught.value


# --------------------------------------------------------------------------- unset variables

def test_unset_user_env_and_password_env_are_both_reported(tmp_path):
    path = write_targets(tmp_path, ENV_ACCOUNT)
    error = problems(["lab"], path, NO_ENV)
    assert error.source == str(path)
    assert error.errors == [
        "targets.lab.account.user_env: the environment variable LAB_USER is not set (export it before running)",
        "targets.lab.account.password_env: the environment variable LAB_PW is not set (export it before running)",
    ]
    assert str(error).startswith(f"{path}: 2 problem(s):")


def test_an_empty_variable_counts_as_unset(tmp_path):
    error = problems(["lab"], write_targets(tmp_path, ENV_ACCOUNT), {"LAB_USER": "bob", "LAB_PW": ""})
    assert error.errors == [
        "targets.lab.account.password_env: the environment variable LAB_PW is empty (export it before running)"]


def test_set_variables_resolve(tmp_path):
    [target] = resolve_targets(["lab"], write_targets(tmp_path, ENV_ACCOUNT), env={"LAB_USER": "bob", "LAB_PW": SECRET})
    assert (target.account.user, target.account.password) == ("bob", SECRET)


def test_parsing_alone_accepts_unset_and_empty_variables(tmp_path):
    account = load_targets(write_targets(tmp_path, ENV_ACCOUNT), {"LAB_PW": ""})["lab"].account
    assert (account.user, account.password) == (None, None)
    assert "LAB_USER (user_env) is not set" in account.missing_credentials


def test_only_the_selected_targets_are_checked(tmp_path):
    path = write_targets(tmp_path, ENV_ACCOUNT + OTHER)
    assert [t.name for t in resolve_targets(["other"], path, env=NO_ENV)] == ["other"]


def test_the_repo_file_ehu_target_needs_its_variables_but_the_reference_does_not():
    assert load_targets(REPO_TARGETS, NO_ENV)["ehu"].account.user is None   # tools still parse it
    assert [t.name for t in resolve_targets(["reference"], REPO_TARGETS, env=NO_ENV)] == ["reference"]
    error = problems(["ehu"], REPO_TARGETS, {"EHU_USER": "me"})
    assert error.errors == [
        "targets.ehu.account.password_env: the environment variable EHU_PASSWORD is not set (export it before running)"]


def test_an_account_with_no_password_at_all_is_left_to_missing_credentials(tmp_path):
    text = '[targets.lab]\nhost = "127.0.0.1"\n[targets.lab.services]\npop3 = 110\n[targets.lab.account]\nuser = "u"\n'
    [target] = resolve_targets(["lab"], write_targets(tmp_path, text), env=NO_ENV)
    assert "no password" in target.account.missing_credentials


# --------------------------------------------------------------------------- CA files

def lab_with_ca(ca_file):
    return f'[targets.lab]\nhost = "127.0.0.1"\n[targets.lab.services]\nsmtp = 25\n[targets.lab.tls]\nca_file = "{ca_file}"\n'


def test_a_pem_ca_file_is_accepted(tmp_path, pem):
    [target] = resolve_targets(["lab"], write_targets(tmp_path, lab_with_ca(pem.name)), env=NO_ENV)
    assert target.tls.ca_file == pem


def test_a_ca_file_with_text_and_a_key_around_the_certificate_is_accepted(tmp_path, pem):
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    pem.write_bytes(b"Subject: the lab CA\n" + key + pem.read_bytes())
    assert resolve_targets(["lab"], write_targets(tmp_path, lab_with_ca(pem.name)), env=NO_ENV)


@pytest.mark.parametrize("make, problem", [
    (lambda d, cert: None, "does not exist"),
    (lambda d, cert: (d / "ca.pem").mkdir(), "is not a file"),
    (lambda d, cert: (d / "ca.pem").write_text(""), "is not a certificate (expected PEM: -----BEGIN CERTIFICATE-----)"),
    (lambda d, cert: (d / "ca.pem").write_text("hello, I am not a certificate\n"), "is not a certificate"),
    (lambda d, cert: (d / "ca.pem").write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
     "is not a certificate"),
    (lambda d, cert: (d / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.DER)),
     "is a DER certificate, but the suite reads PEM: convert it with openssl x509 -inform der"),
    (lambda d, cert: (d / "ca.der").write_bytes(cert.public_bytes(serialization.Encoding.DER)),
     "is a DER certificate, but the suite reads PEM: convert it with openssl x509 -inform der"),
])
def test_an_unusable_ca_file_is_reported_with_its_toml_path(tmp_path, certificate, make, problem):
    make(tmp_path, certificate)
    name = "ca.der" if (tmp_path / "ca.der").exists() else "ca.pem"
    error = problems(["lab"], write_targets(tmp_path, lab_with_ca(name)), NO_ENV)
    assert len(error.errors) == 1, error.errors
    assert error.errors[0].startswith(f"targets.lab.tls.ca_file: {tmp_path / name} {problem}")


@pytest.mark.parametrize("name, converted", [("ca.der", "ca.pem"), ("ca.pem", "ca-converted.pem")])
def test_a_der_ca_file_comes_with_the_command_that_converts_it(tmp_path, certificate, name, converted):
    """ssl's cafile= reads PEM only: a DER trust anchor would fail at the first TLS connection."""
    (tmp_path / name).write_bytes(certificate.public_bytes(serialization.Encoding.DER))
    error = problems(["lab"], write_targets(tmp_path, lab_with_ca(name)), NO_ENV)
    assert error.errors[0].endswith(f"-in {tmp_path / name} -out {tmp_path / converted} and use {tmp_path / converted}")


def test_a_file_that_parses_to_no_certificate_is_reported(tmp_path, pem, monkeypatch):
    monkeypatch.setattr(targets_module.x509, "load_pem_x509_certificates", lambda data: [])
    error = problems(["lab"], write_targets(tmp_path, lab_with_ca(pem.name)), NO_ENV)
    assert error.errors == [f"targets.lab.tls.ca_file: {pem} holds no certificate"]


def test_an_unreadable_ca_file_is_reported(tmp_path, pem, monkeypatch):
    def denied(self):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(Path, "read_bytes", denied)
    error = problems(["lab"], write_targets(tmp_path, lab_with_ca(pem.name)), NO_ENV)
    assert error.errors == [f"targets.lab.tls.ca_file: {pem} cannot be read (Permission denied)"]


# --------------------------------------------------------------------------- URL targets

def test_a_url_naming_a_user_needs_mailconform_password(tmp_path):
    error = problems(["pop3s://alice@127.0.0.1"], tmp_path / "absent.toml", NO_ENV)
    assert error.source == "--target"
    assert error.errors == [
        "pop3s://alice@127.0.0.1: the environment variable MAILCONFORM_PASSWORD is not set (export it before "
        "running: it holds the password of 'alice', the user the URL names)"]
    [target] = resolve_targets(["pop3s://alice@127.0.0.1"], tmp_path / "absent.toml", env={"MAILCONFORM_PASSWORD": SECRET})
    assert target.account.password == SECRET


def test_a_url_without_a_user_needs_no_password(tmp_path):
    assert resolve_targets(["pop3s://127.0.0.1"], tmp_path / "absent.toml", env=NO_ENV)


def test_mailconform_ca_file_is_checked_for_url_targets(tmp_path, pem):
    missing = tmp_path / "nowhere.pem"
    error = problems(["pop3s://127.0.0.1"], tmp_path / "absent.toml", {"MAILCONFORM_CA_FILE": str(missing)})
    assert error.errors == [f"pop3s://127.0.0.1: MAILCONFORM_CA_FILE={missing} does not exist"]
    [target] = resolve_targets(["pop3s://127.0.0.1"], tmp_path / "absent.toml", env={"MAILCONFORM_CA_FILE": str(pem)})
    assert target.tls.ca_file == pem


# --------------------------------------------------------------------------- every problem at once

def test_every_set_up_problem_of_every_selected_target_comes_in_one_error(tmp_path):
    path = write_targets(tmp_path, ENV_ACCOUNT + lab_with_ca("missing.pem").replace("targets.lab", "targets.tls"))
    error = problems(["lab,tls", "nope", f"pop3://alice:{SECRET}@127.0.0.1", "imaps://bob@127.0.0.1", "lab"], path,
                     {"MAILCONFORM_CA_FILE": str(tmp_path / "gone.pem")})
    assert error.source == str(path)
    assert error.errors == [
        "targets.lab.account.user_env: the environment variable LAB_USER is not set (export it before running)",
        "targets.lab.account.password_env: the environment variable LAB_PW is not set (export it before running)",
        f"targets.tls.tls.ca_file: {tmp_path / 'missing.pem'} does not exist",
        "unknown target 'nope' (known: lab, tls; or give a URL like smtp://host)",
        "pop3://alice:***@127.0.0.1: never put a password in a URL; set MAILCONFORM_PASSWORD instead",
        "imaps://bob@127.0.0.1: the environment variable MAILCONFORM_PASSWORD is not set (export it before "
        "running: it holds the password of 'bob', the user the URL names)",
        f"imaps://bob@127.0.0.1: MAILCONFORM_CA_FILE={tmp_path / 'gone.pem'} does not exist",
    ]
    assert SECRET not in str(error)


def test_a_broken_targets_file_is_still_reported_as_such(tmp_path):
    path = write_targets(tmp_path, "[targets.lab\n")
    with pytest.raises(TargetsError, match="not valid TOML"):
        resolve_targets(["lab", "pop3s://alice@127.0.0.1"], path, env=NO_ENV)


# --------------------------------------------------------------------------- no secret is ever echoed

@pytest.mark.parametrize("password", ["hunter2", "p@ss@word", "se,cret", "pa/ss", "x:y", "q?r#s", "b%40c"])
def test_a_password_in_a_url_is_refused_and_never_shown(tmp_path, password):
    url = f"pop3://alice:{password}@127.0.0.1:1110"
    for raise_it in (lambda: target_from_url(url, env=NO_ENV),
                     lambda: resolve_targets([url], tmp_path / "absent.toml", env=NO_ENV),
                     lambda: resolve_targets([f"lab,{url},smtp://127.0.0.1"], write_targets(tmp_path, OTHER), env=NO_ENV)):
        with pytest.raises(TargetsError) as caught:
            raise_it()
        shown = str(caught.value) + repr(caught.value.errors) + caught.value.source
        assert password not in shown
        assert "pop3://alice:***@127.0.0.1:1110" in shown
        assert any("never put a password in a URL" in e for e in caught.value.errors)


@pytest.mark.parametrize("url", ["pop3://alice:hunter2@127.0.0.1:abc", "pop3://alice:hunter2@[::1", "pop3://alice:hun:ter2@h/x",
                                 "pop3://alice:hun://ter2@127.0.0.1"])
def test_a_password_in_an_otherwise_broken_url_is_not_shown_either(url):
    with pytest.raises(TargetsError) as caught:
        target_from_url(url, env=NO_ENV)
    assert "hunter2" not in str(caught.value) and "ter2" not in str(caught.value)
    assert any("never put a password in a URL" in e for e in caught.value.errors)


@pytest.mark.parametrize("text, shown", [
    ("pop3://alice:SECRET@host", "pop3://alice:***@host"),
    ("pop3://alice@host", "pop3://alice@host"),
    ("smtp://host:25", "smtp://host:25"),
    ("smtp://bob:@host", "smtp://bob:@host"),
    ("smtp://a:b@h1,pop3://c:d@h2,lab", "smtp://a:***@h1,pop3://c:***@h2,lab"),
    ("lab", "lab"),
    ("pop3://alice:Se://cret@127.0.0.1", "pop3://alice:***@127.0.0.1"),
    ("smtp://h, pop3s://bob:x@y@h", "smtp://h, pop3s://bob:***@h"),
])
def test_redact_url(text, shown):
    assert redact_url(text) == shown


def account_errors(account_lines):
    text = f'[targets.lab]\nhost = "127.0.0.1"\n[targets.lab.account]\nuser = "u"\n{account_lines}\n'
    with pytest.raises(TargetsError) as caught:
        parse_targets(tomllib.loads(text), Path("/base"), "t.toml", NO_ENV)
    return caught.value


@pytest.mark.parametrize("line, expected, secret", [
    ("password = 1234", "targets.lab.account.password: expected str, got int (value hidden)", "1234"),
    ("password = [\"Tr0ub4dor\"]", "targets.lab.account.password: expected str, got list (value hidden)", "Tr0ub4dor"),
    ("password_env = 987654", "targets.lab.account.password_env: expected str, got int (value hidden)", "987654"),
    (f'password_env = "{SECRET}"',
     "targets.lab.account.password_env: password_env must name an environment variable, not hold the password", SECRET),
    ('password_env = "hunter 2"',
     "targets.lab.account.password_env: password_env must name an environment variable, not hold the password", "hunter 2"),
    ('password_env = "9LIVES"',
     "targets.lab.account.password_env: password_env must name an environment variable, not hold the password", "9LIVES"),
])
def test_a_wrong_password_value_is_never_echoed(line, expected, secret):
    error = account_errors(line)
    assert len(error.errors) == 1 and error.errors[0].startswith(expected), error.errors
    assert secret not in str(error)


def test_an_account_that_is_not_a_table_is_not_echoed():
    text = '[targets.lab]\nhost = "127.0.0.1"\naccount = "alice:hunter2"\n'
    with pytest.raises(TargetsError) as caught:
        parse_targets(tomllib.loads(text), Path("/base"), "t.toml", NO_ENV)
    assert caught.value.errors == ["targets.lab.account: expected a table, got str (value hidden)"]


@pytest.mark.parametrize("name", ["LAB_PW", "_x", "a1", "EHU_PASSWORD"])
def test_a_password_env_naming_a_variable_is_accepted(name):
    text = f'[targets.lab]\nhost = "127.0.0.1"\n[targets.lab.account]\nuser = "u"\npassword_env = "{name}"\n'
    account = parse_targets(tomllib.loads(text), Path("/base"), "t.toml", {name: SECRET})["lab"].account
    assert account.password == SECRET
