"""Targets: the mail servers a run is pointed at.

A target comes from a named table in ``targets.toml`` or from a URL given to ``--target``
(``smtp://host:port``, ``pop3s://user@host``…).  Either way it becomes a frozen :class:`Target`.
Every problem in a targets file is collected and reported at once, each with its TOML path.
:func:`resolve_targets` then checks the grader's set-up of the targets a run selects (environment
variables set, CA files readable certificates) before any connection.  No error ever shows a password.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import tomllib
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, TypeVar
from urllib.parse import unquote, urlsplit

from cryptography import x509

from mailconform import roster

#: Every service a target may offer, with its standard port.
DEFAULT_PORTS: Mapping[str, int] = MappingProxyType(
    {"smtp": 25, "smtps": 465, "submission": 587, "pop3": 110, "pop3s": 995, "imap": 143, "imaps": 993}
)
#: Services whose first byte is a TLS handshake (RFC 8314 implicit TLS).
IMPLICIT_TLS = frozenset({"smtps", "pop3s", "imaps"})

DEFAULT_TIMEOUT = 10.0
DEFAULT_DELIVERY_WAIT = 20.0
DEFAULT_SENDER = "mailconform@example.com"
#: A student's small server never sees more than this from one run (targets may set their own).
DEFAULT_MAX_CONNECTIONS = 2
DEFAULT_CONNECTIONS_PER_SECOND = 20.0
#: Deliberate wrong-password logins one run may make against a target (fail2ban bans after ~5).
DEFAULT_MAX_FAILED_LOGINS = 3
MAX_FAILED_LOGINS = 20
#: The most a target may set: beyond them a value is a typo (and 1e10 seconds overflows every clock).
MAX_TIMEOUT = 300.0
MAX_DELIVERY_WAIT = 600.0
MAX_CONNECTIONS = 100
MAX_CONNECTIONS_PER_SECOND = 1000.0
#: A settings file larger than this is refused unread: no targets file or rubric is near it.
MAX_FILE_BYTES = 1024 * 1024
#: Tables and arrays nested deeper than this are refused (a targets file nests 5 levels, a rubric 3).
MAX_NESTING = 32
PASSWORD_ENV_FOR_URLS = "MAILCONFORM_PASSWORD"
CA_FILE_ENV_FOR_URLS = "MAILCONFORM_CA_FILE"
#: What ``user_env``/``password_env`` must look like: the name of an environment variable.
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Said of a ``password_env`` that is no variable name, instead of its value: likely the password itself.
PASSWORD_ENV_NOT_A_NAME = (
    "password_env must name an environment variable, not hold the password (value hidden; it looks like a "
    "password was written there: a variable name is letters, digits and '_', not starting with a digit; "
    'e.g. password_env = "LAB_PASSWORD", then export LAB_PASSWORD)')


class FileProblems(Exception):
    """A file the grader wrote is wrong; ``errors`` lists every problem with its TOML path."""

    def __init__(self, source: str, errors: list[str]):
        self.source = source
        self.errors = errors
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(f"{source}: {len(errors)} problem(s):\n{lines}")


class TargetsError(FileProblems):
    """A targets file or URL is wrong."""


def read_toml(path: Path, problem: type[FileProblems], not_found: str = "file not found") -> dict:
    """The parsed TOML file, or ``problem`` saying it is missing, too large, not UTF-8 text, not
    TOML or nested too deeply (a byte-order mark, as Windows editors write, is allowed)."""
    def failed(why: str) -> FileProblems:
        return problem(str(path), [why])

    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise failed(f"is larger than {MAX_FILE_BYTES // 1024 // 1024} MiB: too large for a settings file, "
                         f"so it was not read")
        text = data.decode("utf-8-sig")
    except FileNotFoundError:
        raise failed(not_found) from None
    except IsADirectoryError:
        raise failed("is a directory, not a file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise failed(f"cannot be read as UTF-8 text ({getattr(exc, 'strerror', None) or exc})") from None
    nested_too_deeply = failed(f"not valid TOML: nested too deeply (more than {MAX_NESTING} levels)")
    if _has_long_dotted_key(text):
        raise nested_too_deeply
    try:
        parsed = tomllib.loads(text)
    except RecursionError:
        raise nested_too_deeply from None
    except ValueError as exc:  # a TOMLDecodeError, or an integer of over 4300 digits
        raise failed(f"not valid TOML: {exc}") from None
    if _nests_deeper_than(parsed, MAX_NESTING):
        raise nested_too_deeply
    return parsed


def _has_long_dotted_key(text: str) -> bool:
    """Does a line's key (before its ``=``) have more than ``MAX_NESTING`` parts?  tomllib's time and
    memory grow with the square of a dotted key's length: a 60 kB key takes gigabytes."""
    return any(line.partition("=")[0].count(".") >= MAX_NESTING for line in text.splitlines() if "=" in line)


