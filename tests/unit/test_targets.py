"""Targets: targets.toml and URL targets become Target objects, or one error listing every problem."""

import re
import tomllib
from pathlib import Path

import pytest

from mailconform.targets import (
    DEFAULT_CONNECTIONS_PER_SECOND, DEFAULT_MAX_CONNECTIONS, DEFAULT_PORTS, DEFAULT_TIMEOUT, Endpoint, TargetsError, load_targets, parse_targets, resolve_targets,
    target_from_url,
)

REPO_TARGETS = Path(__file__).resolve().parents[2] / "targets.toml"
NO_ENV: dict = {}

MINIMAL = """
[targets.lab]
host = "127.0.0.1"
[targets.lab.services]
smtp = 2525
"""


def parse(text, env=NO_ENV):
    return parse_targets(tomllib.loads(text), Path("/base"), "t.toml", env)


def errors_of(text):
    with pytest.raises(TargetsError) as caught:
        parse(text)
    return caught.value.errors


def lab(extra="", services='smtp = 25'):
    """A one-target file: the ``lab`` target with ``extra`` lines and a services table."""
    return f'[targets.lab]\nhost = "127.0.0.1"\n{extra}\n[targets.lab.services]\n{services}\n'


# --------------------------------------------------------------------------- good files

def test_repo_targets_file_loads_without_connecting(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("loading targets must not touch the network")
    monkeypatch.setattr("socket.create_connection", no_network)
    monkeypatch.setattr("socket.getaddrinfo", no_network)
    targets = load_targets(REPO_TARGETS, env={"EHU_USER": "me", "EHU_PASSWORD": "pw"})
    assert {"reference", "ehu", "alumno07"} <= set(targets)
    reference = targets["reference"]
    assert reference.services["smtp"] == Endpoint("127.0.10.2", 25)
    assert set(reference.services) == set(DEFAULT_PORTS)
    assert reference.dns == ("127.0.10.53", 53) and reference.source == "127.0.0.1"
    assert reference.tls.ca_file == REPO_TARGETS.parent / "fixtures/pki/ca.pem"
    assert targets["ehu"].services["pop3s"] == Endpoint("mailin.ehu.es", 995)
    assert targets["ehu"].account.user == "me" and targets["ehu"].account.password == "pw"
    assert targets["alumno07"].host == "192.168.56.107"


def test_minimal_file_gets_defaults():
    target = parse(MINIMAL)["lab"]
    assert target.services == {"smtp": Endpoint("127.0.0.1", 2525)}
    assert (target.timeout, target.intrusive, target.allow_cleartext_auth) == (DEFAULT_TIMEOUT, False, False)
    assert (target.account, target.dns, target.tls.ca_file, target.tls.verify) == (None, None, None, True)
    assert (target.max_connections, target.connections_per_second) == (DEFAULT_MAX_CONNECTIONS,
                                                                       DEFAULT_CONNECTIONS_PER_SECOND)


def test_a_target_sets_its_own_connection_budget():
    target = parse(lab("max_connections = 1\nconnections_per_second = 0.5"))["lab"]
    assert (target.max_connections, target.connections_per_second) == (1, 0.5)


def test_service_table_overrides_host_and_defaults_port():
    target = parse(lab(services='pop3s = { host = "127.0.0.9" }\nsmtp = { port = 2525 }'))["lab"]
    assert target.services == {"pop3s": Endpoint("127.0.0.9", 995), "smtp": Endpoint("127.0.0.1", 2525)}


@pytest.mark.parametrize("dns, parsed", [
    ("127.0.0.53", ("127.0.0.53", 53)),
    ("127.0.0.53:5353", ("127.0.0.53", 5353)),
    ("[::1]:5353", ("::1", 5353)),
    ("::1", ("::1", 53)),
])
def test_dns_resolver_address_with_optional_port(dns, parsed):
    assert parse(lab(f'dns = "{dns}"'))["lab"].dns == parsed


def test_ca_file_is_relative_to_the_targets_file(tmp_path):
    (tmp_path / "t.toml").write_text(lab(extra='[targets.lab.tls]\nca_file = "pki/ca.pem"'))
    assert load_targets(tmp_path / "t.toml", NO_ENV)["lab"].tls.ca_file == tmp_path / "pki/ca.pem"


# --------------------------------------------------------------------------- bad files, one problem each

@pytest.mark.parametrize("text, error", [
    ("colour = 1\n" + MINIMAL, "(top level).colour: unknown key"),
    (lab('colour = "red"'), "targets.lab.colour: unknown key"),
    (lab(services='smtp = { port = 25, tls = true }'), "targets.lab.services.smtp.tls: unknown key"),
    (lab('[targets.lab.tls]\ncafile = "x"'), "targets.lab.tls.cafile: unknown key"),
    (lab('[targets.lab.account]\nuser = "u"\npasswd = "x"'), "targets.lab.account.passwd: unknown key"),
    (lab(services='smtp = "abc"'), "targets.lab.services.smtp: expected a port 1-65535, got 'abc'"),
    (lab(services='smtp = 0'), "targets.lab.services.smtp: expected a port 1-65535, got 0"),
    (lab(services='smtp = 70000'), "targets.lab.services.smtp: expected a port 1-65535, got 70000"),
    (lab(services='smtp = true'), "targets.lab.services.smtp: expected a port 1-65535, got True"),
    (lab(services='smtp = { port = "x" }'), "targets.lab.services.smtp.port: expected a port 1-65535, got 'x'"),
    ('[targets.lab.services]\nsmtp = 25', "targets.lab.services.smtp: no host"),
    (lab(services='webmail = 443'), "targets.lab.services.webmail: unknown service"),
    (lab('dns = "resolver.example"'), "targets.lab.dns: expected an IP address"),
    (lab('dns = "127.0.0.1:99999"'), "targets.lab.dns: expected an IP address"),
    (lab('dns = "127.0.0.1:x"'), "targets.lab.dns: expected an IP address"),
    (lab('dns = 53'), "targets.lab.dns: expected str, got 53"),
    (lab('source = "me"'), "targets.lab.source: expected an IP address"),
    (lab('sender = "nobody"'), "targets.lab.sender: expected a mail address"),
    (lab('[targets.lab.account]\nuser = "u"\naddress = "alice"'),
     "targets.lab.account.address: expected a mail address"),
    (lab('[targets.lab.account]\nuser = "u"\npassword = "p"\npassword_env = "P"'),
     "targets.lab.account: give either password or password_env, not both"),
    (lab('[targets.lab.account]\npassword = "p"'), "targets.lab.account: give the account either user or user_env"),
    (lab('[targets.lab.account]\nuser = "u"\nuser_env = "U"'),
     "targets.lab.account: give the account either user or user_env"),
    (lab('timeout = 0'), "targets.lab.timeout: expected a positive number of seconds, got 0"),
    (lab('timeout = -1.5'), "targets.lab.timeout: expected a positive number of seconds, got -1.5"),
    (lab('timeout = "10"'), "targets.lab.timeout: expected int or float, got '10'"),
    (lab('delivery_wait = 0'), "targets.lab.delivery_wait: expected a positive number of seconds"),
    (lab('intrusive = "yes"'), "targets.lab.intrusive: expected bool, got 'yes'"),
    (lab('max_connections = 0'), "targets.lab.max_connections: expected at least 1 connection, got 0"),
    (lab('max_connections = 1.5'), "targets.lab.max_connections: expected int, got 1.5"),
    (lab('max_failed_logins = -1'), "targets.lab.max_failed_logins: expected at least 0 failed logins, got -1"),
    (lab('max_failed_logins = 21'), "targets.lab.max_failed_logins: expected 0 <= failed logins <= 20, got 21"),
    (lab('connections_per_second = 0'),
     "targets.lab.connections_per_second: expected a positive number of connections per second, got 0"),
    ('[targets.lab]\nhost = "127.0.0.1"\nservices = 25', "targets.lab.services: expected a table of services"),
    ('targets = 1', "targets: expected tables like [targets.NAME]"),
    ('[targets]\nlab = 1', "targets.lab: expected a table"),
])
def test_bad_value_is_reported_with_its_toml_path(text, error):
    errors = errors_of(text)
    assert len(errors) == 1, errors
    assert errors[0].startswith(error)


def test_invalid_toml_is_a_targets_error(tmp_path):
    path = tmp_path / "targets.toml"
    path.write_text("[targets.lab\nhost = ")
    with pytest.raises(TargetsError, match="not valid TOML") as caught:
        load_targets(path, NO_ENV)
    assert caught.value.source == str(path)


def test_missing_file_is_a_targets_error(tmp_path):
    with pytest.raises(TargetsError, match="file not found"):
        load_targets(tmp_path / "nowhere.toml", NO_ENV)


def test_junk_after_a_bracketed_address_is_refused():
    assert errors_of(lab('dns = "[::1]junk"'))


# --------------------------------------------------------------------------- every problem at once

def test_every_problem_is_reported_together_in_one_error():
    text = """
    colour = 1
    [targets.a]
    hots = "127.0.0.1"
    timeout = 0
    [targets.a.services]
    smtp = "abc"
    imap = 70000
    [targets.b]
    host = "127.0.0.1"
    dns = "nowhere"
    [targets.b.account]
    user = "u"
    password = "p"
    password_env = "P"
    """
    with pytest.raises(TargetsError) as caught:
        parse(text)
    problems = [": ".join(e.split(": ")[:2]) for e in caught.value.errors]
    assert problems == [
        "(top level).colour: unknown key (known",
        "targets.a.hots: unknown key (known",
        "targets.a.timeout: expected a positive number of seconds, got 0",
        "targets.a.services.smtp: expected a port 1-65535, got 'abc'",
        "targets.a.services.smtp: no host",          # the misspelt host leaves the services without one
        "targets.a.services.imap: expected a port 1-65535, got 70000",
        "targets.a.services.imap: no host",
        "targets.b.dns: expected an IP address with an optional port (\"127.0.0.1:53\"), got 'nowhere'",
        "targets.b.account: give either password or password_env, not both",
    ]
    message = str(caught.value)
    assert message.startswith("t.toml: 9 problem(s):")
    assert all(f"  - {e}" in message for e in caught.value.errors)


# --------------------------------------------------------------------------- secrets

ENV_ACCOUNT = lab('[targets.lab.account]\nuser_env = "LAB_USER"\npassword_env = "LAB_PW"\naddress = "u@lab.test"')


def test_user_env_and_password_env_come_from_the_given_environment():
    account = parse(ENV_ACCOUNT, env={"LAB_USER": "bob", "LAB_PW": "env-secret"})["lab"].account
    assert (account.user, account.password, account.missing_credentials) == ("bob", "env-secret", None)


@pytest.mark.parametrize("env, missing", [
    ({}, "LAB_USER (user_env) is not set"),
    ({"LAB_USER": "bob"}, "LAB_PW (password_env) is not set"),
])
def test_unset_variables_leave_the_account_unusable_with_a_reason(env, missing):
    assert missing in parse(ENV_ACCOUNT, env=env)["lab"].account.missing_credentials


@pytest.mark.parametrize("text, env", [
    (lab('[targets.lab.account]\nuser = "u"\npassword = "file-secret-123"'), NO_ENV),
    (ENV_ACCOUNT, {"LAB_USER": "bob", "LAB_PW": "file-secret-123"}),
])
def test_password_never_appears_in_the_repr(text, env):
    target = parse(text, env=env)["lab"]
    assert target.account.password == "file-secret-123"
    assert "file-secret-123" not in repr(target) and "file-secret-123" not in str(target.account)


# --------------------------------------------------------------------------- URL targets

@pytest.mark.parametrize("scheme, port", sorted(DEFAULT_PORTS.items()))
def test_url_target_has_one_service_on_its_default_port(scheme, port):
    target = target_from_url(f"{scheme}://127.0.0.1", env=NO_ENV)
    assert target.name == f"{scheme}://127.0.0.1"
    assert target.services == {scheme: Endpoint("127.0.0.1", port)}
    assert target.account is None


def test_url_target_with_port_user_and_password_from_the_environment():
    target = target_from_url("pop3s://bob@127.0.0.1:1995", env={"MAILCONFORM_PASSWORD": "url-secret"})
    assert target.services == {"pop3s": Endpoint("127.0.0.1", 1995)}
    assert (target.account.user, target.account.password) == ("bob", "url-secret")
    assert "url-secret" not in repr(target)


def test_url_target_trusts_the_ca_file_from_the_environment(tmp_path):
    ca = tmp_path / "lab-ca.pem"
    assert target_from_url("pop3s://127.0.0.1", env={"MAILCONFORM_CA_FILE": str(ca)}).tls.ca_file == ca
    assert target_from_url("pop3s://127.0.0.1", env={}).tls.ca_file is None


def test_url_target_with_ipv6_literal():
    endpoint = target_from_url("smtp://[::1]:2525", env=NO_ENV).services["smtp"]
    assert endpoint == Endpoint("::1", 2525)
    assert str(endpoint) == "[::1]:2525"


@pytest.mark.parametrize("url, problem", [
    ("smtp://bob:hunter2@127.0.0.1", "never put a password in a URL"),
    ("http://127.0.0.1", "unknown scheme 'http'"),
    ("smtp://", "no host"),
    ("smtp://127.0.0.1/inbox", "with nothing else after it"),
    ("mail://127.0.0.1:25", "mail:// takes no port"),
    ("mail://127.0.0.1?colour=red", "unknown URL parameter 'colour'"),
    ("smtp://127.0.0.1?pop3=110", "?pop3= names a port of a mail:// URL"),
    ("mail://127.0.0.1?smtp=0", "?smtp= expects a port 1-65535"),
    ("mail://127.0.0.1?intrusive=maybe", "?intrusive= expects yes or no"),
    ("mail://127.0.0.1?dns=resolver", "?dns= expects an IP address"),
    ("smtp://127.0.0.1+pop3://127.0.0.2", "joined URLs name one host, not 2"),
    ("smtp://alice@h+pop3://bob@h", "joined URLs name one user, not 2"),
    ("smtp://127.0.0.1:99999", "not a valid URL"),
    ("smtp://127.0.0.1:abc", "not a valid URL"),
])
def test_bad_url_is_refused(url, problem):
    with pytest.raises(TargetsError, match=re.escape(problem)) as caught:
        target_from_url(url, env=NO_ENV)
    assert "hunter2" not in repr(caught.value.errors) and "hunter2" not in str(caught.value)


def test_a_whole_server_url_names_the_seven_standard_services_to_look_at():
    target = target_from_url("mail://alice@192.0.2.7", env={"MAILCONFORM_PASSWORD": "pw"})
    assert target.discover and dict(target.services) == {s: Endpoint("192.0.2.7", p) for s, p in DEFAULT_PORTS.items()}
    assert target.intrusive and "intrusive: on, since the URL names a user (alice)" in target.notes[0]
    assert (target.account.user, target.account.address) == ("alice", None)  # the domain comes from the greeting


def test_url_parameters_set_what_a_targets_file_would():
    target = target_from_url("mail://alice@h?smtp=2525&pop3=1100&domain=lab.test&dns=127.0.0.1:5353&intrusive=no",
                             env={"MAILCONFORM_PASSWORD": "pw"})
    assert dict(target.services) == {"smtp": Endpoint("h", 2525), "pop3": Endpoint("h", 1100)}
    assert (target.domain, target.dns, target.intrusive, target.notes) == ("lab.test", ("127.0.0.1", 5353), False, ())
    assert target.account.address == target.sender == "alice@lab.test"


def test_joined_urls_make_one_target_of_one_host_and_one_account():
    target = target_from_url("smtp://h:2525+pop3s://alice@h?domain=lab.test", env={"MAILCONFORM_PASSWORD": "pw"})
    assert dict(target.services) == {"smtp": Endpoint("h", 2525), "pop3s": Endpoint("h", 995)}
    assert (target.account.user, target.account.address, target.intrusive, target.discover) == (
        "alice", "alice@lab.test", True, False)


def test_a_user_in_a_single_service_url_is_the_account():
    target = target_from_url("smtp://alice@h?domain=lab.test", env={"MAILCONFORM_PASSWORD": "pw"})
    assert (target.account.user, target.account.address, target.intrusive) == ("alice", "alice@lab.test", False)


def test_url_with_port_zero_is_refused():
    with pytest.raises(TargetsError):
        target_from_url("smtp://127.0.0.1:0", env=NO_ENV)


# --------------------------------------------------------------------------- resolve_targets

@pytest.fixture
def targets_file(tmp_path):
    path = tmp_path / "targets.toml"
    path.write_text(MINIMAL + '[targets.other]\nhost = "127.0.0.2"\n[targets.other.services]\npop3 = 110\n')
    return path


def names(targets):
    return [t.name for t in targets]


@pytest.mark.parametrize("specs, expected", [
    (["lab"], ["lab"]),
    (["other", "lab"], ["other", "lab"]),
    (["lab,other"], ["lab", "other"]),
    ([" lab , smtp://127.0.0.1:2525 ,"], ["lab", "smtp://127.0.0.1:2525"]),
    (["lab", "lab,lab"], ["lab"]),
    ([], []),
])
def test_resolve_names_urls_and_comma_lists_in_order(targets_file, specs, expected):
    assert names(resolve_targets(specs, targets_file, env=NO_ENV)) == expected


def test_urls_alone_do_not_read_the_targets_file(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("not toml [")
    assert names(resolve_targets(["imap://127.0.0.1"], broken, env=NO_ENV)) == ["imap://127.0.0.1"]


def test_unknown_name_lists_the_known_ones(targets_file):
    with pytest.raises(TargetsError, match=r"unknown target 'nope' \(known: lab, other;"):
        resolve_targets(["lab", "nope"], targets_file, env=NO_ENV)


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_timeout_must_be_a_finite_number(value):
    errors = errors_of(f'[targets.lab]\nhost = "127.0.0.1"\ntimeout = {value}\n')
    assert errors == [f"targets.lab.timeout: expected a positive number of seconds, got {float(value)!r}"]


def test_probes_are_sent_from_the_account_address_unless_a_sender_is_given():
    base = '[targets.lab]\nhost = "127.0.0.1"\n'
    account = '[targets.lab.account]\nuser = "u"\npassword = "p"\naddress = "u@lab.test"\n'
    assert parse_targets(tomllib.loads(base + account), Path("."))["lab"].sender == "u@lab.test"
    assert parse_targets(tomllib.loads(base + 'sender = "g@x.test"\n' + account), Path("."))["lab"].sender == "g@x.test"
    assert parse_targets(tomllib.loads(base), Path("."))["lab"].sender == "mailconform@example.com"
