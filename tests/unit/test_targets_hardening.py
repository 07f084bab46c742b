"""A targets file as a new user writes it: every mistake is a TargetsError naming its TOML path,
never an uncaught exception, and values that are fine are read as meant."""

import errno
import json
import tomllib
from pathlib import Path

import pytest

from mailconform.targets import (
    MAX_FILE_BYTES, Account, Endpoint, TargetsError, load_targets, parse_targets, resolve_targets, target_from_url,
    Target, target_table,
)
from mailconform.targets import _named_setup_problems

NO_ENV: dict = {}
NAME_RULE = "a target name may hold only letters, digits, '.', '_' and '-' (it is what --target selects)"


def parse(text, base_dir=Path("/base")):
    return parse_targets(tomllib.loads(text), base_dir, "t.toml", NO_ENV)


def errors_of(text, base_dir=Path("/base")):
    with pytest.raises(TargetsError) as caught:
        parse(text, base_dir)
    return caught.value.errors


def lab(extra="", services="smtp = 25", host='"127.0.0.1"'):
    """A one-target file: the ``lab`` target with ``extra`` lines and a services table."""
    return f"[targets.lab]\nhost = {host}\n{extra}\n[targets.lab.services]\n{services}\n"


def toml_string(text):
    """``text`` as a TOML basic string, every control character escaped."""
    return json.dumps(text)


def file_errors(tmp_path, content: bytes):
    path = tmp_path / "targets.toml"
    path.write_bytes(content)
    with pytest.raises(TargetsError) as caught:
        load_targets(path, NO_ENV)
    assert caught.value.source == str(path)
    return caught.value.errors


# --------------------------------------------------------------------------- the file itself

@pytest.mark.parametrize("content, error", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "cannot be read as UTF-8 text"),
    ('[targets.lab]\nhost = "caf\u00e9"\n'.encode("latin-1"), "cannot be read as UTF-8 text"),
    (b"\x00" * 64, "not valid TOML: Invalid statement"),
    (b"a = " + b"[" * 100_000 + b"]" * 100_000, "not valid TOML: nested too deeply (more than 32 levels)"),
    (b"a = " + b"{b = " * 10_000 + b"1" + b"}" * 10_000, "not valid TOML: nested too deeply"),
    (b"[" + b"a." * 1_000 + b"b]", "not valid TOML: nested too deeply"),
    (b"a" + b".a" * 5_000 + b" = 1", "not valid TOML: nested too deeply"),  # tomllib: quadratic in the key
    (b"timeout = " + b"1" * 5_000, "not valid TOML: Exceeds the limit (4300 digits)"),
])
def test_a_file_that_is_not_a_targets_file_is_one_clean_error(tmp_path, content, error):
    errors = file_errors(tmp_path, content)
    assert len(errors) == 1 and errors[0].startswith(error), errors


def test_a_long_dotted_key_is_refused_before_tomllib_spends_gigabytes_on_it(tmp_path, monkeypatch):
    def parse_nothing(text):
        raise AssertionError("tomllib was given the file")
    monkeypatch.setattr("mailconform.targets.tomllib.loads", parse_nothing)
    assert file_errors(tmp_path, b"a" + b".a" * 30_000 + b" = 1") == [
        "not valid TOML: nested too deeply (more than 32 levels)"]