def _nests_deeper_than(value: Any, levels: int) -> bool:
    """Do tables and arrays nest in ``value`` more than ``levels`` deep?  (Looked at without recursion.)"""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, (dict, list)):
            if depth >= levels:
                return True
            pending += [(child, depth + 1) for child in (item.values() if isinstance(item, dict) else item)]
    return False


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Account:
    """A mailbox on the target the suite may use. The password never appears in a repr."""

    user: str | None
    address: str | None = None
    password: str | None = field(default=None, repr=False)
    password_env: str | None = None
    user_env: str | None = None

    @property
    def missing_credentials(self) -> str | None:
        """Why the suite cannot log in with this account, or None."""
        if self.user is None:
            return f"the environment variable {self.user_env} (user_env) is not set"
        if self.password is not None:
            return None
        if self.password_env and not ENV_NAME.fullmatch(self.password_env):
            return PASSWORD_ENV_NOT_A_NAME
        if self.password_env:
            return f"the environment variable {self.password_env} (password_env) is not set"
        return "the account has no password (set password_env, or password for a lab VM)"


@dataclass(frozen=True)
class TlsSettings:
    ca_file: Path | None = None
    server_name: str | None = None
    verify: bool = True


@dataclass(frozen=True)
class Target:
    name: str
    host: str | None
    services: Mapping[str, Endpoint]
    description: str = ""
    domain: str | None = None
    dns: tuple[str, int] | None = None
    intrusive: bool = False
    allow_cleartext_auth: bool = False
    source: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    delivery_wait: float = DEFAULT_DELIVERY_WAIT
    sender: str = DEFAULT_SENDER
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    connections_per_second: float = DEFAULT_CONNECTIONS_PER_SECOND
    max_failed_logins: int = DEFAULT_MAX_FAILED_LOGINS
    tls: TlsSettings = TlsSettings()
    account: Account | None = None
    from_url: bool = False      # given as a URL: advice names URL parameters and variables, not keys
    discover: bool = False      # mail://: the services are candidates, looked at once (discovery.py)
    notes: tuple[str, ...] = ()  # defaults the URL chose, said in the header
    origin: str = ""            # where its keys are written ("targets.NAME", a roster's line), for messages

    def endpoint(self, service: str) -> Endpoint | None:
        return self.services.get(service)

    def server_name(self, endpoint: Endpoint) -> str:
        """The name to verify in the server's certificate and to send as SNI."""
        return self.tls.server_name or endpoint.host

    def summary(self) -> str:
        services = " ".join(f"{name}={ep}" for name, ep in self.services.items()) or "no services"
        return f"{self.name}: {services}" + (f", domain {self.domain}" if self.domain else "")


# --------------------------------------------------------------------------- file loading

_TARGET_KEYS = {
    "description", "domain", "host", "dns", "intrusive", "allow_cleartext_auth", "source",
    "timeout", "delivery_wait", "sender", "services", "tls", "account", "max_connections", "connections_per_second",
    "max_failed_logins",
}
_TLS_KEYS = {"ca_file", "server_name", "verify"}
_ACCOUNT_KEYS = {"user", "user_env", "password", "password_env", "address"}
_SERVICE_KEYS = {"host", "port"}


