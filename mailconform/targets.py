"""Targets: the mail servers a run is pointed at.

A target comes from a named table in ``targets.toml`` or from a URL given to ``--target``
(``smtp://host:port``, ``pop3s://user@host``…).  Either way it becomes a frozen :class:`Target`.
Every problem in a targets file is collected and reported at once, each with its TOML path.
"""

from __future__ import annotations

import ipaddress
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping
from urllib.parse import unquote, urlsplit

#: Every service a target may offer, with its standard port.
DEFAULT_PORTS: Mapping[str, int] = MappingProxyType(
    {"smtp": 25, "smtps": 465, "submission": 587, "pop3": 110, "pop3s": 995, "imap": 143, "imaps": 993}
)
#: Services whose first byte is a TLS handshake (RFC 8314 implicit TLS).
IMPLICIT_TLS = frozenset({"smtps", "pop3s", "imaps"})

DEFAULT_TIMEOUT = 10.0
DEFAULT_DELIVERY_WAIT = 20.0
DEFAULT_SENDER = "mailconform@example.com"
PASSWORD_ENV_FOR_URLS = "MAILCONFORM_PASSWORD"
CA_FILE_ENV_FOR_URLS = "MAILCONFORM_CA_FILE"


class TargetsError(Exception):
    """A targets file or URL is wrong; ``errors`` lists every problem with its TOML path."""

    def __init__(self, source: str, errors: list[str]):
        self.source = source
        self.errors = errors
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(f"{source}: {len(errors)} problem(s):\n{lines}")


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
    tls: TlsSettings = TlsSettings()
    account: Account | None = None

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
    "timeout", "delivery_wait", "sender", "services", "tls", "account",
}
_TLS_KEYS = {"ca_file", "server_name", "verify"}
_ACCOUNT_KEYS = {"user", "user_env", "password", "password_env", "address"}
_SERVICE_KEYS = {"host", "port"}


class _Collector:
    """Reads typed values out of TOML tables, remembering every error with its path."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def table(self, value: Any, known: set[str], path: str) -> bool:
        """Is ``value`` a TOML table?  Its unknown keys are errors too."""
        if not isinstance(value, dict):
            self.error(path, f"expected a table, got {value!r}")
            return False
        self.unknown_keys(value, known, path)
        return True

    def unknown_keys(self, table: dict, known: set[str], path: str) -> None:
        for key in table:
            if key not in known:
                self.error(f"{path}.{key}", f"unknown key (known: {', '.join(sorted(known))})")

    def get(self, table: dict, key: str, kind: type | tuple, path: str, default: Any = None) -> Any:
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
            self.error(f"{path}.{key}", f"expected {names}, got {value!r}")
            return default
        return value

    def positive(self, table: dict, key: str, path: str, default: float) -> float:
        value = self.get(table, key, (int, float), path, default)
        if not math.isfinite(value) or value <= 0:
            self.error(f"{path}.{key}", f"expected a positive number of seconds, got {value!r}")
            return default
        return float(value)

    def port(self, value: Any, path: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            self.error(path, f"expected a port 1-65535, got {value!r}")
            return None
        return value


def _parse_host_port(text: str, default_port: int) -> tuple[str, int] | None:
    """``"127.0.0.1"``, ``"127.0.0.1:53"``, ``"[::1]:53"`` → (host, port); None when malformed."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    try:
        ipaddress.ip_address(host)
        port = int(port_text) if port_text else default_port
    except ValueError:
        return None
    return (host, port) if 1 <= port <= 65535 else None


def _parse_services(c: _Collector, table: Any, host: str | None, path: str) -> dict[str, Endpoint]:
    services: dict[str, Endpoint] = {}
    if not isinstance(table, dict):
        c.error(path, f"expected a table of services, got {table!r}")
        return services
    for name, value in table.items():
        spath = f"{path}.{name}"
        if name not in DEFAULT_PORTS:
            c.error(spath, f"unknown service (known: {', '.join(DEFAULT_PORTS)})")
            continue
        service_host = host
        if isinstance(value, dict):
            c.unknown_keys(value, _SERVICE_KEYS, spath)
            service_host = c.get(value, "host", str, spath, host)
            port = c.port(value.get("port", DEFAULT_PORTS[name]), f"{spath}.port")
        else:
            port = c.port(value, spath)
        if service_host is None:
            c.error(spath, "no host: set the target's host or this service's host")
        elif port is not None:
            services[name] = Endpoint(service_host, port)
    return services


def _parse_account(c: _Collector, table: Any, path: str, env: Mapping[str, str]) -> Account | None:
    if not c.table(table, _ACCOUNT_KEYS, path):
        return None
    user = c.get(table, "user", str, path)
    user_env = c.get(table, "user_env", str, path)
    if (user is None) == (user_env is None):
        c.error(path, "give the account either user or user_env (the variable holding the user name)")
        return None
    if user_env is not None:
        user = env.get(user_env)
    password = c.get(table, "password", str, path)
    password_env = c.get(table, "password_env", str, path)
    if password is not None and password_env is not None:
        c.error(path, "give either password or password_env, not both")
    if password_env is not None:
        password = env.get(password_env)
    address = c.get(table, "address", str, path)
    if address is not None and "@" not in address:
        c.error(f"{path}.address", f"expected a mail address like user@domain, got {address!r}")
    return Account(user=user, address=address, password=password, password_env=password_env, user_env=user_env)