def test_a_file_larger_than_one_mib_is_refused_unread(tmp_path):
    errors = file_errors(tmp_path, b"# padding\n" * (MAX_FILE_BYTES // 10 + 1))
    assert errors == ["is larger than 1 MiB: too large for a settings file, so it was not read"]


def test_a_file_of_exactly_one_mib_is_read(tmp_path):
    text = lab().encode()
    path = tmp_path / "targets.toml"
    path.write_bytes(text + b"#" * (MAX_FILE_BYTES - len(text)))
    assert load_targets(path, NO_ENV)["lab"].host == "127.0.0.1"


def test_a_directory_is_still_said_to_be_one(tmp_path):
    with pytest.raises(TargetsError, match="is a directory, not a file"):
        load_targets(tmp_path, NO_ENV)


def test_a_byte_order_mark_as_windows_editors_write_is_allowed(tmp_path):
    path = tmp_path / "targets.toml"
    path.write_bytes(b"\xef\xbb\xbf" + lab().replace("\n", "\r\n").encode())
    assert load_targets(path, NO_ENV)["lab"].services == {"smtp": Endpoint("127.0.0.1", 25)}


@pytest.mark.parametrize("raised, error", [
    (OSError(errno.EIO, "Input/output error"), "cannot be read (Input/output error)"),
    (UnicodeEncodeError("utf-8", "Tr0ub4dor\udcff", 9, 10, "surrogates not allowed"),
     "cannot be read: not UTF-8 (UnicodeEncodeError)"),
    (RecursionError("maximum recursion depth exceeded"), "cannot be read: nested too deeply"),
    (TypeError("'<' not supported for 'Tr0ub4dor'"), "cannot be loaded: TypeError in test_targets_hardening.py, line"),
    (KeyError("Tr0ub4dor"), "cannot be loaded: KeyError in test_targets_hardening.py, line"),
])
def test_an_error_no_check_foresaw_is_one_line_naming_the_file_and_quoting_nothing(tmp_path, monkeypatch, raised,
                                                                                    error):
    def parse_badly(*args):
        raise raised
    monkeypatch.setattr("mailconform.targets.parse_targets_file", parse_badly)
    [found] = file_errors(tmp_path, lab().encode())
    assert found.startswith(error) and "\n" not in found and "Tr0ub4dor" not in found, found


def test_a_ca_file_name_too_long_for_the_system_is_a_setup_problem(tmp_path):
    path = tmp_path / "targets.toml"
    path.write_text(lab(f'[targets.lab.tls]\nca_file = "{"a" * 5_000}.pem"'))
    with pytest.raises(TargetsError) as caught:
        resolve_targets(["lab"], path, NO_ENV)
    [error] = caught.value.errors
    assert error == f"targets.lab.tls.ca_file: {tmp_path / ('a' * 5_000)}.pem cannot be read (File name too long)"


# --------------------------------------------------------------------------- numbers in range

@pytest.mark.parametrize("line, error", [
    ("timeout = 1e10", "targets.lab.timeout: expected 0 < seconds <= 300, got 10000000000.0"),
    ("timeout = 301", "targets.lab.timeout: expected 0 < seconds <= 300, got 301"),
    ("timeout = 99999999999999999999999",
     "targets.lab.timeout: expected 0 < seconds <= 300, got 99999999999999999999999"),
    ("timeout = -inf", "targets.lab.timeout: expected a positive number of seconds, got -inf"),
    ("delivery_wait = 600.5", "targets.lab.delivery_wait: expected 0 < seconds <= 600, got 600.5"),
    ("delivery_wait = nan", "targets.lab.delivery_wait: expected a positive number of seconds, got nan"),
    ("connections_per_second = 1e4",
     "targets.lab.connections_per_second: expected 0 < connections per second <= 1000, got 10000.0"),
    ("connections_per_second = inf",
     "targets.lab.connections_per_second: expected a positive number of connections per second, got inf"),
    ("max_connections = 101", "targets.lab.max_connections: expected 1 <= connections <= 100, got 101"),
    ("max_connections = -1", "targets.lab.max_connections: expected at least 1 connection, got -1"),
])
def test_timeouts_waits_and_budgets_have_a_sane_range(line, error):
    assert errors_of(lab(line)) == [error]


def test_the_largest_values_are_accepted():
    limits = "timeout = 300\ndelivery_wait = 600\nconnections_per_second = 1000\nmax_connections = 100"
    target = parse(lab(limits))["lab"]
    assert (target.timeout, target.delivery_wait, target.connections_per_second, target.max_connections) == (
        300.0, 600.0, 1000.0, 100)


def test_a_roster_cell_is_held_to_the_same_range(tmp_path):
    (tmp_path / "clase.csv").write_text("name,timeout\na1,1e10\n")
    text = ('[templates.t]\nhost = "127.0.0.1"\n[templates.t.services]\nsmtp = 25\n'
            '[rosters.clase]\nfile = "clase.csv"\ntemplate = "t"\n')
    assert errors_of(text, tmp_path) == [
        "clase.csv, line 2 (a1).timeout: expected 0 < seconds <= 300, got 10000000000.0"]


# --------------------------------------------------------------------------- hosts

@pytest.mark.parametrize("host, stored", [
    ("mail.example.com", "mail.example.com"),
    ("mail.example.com.", "mail.example.com."),
    ("localhost", "localhost"),
    ("xn--espaa-rta.example", "xn--espaa-rta.example"),
    ("a" * 63 + ".test", "a" * 63 + ".test"),
    ("192.168.56.107", "192.168.56.107"),
    ("::1", "::1"),
    ("[::1]", "::1"),
    ("[2001:db8::25]", "2001:db8::25"),
    ("fe80::1%eth0", "fe80::1%eth0"),
])
def test_a_host_name_or_an_ip_address_is_accepted(host, stored):
    target = parse(lab(host=f'"{host}"', services='smtp = 25\npop3 = { host = "%s" }' % host))["lab"]
    assert target.host == stored
    assert target.services == {"smtp": Endpoint(stored, 25), "pop3": Endpoint(stored, 110)}


@pytest.mark.parametrize("host", [
    "my server", "mail.example.com\n", "a\x1bb", "", ".", "host:25", "127.0.0.1:25", "[::1]:25",
    "smtp://mail.example.com", "mail.example.com/", "-mail.example.com", "mail-.example.com", "mail..example.com",
    "mail server", "a" * 64 + ".test", "a." * 127 + "test", "192.168.1.300", "[127.0.0.1]", "[::1", "fe80::1%a b",
])
def test_a_host_that_is_neither_is_refused_with_its_value_escaped(host):
    errors = errors_of(lab(host=toml_string(host)))
    assert errors == [f"targets.lab.host: expected a host name or an IP address, got {host!r}"]


def test_a_wrong_host_is_reported_once_not_again_by_every_service():
    assert errors_of(lab(host='"my server"', services="smtp = 25\npop3 = 110")) == [
        "targets.lab.host: expected a host name or an IP address, got 'my server'"]


@pytest.mark.parametrize("table, error", [
    ('[targets.lab.services]\nsmtp = { host = "my server" }',
     "targets.lab.services.smtp.host: expected a host name or an IP address, got 'my server'"),
    ('[targets.lab.tls]\nserver_name = "mail example"',
     "targets.lab.tls.server_name: expected a host name or an IP address, got 'mail example'"),
    ('[targets.lab.tls]\nca_file = "ca\\u0000.pem"',
     "targets.lab.tls.ca_file: expected a file name, got 'ca\\x00.pem'"),
])
def test_a_service_host_a_tls_name_and_a_ca_file_are_checked_too(table, error):
    assert errors_of(f'[targets.lab]\n{table}\n') == [error]


def test_a_url_host_is_checked_like_a_file_host():
    with pytest.raises(TargetsError) as caught:
        target_from_url("smtp://mail-.example.com", env=NO_ENV)
    assert caught.value.errors == ["expected a host name or an IP address, got 'mail-.example.com'"]


def test_an_underscore_is_taken_as_the_system_resolver_takes_it():
    assert parse(lab(host='"mail_server"', services="smtp = 25"))["lab"].host == "mail_server"


@pytest.mark.parametrize("source, stored", [("192.168.56.1", "192.168.56.1"), ("::1", "::1"), ("[::1]", "::1")])
def test_source_is_an_ip_address_with_or_without_brackets(source, stored):
    assert parse(lab(f'source = "{source}"'))["lab"].source == stored


@pytest.mark.parametrize("source", ["127.0.0.1:5000", "[::1]:5000", "localhost", "[127.0.0.1]", ""])
def test_source_is_nothing_but_an_ip_address(source):
    assert errors_of(lab(f'source = "{source}"')) == [f"targets.lab.source: expected an IP address, got {source!r}"]


# --------------------------------------------------------------------------- endpoints and resolvers

@pytest.mark.parametrize("endpoint, shown", [
    (Endpoint("::1", 1100), "[::1]:1100"),
    (Endpoint("2001:db8::25", 25), "[2001:db8::25]:25"),
    (Endpoint("127.0.0.1", 25), "127.0.0.1:25"),
    (Endpoint("mail.example.com", 587), "mail.example.com:587"),
])
def test_an_endpoint_prints_ipv6_in_brackets(endpoint, shown):
    assert str(endpoint) == shown


def test_a_bracketed_service_host_prints_once_bracketed():
    target = parse(lab(services='pop3 = { host = "[::1]", port = 1100 }'))["lab"]
    assert str(target.services["pop3"]) == "[::1]:1100" and target.summary() == "lab: pop3=[::1]:1100"


@pytest.mark.parametrize("dns, parsed", [
    ("::1", ("::1", 53)),
    ("fe80::1", ("fe80::1", 53)),
    ("[::1]:5353", ("::1", 5353)),
    ("[::1:5353]", ("::1:5353", 53)),
    ("127.0.0.1:5353", ("127.0.0.1", 5353)),
])
def test_a_resolver_port_is_read_only_where_it_cannot_be_part_of_the_address(dns, parsed):
    assert parse(lab(f'dns = "{dns}"'))["lab"].dns == parsed


def test_an_ipv6_resolver_ending_like_a_port_asks_for_brackets():
    assert errors_of(lab('dns = "::1:5353"')) == [
        "targets.lab.dns: write an IPv6 resolver with a port as [::1]:5353 (unbracketed, '::1:5353' is read as one "
        "IPv6 address: write [::1:5353] if that is what you mean)"]
    with pytest.raises(TargetsError, match=r"\?dns= write an IPv6 resolver with a port as \[::1\]:5353"):
        target_from_url("mail://127.0.0.1?dns=::1:5353", env=NO_ENV)


@pytest.mark.parametrize("dns", ["1:2:3", "[127.0.0.1]:53", "127.0.0.1:", "[::1]:", "127.0.0.1:+53",
                                 "127.0.0.1:\u0665\u0663", "127.0.0.1:5 3", "::1\n"])
def test_a_malformed_resolver_is_refused(dns):
    assert errors_of(lab(f"dns = {toml_string(dns)}")) == [
        f'targets.lab.dns: expected an IP address with an optional port ("127.0.0.1:53"), got {dns!r}']


def test_a_huge_port_in_a_url_parameter_is_a_clean_error():
    with pytest.raises(TargetsError, match=r"\?smtp= expects a port 1-65535"):
        target_from_url("mail://127.0.0.1?smtp=" + "1" * 5_000, env=NO_ENV)


# --------------------------------------------------------------------------- names --target can select

@pytest.mark.parametrize("name", ["alumno07", "alumno.07", "clase_b", "a-1", "alumno-ñ", "_x"])
def test_a_name_of_letters_digits_dots_underscores_and_hyphens_is_accepted(name):
    assert name in parse(f'[targets."{name}"]\nhost = "127.0.0.1"\n')


@pytest.mark.parametrize("name, path", [
    ("my server", 'targets."my server"'),
    ("a,b", 'targets."a,b"'),
    ("smtp://x", 'targets."smtp://x"'),
    ("-x", "targets.-x"),
    (".x", 'targets.".x"'),
    ("", 'targets.""'),
    ("a\nb", 'targets."a\\nb"'),
    ("a\u202eb", 'targets."a\\u202eb"'),  # a right-to-left override, escaped
])
def test_a_target_name_that_is_not_selectable_is_refused_with_a_safe_path(name, path):
    assert errors_of(f'[targets.{toml_string(name)}]\nhost = "127.0.0.1"\n') == [f"{path}: {NAME_RULE}"]


def test_group_roster_and_template_names_follow_the_same_rule(tmp_path):
    (tmp_path / "clase.csv").write_text("name\na1\n")
    text = ('[targets.solo]\nhost = "127.0.0.1"\n[groups]\n"all of them" = ["solo"]\n'
            '[templates."my template"]\nhost = "127.0.0.1"\n'
            '[rosters."clase 1"]\nfile = "clase.csv"\ntemplate = "my template"\n')
    assert errors_of(text, tmp_path) == [
        f'groups."all of them": {NAME_RULE}', f'rosters."clase 1": {NAME_RULE}',
        f'templates."my template": {NAME_RULE}']


@pytest.mark.parametrize("name, accepted", [("alumno-ñ", True), ("_x", True), ("-x", False), ("a b", False)])
def test_a_roster_row_name_follows_the_rule_of_a_target_table(tmp_path, name, accepted):
    (tmp_path / "clase.csv").write_text(f"name\n{name}\n", encoding="utf-8")
    text = ('[templates.t]\nhost = "127.0.0.1"\n[rosters.clase]\nfile = "clase.csv"\ntemplate = "t"\n')
    table = f'[targets."{name}"]\nhost = "127.0.0.1"\n'
    if accepted:
        assert name in parse(text, tmp_path) and name in parse(table)
    else:
        assert errors_of(text, tmp_path) and errors_of(table)


def test_a_nul_in_a_roster_file_name_is_a_clean_error(tmp_path):
    text = '[templates.t]\nhost = "127.0.0.1"\n[rosters.clase]\nfile = "cl\\u0000ase.csv"\ntemplate = "t"\n'
    [error] = errors_of(text, tmp_path)
    assert error.startswith("rosters.clase.file: ") and "cannot be read" in error


def test_an_unknown_key_with_a_newline_is_shown_escaped():
    assert errors_of(lab('"col\\nour" = 1'))[0].startswith('targets.lab."col\\nour": unknown key')


def test_a_saved_url_target_quotes_its_name_as_a_toml_key():
    table = target_table("smtp://127.0.0.1", target_from_url("smtp://127.0.0.1", env=NO_ENV))
    assert table.startswith('[targets."smtp://127.0.0.1"]\n')
    assert tomllib.loads(table)["targets"]["smtp://127.0.0.1"]["host"] == "127.0.0.1"


# --------------------------------------------------------------------------- secrets

NOT_A_NAME = ("password_env must name an environment variable, not hold the password (value hidden; it looks "
              "like a password was written there")


@pytest.mark.parametrize("account, error", [
    ('password_env = "Tr0ub4dor&3 horse"', f"targets.lab.account.password_env: {NOT_A_NAME}"),
    ('password_env = "1234567890"', f"targets.lab.account.password_env: {NOT_A_NAME}"),
    ('password_env = "Tr0ub4dor-3"', f"targets.lab.account.password_env: {NOT_A_NAME}"),
    ('password_env = "Tr0ub4dor3\\n"', f"targets.lab.account.password_env: {NOT_A_NAME}"),
    ("password = 1234567890", "targets.lab.account.password: expected str, got int (value hidden)"),
    ("password = 1234567890.5", "targets.lab.account.password: expected str, got float (value hidden)"),
    ("password = [1234567890]", "targets.lab.account.password: expected str, got list (value hidden)"),
    ('password = { Tr0ub4dor = "1234567890" }', "targets.lab.account.password: expected str, got dict (value hidden)"),
    ('password_env = ["Tr0ub4dor&3 horse"]', "targets.lab.account.password_env: expected str, got list (value hidden)"),
    ("password_env = 1234567890", "targets.lab.account.password_env: expected str, got int (value hidden)"),
    ('password_env = { Tr0ub4dor = 1 }', "targets.lab.account.password_env: expected str, got dict (value hidden)"),
])
def test_a_password_in_the_wrong_place_is_never_shown(account, error):
    with pytest.raises(TargetsError) as caught:
        parse(lab(f'[targets.lab.account]\nuser = "u"\n{account}'))
    assert len(caught.value.errors) == 1 and caught.value.errors[0].startswith(error), caught.value.errors
    shown = str(caught.value) + repr(caught.value.errors)
    assert "Tr0ub4dor" not in shown and "1234567890" not in shown


def test_a_password_in_a_rosters_password_env_column_is_never_shown(tmp_path):
    (tmp_path / "clase.csv").write_text("name,account.password_env\na1,Tr0ub4dor&3\n")
    text = ('[templates.t]\nhost = "127.0.0.1"\n[templates.t.account]\nuser = "u"\n'
            '[rosters.clase]\nfile = "clase.csv"\ntemplate = "t"\n')
    [error] = errors_of(text, tmp_path)
    assert error.startswith(f"clase.csv, line 2 (a1).account.password_env: {NOT_A_NAME}") and "Tr0ub4dor" not in error


def test_an_account_whose_password_env_is_no_variable_name_says_so_without_the_value():
    """The file's checks refuse such an account; one made another way must not leak it either."""
    account = Account(user="u", password_env="Tr0ub4dor&3")
    why = account.missing_credentials
    assert why.startswith(NOT_A_NAME) and "Tr0ub4dor" not in why
    [problem] = _named_setup_problems(Target("lab", "127.0.0.1", {}, account=account), NO_ENV)
    assert problem.startswith(f"targets.lab.account.password_env: {NOT_A_NAME}") and "Tr0ub4dor" not in problem
    assert Account(user="u", password_env="LAB_PW").missing_credentials == (
        "the environment variable LAB_PW (password_env) is not set")


def test_an_account_written_as_a_string_is_not_shown():
    errors = errors_of(lab('account = "alice:Tr0ub4dor&3"'))
    assert errors == ["targets.lab.account: expected a table, got str (value hidden)"]


# --------------------------------------------------------------------------- every problem at once

def test_every_new_problem_is_reported_together():
    text = ('[targets."my lab"]\nhost = "my server"\ndns = "::1:5353"\nsource = "me"\ntimeout = 1e10\n'
            '[targets."my lab".services]\nsmtp = { host = "a b" }\n')
    assert [e.split(": ")[0] for e in errors_of(text)] == [
        'targets."my lab"', 'targets."my lab".host', 'targets."my lab".dns', 'targets."my lab".source',
        'targets."my lab".timeout', 'targets."my lab".services.smtp.host']