class _Collector:
    """Reads typed values out of TOML tables, remembering every error with its path."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.paths: dict[str, str] = {}  # target → where its errors point, when not targets.NAME

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def table(self, value: Any, known: set[str], path: str, secret: bool = False) -> bool:
        """Is ``value`` a TOML table?  Its unknown keys are errors too."""
        if not isinstance(value, dict):
            self.error(path, f"expected a table, got {_shown(value, secret)}")
            return False
        self.unknown_keys(value, known, path)
        return True

    def unknown_keys(self, table: dict, known: set[str], path: str) -> None:
        for key in table:
            if key not in known:
                self.error(f"{path}.{roster.toml_key(key)}", f"unknown key (known: {', '.join(sorted(known))})")

    def names(self, table: Any, section: str) -> None:
        """Every key of the ``section`` table must be a name ``--target`` can select."""
        for name in table if isinstance(table, dict) else ():
            if not roster.is_target_name(name):
                self.error(f"{section}.{roster.toml_key(name)}", roster.NAME_RULE)

    def get(self, table: dict, key: str, kind: type | tuple, path: str, default: Any = None,
            secret: bool = False) -> Any:
        """``table[key]`` if it is of ``kind``; a ``secret`` value of the wrong kind is never echoed."""
        if key not in table:
            return default
        value = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            ok = False
        else:
            ok = isinstance(value, kinds)
        if not ok:
            names = " or ".join(k.__name__ for k in kinds)
            self.error(f"{path}.{key}", f"expected {names}, got {_shown(value, secret)}")
            return default
        return value

    def parsed(self, table: dict, key: str, path: str, parse: Callable[[str], _T | None], expected: str) -> _T | None:
        """``parse(table[key])``; a string it refuses is an error saying what was ``expected``."""
        text = self.get(table, key, str, path)
        if text is None:
            return None
        value = parse(text)
        if value is None:
            self.error(f"{path}.{key}", f"expected {expected}, got {text!r}")
        return value

    def positive(self, table: dict, key: str, path: str, default: float, at_most: float,
                 unit: str = "seconds") -> float:
        """``table[key]``, a number above 0 and at most ``at_most``."""
        value = self.get(table, key, (int, float), path, default)
        if isinstance(value, float) and not math.isfinite(value) or value <= 0:
            self.error(f"{path}.{key}", f"expected a positive number of {unit}, got {value!r}")
            return default
        if value > at_most:
            self.error(f"{path}.{key}", f"expected 0 < {unit} <= {at_most:g}, got {value!r}")
            return default
        return float(value)

    def resolver(self, table: dict, path: str) -> tuple[str, int] | None:
        """``table["dns"]``: a resolver's IP address and port (53 unless given)."""
        text = table.get("dns")
        if isinstance(text, str) and (advice := _ambiguous_ipv6_port(text)):
            self.error(f"{path}.dns", advice)
            return None
        return self.parsed(table, "dns", path, lambda text: _parse_host_port(text, 53), _RESOLVER)

    def port(self, value: Any, path: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            self.error(path, f"expected a port 1-65535, got {value!r}")
            return None
        return value


def _shown(value: Any, secret: bool) -> str:
    """A wrong value as an error shows it: its repr, or only its type when it may be a secret."""
    return f"{type(value).__name__} (value hidden)" if secret else repr(value)


_T = TypeVar("_T")
_HOST = "a host name or an IP address"
_RESOLVER = 'an IP address with an optional port ("127.0.0.1:53")'
#: RFC 1123 labels, and "_" too: /etc/hosts and container networks (mail_server) use it and the
#: system resolver answers for it.
_HOST_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_IPV6_ZONE = re.compile(r"[A-Za-z0-9_.-]+")  # fe80::1%eth0
_PORT = re.compile(r"[0-9]{1,5}")
_WITH_PORT = re.compile(rf"(\[[^\]]*\]|[^:]*):({_PORT.pattern})")  # 127.0.0.1:53, [::1]:53


def _ip_address(text: str) -> str | None:
    """``text`` if it is an IP address (an IPv6 one with or without brackets, returned without), else None."""
    bracketed = text.startswith("[") and text.endswith("]")
    address = text[1:-1] if bracketed else text
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if ip.version == 4 and bracketed or ip.version == 6 and ip.scope_id and not _IPV6_ZONE.fullmatch(ip.scope_id):
        return None
    return address


def _is_host_name(text: str) -> bool:
    """Is ``text`` a DNS host name (RFC 1123, a final dot allowed) rather than, say, a mistyped IPv4 address?"""
    name = text.removesuffix(".")
    labels = name.split(".")
    return len(name) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit()


def _host(text: str) -> str | None:
    """``text`` as a host to connect to (an IPv6 address without brackets), or None if it is none."""
    return _ip_address(text) or (text if _is_host_name(text) else None)


def _file_name(text: str) -> str | None:
    """``text`` unless it holds a NUL, which no file name can."""
    return None if "\0" in text else text


def _parse_host_port(text: str, default_port: int) -> tuple[str, int] | None:
    """``"127.0.0.1"``, ``"127.0.0.1:53"``, ``"::1"``, ``"[::1]:53"`` → (IP address, port); None when malformed."""
    address, port = text, default_port
    if with_port := _WITH_PORT.fullmatch(text):
        address, port = with_port[1], int(with_port[2])
    address = _ip_address(address)
    return (address, port) if address is not None and 1 <= port <= 65535 else None


def _ambiguous_ipv6_port(text: str) -> str | None:
    """What to write instead of an unbracketed IPv6 resolver that ends like a port (``"::1:5353"``),
    or None.  It parses as one address, but was the port meant?  Brackets say."""
    address, _, port = text.rpartition(":")
    if "[" in text or ":" not in address or not _PORT.fullmatch(port) or _ip_address(address) is None:
        return None
    return (f"write an IPv6 resolver with a port as [{address}]:{port} (unbracketed, {text!r} is read as "
            f"one IPv6 address: write [{text}] if that is what you mean)")


def _parse_services(c: _Collector, table: Any, host: str | None, host_written: bool,
                    path: str) -> dict[str, Endpoint]:
    """The services' endpoints; ``host_written``: the target's ``host`` is written (perhaps wrongly)."""
    services: dict[str, Endpoint] = {}
    if not isinstance(table, dict):
        c.error(path, f"expected a table of services, got {table!r}")
        return services
    for name, value in table.items():
        spath = f"{path}.{roster.toml_key(name)}"
        if name not in DEFAULT_PORTS:
            c.error(spath, f"unknown service (known: {', '.join(DEFAULT_PORTS)})")
            continue
        service_host = host
        if isinstance(value, dict):
            c.unknown_keys(value, _SERVICE_KEYS, spath)
            service_host = c.parsed(value, "host", spath, _host, _HOST) or host
            port = c.port(value.get("port", DEFAULT_PORTS[name]), f"{spath}.port")
        else:
            port = c.port(value, spath)
        if service_host is None and not (host_written or isinstance(value, dict) and "host" in value):
            c.error(spath, "no host: set the target's host or this service's host")
        elif port is not None:
            services[name] = Endpoint(service_host, port)
    return services


def _parse_account(c: _Collector, table: Any, path: str, env: Mapping[str, str]) -> Account | None:
    if not c.table(table, _ACCOUNT_KEYS, path, secret=True):  # account = "alice:pw" must not be echoed
        return None
    user = c.get(table, "user", str, path)
    user_env = c.get(table, "user_env", str, path)
    if (user is None) == (user_env is None):
        c.error(path, "give the account either user or user_env (the variable holding the user name)")
        return None
    if user_env is not None:
        user = env.get(user_env) or None  # unset or empty: resolve_targets reports it for a selected target
    password = c.get(table, "password", str, path, secret=True)
    password_env = c.get(table, "password_env", str, path, secret=True)
    if password is not None and password_env is not None:
        c.error(path, "give either password or password_env, not both")
    if password_env is not None and not ENV_NAME.fullmatch(password_env):
        c.error(f"{path}.password_env", PASSWORD_ENV_NOT_A_NAME)
        password_env = None
    if password_env is not None:
        password = env.get(password_env) or None
    address = c.get(table, "address", str, path)
    if address is not None and "@" not in address:
        c.error(f"{path}.address", f"expected a mail address like user@domain, got {address!r}")
    return Account(user=user, address=address, password=password, password_env=password_env, user_env=user_env)


def _parse_tls(c: _Collector, table: Any, path: str, base_dir: Path) -> TlsSettings:
    if not c.table(table, _TLS_KEYS, path):
        return TlsSettings()
    ca_file = c.parsed(table, "ca_file", path, _file_name, "a file name")
    return TlsSettings(
        ca_file=(base_dir / ca_file) if ca_file else None,
        server_name=c.parsed(table, "server_name", path, _host, _HOST),
        verify=c.get(table, "verify", bool, path, True),
    )


def _parse_target(c: _Collector, name: str, table: Any, base_dir: Path, env: Mapping[str, str],
                  path: str | None = None) -> Target | None:
    path = path or f"targets.{roster.toml_key(name)}"
    if not c.table(table, _TARGET_KEYS, path):
        return None
    host = c.parsed(table, "host", path, _host, _HOST)
    dns = c.resolver(table, path)
    source = c.parsed(table, "source", path, _ip_address, "an IP address")
    account = _parse_account(c, table["account"], f"{path}.account", env) if "account" in table else None
    # The probes' MAIL FROM: the account writing to itself, as in the lab handout (a foreign
    # domain such as example.com publishes a null MX, which hardened servers refuse as a sender).
    sender = c.get(table, "sender", str, path)
    if sender is not None and "@" not in sender:
        c.error(f"{path}.sender", f"expected a mail address, got {sender!r}")
    sender = sender or (account and account.address) or DEFAULT_SENDER
    return Target(
        name=name,
        host=host,
        description=c.get(table, "description", str, path, ""),
        domain=c.get(table, "domain", str, path),
        dns=dns,
        intrusive=c.get(table, "intrusive", bool, path, False),
        allow_cleartext_auth=c.get(table, "allow_cleartext_auth", bool, path, False),
        source=source,
        timeout=c.positive(table, "timeout", path, DEFAULT_TIMEOUT, MAX_TIMEOUT),
        delivery_wait=c.positive(table, "delivery_wait", path, DEFAULT_DELIVERY_WAIT, MAX_DELIVERY_WAIT),
        sender=sender,
        max_connections=_count(c, table, "max_connections", path, DEFAULT_MAX_CONNECTIONS, 1, MAX_CONNECTIONS,
                               "connections"),
        max_failed_logins=_count(c, table, "max_failed_logins", path, DEFAULT_MAX_FAILED_LOGINS, 0,
                                 MAX_FAILED_LOGINS, "failed logins"),
        connections_per_second=c.positive(table, "connections_per_second", path, DEFAULT_CONNECTIONS_PER_SECOND,
                                          MAX_CONNECTIONS_PER_SECOND, "connections per second"),
        services=MappingProxyType(_parse_services(c, table.get("services", {}), host, "host" in table,
                                                  f"{path}.services")),
        tls=_parse_tls(c, table.get("tls", {}), f"{path}.tls", base_dir),
        account=account,
        origin=path,
    )


def _count(c: _Collector, table: dict, key: str, path: str, default: int, least: int, most: int, unit: str) -> int:
    value = c.get(table, key, int, path, default)
    if value < least:
        c.error(f"{path}.{key}", f"expected at least {least} {unit.removesuffix('s') if least == 1 else unit}, "
                                 f"got {value!r}")
        return default
    if value > most:
        c.error(f"{path}.{key}", f"expected {least} <= {unit} <= {most}, got {value!r}")
        return default
    return value


@dataclass(frozen=True)
class TargetsFile:
    """What a targets file defines: its targets (roster rows among them) and the names that stand
    for several targets (its groups and rosters), each with its members' names in order."""

    targets: dict[str, Target]
    groups: dict[str, tuple[str, ...]]

    def names(self) -> str:
        """The names a ``--target`` may give, for a message."""
        return ", ".join([*self.targets, *self.groups]) or "none"


def parse_targets_file(data: dict, base_dir: Path, source: str = "targets",
                       env: Mapping[str, str] = os.environ) -> TargetsFile:
    """Validate a parsed TOML document; raise :class:`TargetsError` listing every problem."""
    c = _Collector()
    c.unknown_keys(data, {"targets", "groups", "templates", "rosters"}, "(top level)")
    for section in ("targets", "groups", "rosters", "templates"):
        c.names(data.get(section), section)
    targets: dict[str, Target] = {}
    tables = data.get("targets", {})
    if not isinstance(tables, dict):
        c.error("targets", "expected tables like [targets.NAME]")
        tables = {}
    tables = dict(tables)  # roster rows join them
    rows: dict[str, list[str]] = {}
    kinds = roster.column_kinds(_TARGET_KEYS, set(DEFAULT_PORTS), _TLS_KEYS, _ACCOUNT_KEYS)
    rosters = data.get("rosters", {})
    if not isinstance(rosters, dict):
        c.error("rosters", 'expected tables like [rosters.NAME] with file = "CSV file" and template = "NAME"')
        rosters = {}
    for name, table in rosters.items():
        rows[name] = []
        for row, where, row_table in roster.expand(name, table, data.get("templates"), base_dir, kinds, c.error):
            if row in tables or any(row in names for names in rows.values()):
                c.error(where, f"the target {row} is defined twice")
            else:
                tables[row] = row_table
                rows[name].append(row)
                c.paths[row] = where
    for name, table in tables.items():
        target = _parse_target(c, name, table, base_dir, env, c.paths.get(name))
        if target is not None:
            targets[name] = target
    groups = _parse_groups(c, data.get("groups", {}), set(tables), rows)
    if c.errors:
        raise TargetsError(source, c.errors)
    return TargetsFile(targets, groups)


def _parse_groups(c: _Collector, table: Any, targets: set[str], rosters: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
    """``[groups] NAME = ["alumno01", "clase-b", …]``: targets, rosters or other groups, flattened."""
    if not isinstance(table, dict):
        c.error("groups", 'expected a table of NAME = ["target", …]')
        return {}
    groups: dict[str, tuple[str, ...]] = {name: tuple(rows) for name, rows in rosters.items()}
    pending = dict(table)
    for name, members in pending.items():
        path = f"groups.{roster.toml_key(name)}"
        if name in targets or name in rosters:
            c.error(path, "a target or roster already has this name")
        elif not (isinstance(members, list) and members and all(isinstance(m, str) for m in members)):
            c.error(path, f"expected a list of target names, got {members!r}")
    while pending:  # a group may name a group defined after it; a cycle never resolves
        resolved = {name: members for name, members in pending.items() if isinstance(members, list) and all(
            not isinstance(m, str) or m in targets or m in groups for m in members)}
        if not resolved:
            break
        for name, members in resolved.items():
            del pending[name]
            flat = [t for m in members if isinstance(m, str) for t in groups.get(m, (m,))]
            groups.setdefault(name, tuple(dict.fromkeys(flat)))
    for name, members in pending.items():
        if isinstance(members, list):
            unknown = [m for m in members if isinstance(m, str) and m not in targets and m not in groups
                       and m not in pending]
            why = f"unknown target(s) {', '.join(unknown)}" if unknown else "the groups name each other in a circle"
            c.error(f"groups.{roster.toml_key(name)}", why)
    return groups


def parse_targets(data: dict, base_dir: Path, source: str = "targets", env: Mapping[str, str] = os.environ) -> dict[str, Target]:
    """The targets a parsed TOML document defines (see :func:`parse_targets_file`)."""
    return parse_targets_file(data, base_dir, source, env).targets


def load_targets_file(path: Path, env: Mapping[str, str] = os.environ) -> TargetsFile:
    """The targets file's targets and groups; whatever goes wrong is a :class:`TargetsError`, even what
    no check foresaw (then one line saying what kind of error arose where, see :func:`unforeseen`)."""
    try:
        data = read_toml(path, TargetsError, "file not found (give another with --targets-file PATH)")
        return parse_targets_file(data, path.resolve().parent, str(path), env)
    except TargetsError:
        raise
    except Exception as exc:
        raise TargetsError(str(path), [unforeseen(exc)]) from exc


def unforeseen(exc: Exception) -> str:
    """An error no check foresaw while loading targets, in one line: what the system said of a file
    it could not read, else the error's kind and where it arose — never its text, which may quote a
    value of the file (a password among them)."""
    if isinstance(exc, OSError):
        return f"cannot be read ({exc.strerror or type(exc).__name__})"
    if isinstance(exc, UnicodeError):
        return f"cannot be read: not UTF-8 ({type(exc).__name__})"
    if isinstance(exc, RecursionError):
        return "cannot be read: nested too deeply"
    frame = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" in {Path(frame[0].filename).name}, line {frame[0].lineno}" if frame else ""
    return f"cannot be loaded: {type(exc).__name__}{where} (a value mailconform does not expect; please report it)"


def load_targets(path: Path, env: Mapping[str, str] = os.environ) -> dict[str, Target]:
    return load_targets_file(path, env).targets


# --------------------------------------------------------------------------- URL targets

_URL_START = re.compile(r"(?:^|(?<=[,\s+]))[A-Za-z][A-Za-z0-9+.-]*://")


def redact_url(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` in it shown as ``***``.

    Generous on purpose: a URL runs to the next one (after a comma or a space) and its user
    information to its *last* ``@``, so a password holding ``/``, ``,``, ``#``, ``@`` or even
    ``://`` (which would cut a real URL short) is hidden whole."""
    matches = list(_URL_START.finditer(text))
    if not matches:
        return text
    ends = [match.start() for match in matches[1:]] + [len(text)]
    pieces = [text[:matches[0].start()]]
    for match, end in zip(matches, ends):
        rest = text[match.end():end]
        at = rest.rfind("@")
        colon = rest.find(":", 0, max(at, 0))
        if colon != -1 and at > colon + 1:  # an empty password (user:@host) hides nothing
            rest = rest[:colon + 1] + "***" + rest[at:]
        pieces.append(match.group() + rest)
    return "".join(pieces)


WHOLE_SERVER = "mail"
#: What a URL's query may set: the services' ports (mail:// only) and what a targets file would.
_QUERY_KEYS = {"domain", "dns", "intrusive", *DEFAULT_PORTS}
_YES, _NO = {"yes", "true", "on", "1"}, {"no", "false", "off", "0"}
_JOIN = re.compile(r"\+(?=[A-Za-z][A-Za-z0-9+.-]*://)")


def target_from_url(url: str, env: Mapping[str, str] = os.environ) -> Target:
    """A target from the command line, named by the URL itself:

    - ``smtp://host[:port]``, ``pop3s://user@host``… : one service;
    - ``mail://user@host``: the whole server, its seven standard ports to be looked at once;
      ``mail://user@host?smtp=2525&pop3=1100`` looks at the services named only;
    - ``smtp://host+pop3s://user@host``: several services of one host, one target.

    A query may also set ``domain``, ``dns`` (a resolver) and ``intrusive``.  The password of a
    ``user@`` URL comes from ``MAILCONFORM_PASSWORD``, never from the URL; the trust anchor for a
    lab's own CA (or self-signed certificate) from ``MAILCONFORM_CA_FILE``.  A URL holding a
    password is refused, and shown with ``***`` in its place."""
    shown = redact_url(url)
    pieces = [_parse_url(piece, url_text, env) for piece, url_text in zip(_JOIN.split(shown), _JOIN.split(url))]
    errors = [e for piece in pieces for e in piece["errors"]]
    hosts = {piece["host"] for piece in pieces if piece["host"]}
    users = {piece["user"] for piece in pieces if piece["user"]}
    if len(hosts) > 1:
        errors.append(f"joined URLs name one host, not {len(hosts)} ({', '.join(sorted(hosts))})")
    if len(users) > 1:
        errors.append(f"joined URLs name one user, not {len(users)} ({', '.join(sorted(users))})")
    if errors:
        raise TargetsError(shown, list(dict.fromkeys(errors)))
    host, user = hosts.pop(), (users.pop() if users else None)
    services: dict[str, Endpoint] = {}
    query: dict[str, str] = {}
    for piece in pieces:
        services.update(piece["services"])
        query.update(piece["query"])
    whole = any(piece["scheme"] == WHOLE_SERVER for piece in pieces)
    notes = []
    domain = query.get("domain")
    intrusive = bool(user) and (whole or len(pieces) > 1)  # a student checking their own server
    if "intrusive" in query:
        intrusive = query["intrusive"] in _YES
    elif intrusive:
        notes.append(f"intrusive: on, since the URL names a user ({user}): the suite sends probe messages to "
                     f"that account and deletes them again (add ?intrusive=no to prevent it)")
    account = None
    if user:
        account = Account(user=user, password=env.get(PASSWORD_ENV_FOR_URLS) or None,
                          password_env=PASSWORD_ENV_FOR_URLS, address=f"{user}@{domain}" if domain else None)
    ca_file = env.get(CA_FILE_ENV_FOR_URLS)
    return Target(name=url if shown == url else shown, host=host, services=MappingProxyType(services),
                  description="given on the command line", domain=domain,
                  dns=_parse_host_port(query["dns"], 53) if "dns" in query else None, intrusive=intrusive,
                  sender=account.address if account and account.address else DEFAULT_SENDER, account=account,
                  tls=TlsSettings(ca_file=Path(ca_file).resolve() if ca_file else None),
                  from_url=True, discover=whole, notes=tuple(notes))


def _parse_url(shown: str, real: str, env: Mapping[str, str]) -> dict:
    """One URL of a (possibly joined) target: its scheme, host, user, services, query and errors."""
    parsed = {"scheme": "", "host": None, "user": None, "services": {}, "query": {}, "errors": []}
    errors = parsed["errors"]
    password_error = f"never put a password in a URL; set {PASSWORD_ENV_FOR_URLS} instead"
    try:
        parts = urlsplit(shown)  # never the real URL: no message below can quote the password
        port = parts.port
    except ValueError as exc:
        errors += [f"not a valid URL: {exc}"] + ([password_error] if shown != real else [])
        return parsed
    scheme = parsed["scheme"] = parts.scheme
    if scheme not in DEFAULT_PORTS and scheme != WHOLE_SERVER:
        errors.append(f"unknown scheme {scheme!r} (known: {', '.join(DEFAULT_PORTS)}, or {WHOLE_SERVER} for a "
                      f"whole server)")
    if not parts.hostname:
        errors.append("no host in the URL")
    elif _host(parts.hostname) is None:
        errors.append(f"expected {_HOST}, got {parts.hostname!r}")
    if parts.password is not None or shown != real:
        errors.append(password_error)
    if parts.path not in ("", "/") or parts.fragment:
        errors.append("a target URL is scheme://[user@]host[:port][?name=value&…] with nothing else after it")
    if port == 0:
        errors.append("expected a port 1-65535, got 0")
    query = parsed["query"] = _parse_query(parts.query, scheme, errors)
    parsed["host"], parsed["user"] = parts.hostname, unquote(parts.username) if parts.username else None
    if errors or not parts.hostname:
        return parsed
    if scheme == WHOLE_SERVER:
        if port is not None:
            errors.append(f"{WHOLE_SERVER}:// takes no port: name the services' ports (?smtp=2525&pop3=1100)")
        named = {service: int(query[service]) for service in DEFAULT_PORTS if service in query}
        parsed["services"] = {service: Endpoint(parts.hostname, port)
                              for service, port in (named or DEFAULT_PORTS).items()}
    else:
        parsed["services"] = {scheme: Endpoint(parts.hostname, DEFAULT_PORTS[scheme] if port is None else port)}
    return parsed


def _parse_query(text: str, scheme: str, errors: list[str]) -> dict[str, str]:
    query = {}
    for pair in filter(None, text.split("&")):
        key, _, value = pair.partition("=")
        value = unquote(value)
        if key not in _QUERY_KEYS:
            errors.append(f"unknown URL parameter {key!r} (known: {', '.join(sorted(_QUERY_KEYS))})")
        elif key in DEFAULT_PORTS and scheme != WHOLE_SERVER:
            errors.append(f"?{key}= names a port of a {WHOLE_SERVER}:// URL; this URL is {scheme}://")
        elif key in DEFAULT_PORTS and not (_PORT.fullmatch(value) and 1 <= int(value) <= 65535):
            errors.append(f"?{key}= expects a port 1-65535, got {value!r}")
        elif key == "dns" and (advice := _ambiguous_ipv6_port(value)):
            errors.append(f"?dns= {advice}")
        elif key == "dns" and _parse_host_port(value, 53) is None:
            errors.append(f"?dns= expects {_RESOLVER}, got {value!r}")
        elif key == "intrusive" and value not in _YES | _NO:
            errors.append(f"?intrusive= expects yes or no, got {value!r}")
        elif key == "domain" and not value:
            errors.append("?domain= expects a mail domain")
        else:
            query[key] = value
    return query


def target_table(name: str, target: Target) -> str:
    """``target`` as a ``[targets.NAME]`` table of a targets file — never its password: an account
    reads it from ``password_env`` (the variable the URL used)."""
    def text(value) -> str:
        return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string

    key = roster.toml_key(name)
    rows = [f"[targets.{key}]", f"description = {text('saved from ' + target.name)}"]
    if target.domain:
        rows.append(f"domain = {text(target.domain)}")
    rows.append(f"host = {text(target.host)}")
    if target.dns:
        rows.append(f"dns = {text(f'{target.dns[0]}:{target.dns[1]}')}")
    rows += [f"intrusive = {str(target.intrusive).lower()}", f"timeout = {target.timeout:g}"]
    if target.source:
        rows.append(f"source = {text(target.source)}")
    rows.append(f"[targets.{key}.services]")
    rows += [f"{service} = {endpoint.port}" if endpoint.host == target.host else
             f"{service} = {{ host = {text(endpoint.host)}, port = {endpoint.port} }}"
             for service, endpoint in target.services.items()]
    if target.tls.ca_file or target.tls.server_name:
        rows.append(f"[targets.{key}.tls]")
        if target.tls.ca_file:
            rows.append(f"ca_file = {text(target.tls.ca_file)}")
        if target.tls.server_name:
            rows.append(f"server_name = {text(target.tls.server_name)}")
    if target.account:
        rows += [f"[targets.{key}.account]", f"user = {text(target.account.user)}",
                 f"password_env = {text(target.account.password_env or PASSWORD_ENV_FOR_URLS)}"]
        if target.account.address:
            rows.append(f"address = {text(target.account.address)}")
    return "\n".join(rows) + "\n"


def is_url(spec: str) -> bool:
    return "://" in spec


# --------------------------------------------------------------------------- the grader's set-up

def _unset(variable: str, env: Mapping[str, str]) -> str:
    state = "is empty" if variable in env else "is not set"
    return f"the environment variable {variable} {state}"


def ca_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot serve as a trust anchor (completing "``path`` …"), or None if it can.

    The TLS layer loads it with ``ssl`` as PEM, so a DER certificate is a problem too, with the fix."""
    try:
        if not path.exists():
            return "does not exist"
        if not path.is_file():
            return "is not a file"
        data = path.read_bytes()
    except (OSError, ValueError) as exc:  # a name too long for the system; ValueError: a NUL in it
        return f"cannot be read ({getattr(exc, 'strerror', None) or exc})"
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        try:
            x509.load_der_x509_certificate(data)
        except ValueError:
            return "is not a certificate (expected PEM: -----BEGIN CERTIFICATE-----)"
        pem = path.with_suffix(".pem")
        pem = pem if pem != path else path.with_name(f"{path.stem}-converted.pem")
        return (f"is a DER certificate, but the suite reads PEM: convert it with "
                f"openssl x509 -inform der -in {path} -out {pem} and use {pem}")
    if not certificates:
        return "holds no certificate"
    return None


def _named_setup_problems(target: Target, env: Mapping[str, str]) -> list[str]:
    path = target.origin or f"targets.{target.name}"
    problems = []
    account = target.account
    if account is not None and account.user_env and account.user is None:
        problems.append(f"{path}.account.user_env: {_unset(account.user_env, env)} (export it before running)")
    if account is not None and account.password_env and account.password is None:
        problems.append(f"{path}.account.password_env: " + (
            f"{_unset(account.password_env, env)} (export it before running)"
            if ENV_NAME.fullmatch(account.password_env) else PASSWORD_ENV_NOT_A_NAME))
    if target.tls.ca_file is not None and (problem := ca_file_problem(target.tls.ca_file)):
        problems.append(f"{path}.tls.ca_file: {target.tls.ca_file} {problem}")
    return problems


def _url_setup_problems(target: Target, env: Mapping[str, str]) -> list[str]:
    problems = []
    if target.account is not None and target.account.password is None:
        problems.append(f"{target.name}: {_unset(PASSWORD_ENV_FOR_URLS, env)} (export it before running: "
                        f"it holds the password of {target.account.user!r}, the user the URL names)")
    if target.tls.ca_file is not None and (problem := ca_file_problem(target.tls.ca_file)):
        problems.append(f"{target.name}: {CA_FILE_ENV_FOR_URLS}={target.tls.ca_file} {problem}")
    return problems


def resolve_targets(specs: list[str], targets_file: Path, env: Mapping[str, str] = os.environ) -> list[Target]:
    """Turn ``--target`` values (names, groups, rosters, URLs, comma lists) into targets, in the
    order given; a target named twice runs once.

    Before any connection, the grader's set-up of the *selected* targets is checked: every
    ``user_env``/``password_env`` (or ``MAILCONFORM_PASSWORD`` for a ``user@`` URL) set, every
    ``tls.ca_file`` (or ``MAILCONFORM_CA_FILE``) a readable certificate, no password in a URL.
    One :class:`TargetsError` lists every such problem, each with the target and key; none shows a
    password.  A broken targets file is reported as :func:`load_targets` does."""
    # Redacted before splitting: a password holding a comma must not leak as a "target name".
    wanted = [s.strip() for spec in specs for s in redact_url(spec).split(",") if s.strip()]
    named = TargetsFile({}, {})
    if any(not is_url(s) for s in wanted):
        named = load_targets_file(targets_file, env)
    wanted = [name for spec in wanted for name in named.groups.get(spec, (spec,))]  # a group: its members
    resolved: list[Target] = []
    problems: list[str] = []
    in_file = False  # does a problem concern the targets file (rather than a URL alone)?
    for spec in wanted:
        if is_url(spec):
            try:
                target = target_from_url(spec, env)
            except TargetsError as error:
                problems += [f"{error.source}: {e}" for e in error.errors if f"{error.source}: {e}" not in problems]
                continue
            found = [] if target in resolved else _url_setup_problems(target, env)
        elif spec in named.targets:
            target = named.targets[spec]
            found = [] if target in resolved else _named_setup_problems(target, env)
            in_file = in_file or bool(found)
        else:
            problem = f"unknown target {spec!r} (known: {named.names()}; or give a URL like smtp://host)"
            if problem not in problems:
                problems.append(problem)
            in_file = True
            continue
        problems += found
        if target not in resolved:
            resolved.append(target)
    if problems:
        raise TargetsError(str(targets_file) if in_file else "--target", problems)
    return resolved