def _parse_tls(c: _Collector, table: Any, path: str, base_dir: Path) -> TlsSettings:
    if not c.table(table, _TLS_KEYS, path):
        return TlsSettings()
    ca_file = c.get(table, "ca_file", str, path)
    return TlsSettings(
        ca_file=(base_dir / ca_file) if ca_file else None,
        server_name=c.get(table, "server_name", str, path),
        verify=c.get(table, "verify", bool, path, True),
    )


def _parse_target(c: _Collector, name: str, table: Any, base_dir: Path, env: Mapping[str, str]) -> Target | None:
    path = f"targets.{name}"
    if not c.table(table, _TARGET_KEYS, path):
        return None
    host = c.get(table, "host", str, path)
    dns = c.get(table, "dns", str, path)
    dns_server = None
    if dns is not None:
        dns_server = _parse_host_port(dns, 53)
        if dns_server is None:
            c.error(f"{path}.dns", f"expected an IP address with an optional port (\"127.0.0.1:53\"), got {dns!r}")
    source = c.get(table, "source", str, path)
    if source is not None and _parse_host_port(source, 1) is None:
        c.error(f"{path}.source", f"expected an IP address, got {source!r}")
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
        dns=dns_server,
        intrusive=c.get(table, "intrusive", bool, path, False),
        allow_cleartext_auth=c.get(table, "allow_cleartext_auth", bool, path, False),
        source=source,
        timeout=c.positive(table, "timeout", path, DEFAULT_TIMEOUT),
        delivery_wait=c.positive(table, "delivery_wait", path, DEFAULT_DELIVERY_WAIT),
        sender=sender,
        services=MappingProxyType(_parse_services(c, table.get("services", {}), host, f"{path}.services")),
        tls=_parse_tls(c, table.get("tls", {}), f"{path}.tls", base_dir),
        account=account,
    )


def parse_targets(data: dict, base_dir: Path, source: str = "targets", env: Mapping[str, str] = os.environ) -> dict[str, Target]:
    """Validate a parsed TOML document; raise :class:`TargetsError` listing every problem."""
    c = _Collector()
    c.unknown_keys(data, {"targets"}, "(top level)")
    tables = data.get("targets", {})
    targets: dict[str, Target] = {}
    if not isinstance(tables, dict):
        c.error("targets", "expected tables like [targets.NAME]")
    else:
        for name, table in tables.items():
            target = _parse_target(c, name, table, base_dir, env)
            if target is not None:
                targets[name] = target
    if c.errors:
        raise TargetsError(source, c.errors)
    return targets


def load_targets(path: Path, env: Mapping[str, str] = os.environ) -> dict[str, Target]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TargetsError(str(path), ["file not found (give another with --targets-file PATH)"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise TargetsError(str(path), [f"not valid TOML: {exc}"]) from None
    return parse_targets(data, path.resolve().parent, str(path), env)


# --------------------------------------------------------------------------- URL targets

def target_from_url(url: str, env: Mapping[str, str] = os.environ) -> Target:
    """``smtp://host[:port]``, ``pop3s://user@host``… → a one-service target named by the URL.

    The password of a ``user@`` URL comes from ``MAILCONFORM_PASSWORD``, never from the URL; the
    trust anchor for a lab's own CA (or self-signed certificate) from ``MAILCONFORM_CA_FILE``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetsError(url, [f"not a valid URL: {exc}"]) from None
    errors = []
    if parts.scheme not in DEFAULT_PORTS:
        errors.append(f"unknown scheme {parts.scheme!r} (known: {', '.join(DEFAULT_PORTS)})")
    if not parts.hostname:
        errors.append("no host in the URL")
    if parts.password is not None:
        errors.append(f"never put a password in a URL; set {PASSWORD_ENV_FOR_URLS} instead")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        errors.append("a target URL is scheme://[user@]host[:port] with nothing after it")
    if errors:
        raise TargetsError(url, errors)
    if port == 0:
        raise TargetsError(url, ["expected a port 1-65535, got 0"])
    endpoint = Endpoint(parts.hostname, DEFAULT_PORTS[parts.scheme] if port is None else port)
    account = None
    if parts.username:
        account = Account(user=unquote(parts.username), password=env.get(PASSWORD_ENV_FOR_URLS),
                          password_env=PASSWORD_ENV_FOR_URLS)
    ca_file = env.get(CA_FILE_ENV_FOR_URLS)
    return Target(name=url, host=endpoint.host, services=MappingProxyType({parts.scheme: endpoint}),
                  description="given on the command line", account=account,
                  tls=TlsSettings(ca_file=Path(ca_file).resolve() if ca_file else None))


def is_url(spec: str) -> bool:
    return "://" in spec


def resolve_targets(specs: list[str], targets_file: Path, env: Mapping[str, str] = os.environ) -> list[Target]:
    """Turn ``--target`` values (names, URLs, comma lists) into targets, in the order given."""
    wanted = [s.strip() for spec in specs for s in spec.split(",") if s.strip()]
    named = {}
    if any(not is_url(s) for s in wanted):
        named = load_targets(targets_file, env)
    resolved: list[Target] = []
    for spec in wanted:
        if is_url(spec):
            target = target_from_url(spec, env)
        elif spec in named:
            target = named[spec]
        else:
            known = ", ".join(named) or "none"
            raise TargetsError(str(targets_file), [f"unknown target {spec!r} (known: {known}; or give a URL like smtp://host)"])
        if target not in resolved:
            resolved.append(target)
    return resolved
