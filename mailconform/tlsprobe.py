"""Probe handshakes: what an endpoint accepts besides the run's own handshake — one old or new
protocol version offered alone, or one family of weak cipher suites offered alone on TLS 1.2.

Each probe is one connection per (endpoint, probe), made once per run as an observation (its
transcript shows the STARTTLS/STLS and the handshake), with a client of its own that verifies
nothing (the certificate is judged by the certificate checks).  TLS 1.0 and 1.1 are first offered
together, and the four weak families together (:data:`GROUPS`): a refusal answers for every
member, an acceptance names the member taken, and only the members left open are probed alone —
a healthy endpoint costs three probes (TLS 1.2, the old versions, the weak suites), plus TLS 1.3
alone when the run's own handshake did not get it.  A probe ends in one of:

``accepted``     the server negotiated what was offered (version and suite are kept);
``refused``      the server said no: a handshake alert (``protocol_version``, ``handshake_failure``,
                 ``insufficient_security``…), a version other than the one offered, or the
                 connection closed or reset during the handshake;
``unavailable``  this client cannot offer it (the local OpenSSL has no TLS 1.0, say): nothing is
                 sent, and the check is inconclusive, never a pass;
``timeout``      no answer within the target's timeout: inconclusive;
``broke``        anything else (an answer that is not TLS): inconclusive.

Versions are probed with an :class:`ssl.SSLContext` whose minimum and maximum are that version
(``@SECLEVEL=0`` for the old ones).  Weak suite families are probed with a ClientHello written
here (:class:`HelloOnly`): OpenSSL 3 has no RC4, EXPORT or 3DES suites to offer, but whether a
server accepts one shows in its first answer — a ServerHello naming one of the offered suites, or
an alert — so no local cipher implementation is needed and nothing is encrypted: the connection is
closed right after that answer.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import warnings
from dataclasses import dataclass
from functools import cache
from ipaddress import ip_address
from typing import TYPE_CHECKING, Callable, Mapping

from mailconform import messages
from mailconform.observations import TlsRefused, secure
from mailconform.sessions import TlsFactory
from mailconform.targets import IMPLICIT_TLS
from mailconform.verdicts import Inconclusive
from mailconform.wire import TlsFailed, Transcript
from mailconform.wire.connection import Connection

if TYPE_CHECKING:
    from mailconform.targetrun import TargetRun

#: The catalogue table of the sentences every probe check shares (not a check of its own).
MESSAGES = "tls.probe"

ACCEPTED, REFUSED, UNAVAILABLE, TIMEOUT, BROKE = "accepted", "refused", "unavailable", "timeout", "broke"

#: Legacy probes offer everything this OpenSSL still has (a server that takes any of it is found).
LEGACY_CIPHERS = "ALL:@SECLEVEL=0"


@dataclass(frozen=True, eq=False)  # hashed by identity: one per name
class Probe:
    """What is offered alone: protocol versions ``version``…``maximum`` (just ``version`` when no
    maximum; with ``ciphers``), or weak ``suites`` (IANA code → OpenSSL name) on TLS 1.2."""

    name: str
    label: str
    version: ssl.TLSVersion | None = None
    ciphers: str | None = None
    suites: Mapping[int, str] | None = None
    maximum: ssl.TLSVersion | None = None

    def covers(self, result: "ProbeResult") -> bool:
        """Whether what an accepted probe negotiated is this probe's version or one of its suites."""
        if self.suites is not None:
            return result.cipher in self.suites.values()
        return result.version == VERSION_NAMES[self.version]


VERSION_NAMES = {ssl.TLSVersion.TLSv1: "TLSv1", ssl.TLSVersion.TLSv1_1: "TLSv1.1", ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                 ssl.TLSVersion.TLSv1_3: "TLSv1.3"}
VERSION_PROBES = {
    "tls1.0": Probe("tls1.0", "TLS 1.0", ssl.TLSVersion.TLSv1, LEGACY_CIPHERS),
    "tls1.1": Probe("tls1.1", "TLS 1.1", ssl.TLSVersion.TLSv1_1, LEGACY_CIPHERS),
    "tls1.2": Probe("tls1.2", "TLS 1.2", ssl.TLSVersion.TLSv1_2),
    "tls1.3": Probe("tls1.3", "TLS 1.3", ssl.TLSVersion.TLSv1_3),
}

# IANA TLS Cipher Suites registry (RFC 5246 App. A.5, RFC 4346, RFC 4492 §6); OpenSSL's names.
NULL_SUITES = {0x0001: "NULL-MD5", 0x0002: "NULL-SHA", 0x003B: "NULL-SHA256", 0xC001: "ECDH-ECDSA-NULL-SHA",
               0xC006: "ECDHE-ECDSA-NULL-SHA", 0xC00B: "ECDH-RSA-NULL-SHA", 0xC010: "ECDHE-RSA-NULL-SHA",
               0xC015: "AECDH-NULL-SHA"}
EXPORT_SUITES = {0x0003: "EXP-RC4-MD5", 0x0006: "EXP-RC2-CBC-MD5", 0x0008: "EXP-DES-CBC-SHA",
                 0x000B: "EXP-DH-DSS-DES-CBC-SHA", 0x000E: "EXP-DH-RSA-DES-CBC-SHA",
                 0x0011: "EXP-EDH-DSS-DES-CBC-SHA", 0x0014: "EXP-EDH-RSA-DES-CBC-SHA",
                 0x0017: "EXP-ADH-RC4-MD5", 0x0019: "EXP-ADH-DES-CBC-SHA",
                 0x0062: "EXP1024-DES-CBC-SHA", 0x0064: "EXP1024-RC4-SHA"}
RC4_SUITES = {0x0004: "RC4-MD5", 0x0005: "RC4-SHA", 0x0018: "ADH-RC4-MD5", 0xC002: "ECDH-ECDSA-RC4-SHA",
              0xC007: "ECDHE-ECDSA-RC4-SHA", 0xC00C: "ECDH-RSA-RC4-SHA", 0xC011: "ECDHE-RSA-RC4-SHA",
              0xC016: "AECDH-RC4-SHA"}
TRIPLE_DES_SUITES = {0x000A: "DES-CBC3-SHA", 0x000D: "DH-DSS-DES-CBC3-SHA", 0x0010: "DH-RSA-DES-CBC3-SHA",
                     0x0013: "EDH-DSS-DES-CBC3-SHA", 0x0016: "EDH-RSA-DES-CBC3-SHA", 0x001B: "ADH-DES-CBC3-SHA",
                     0xC003: "ECDH-ECDSA-DES-CBC3-SHA", 0xC008: "ECDHE-ECDSA-DES-CBC3-SHA",
                     0xC00D: "ECDH-RSA-DES-CBC3-SHA", 0xC012: "ECDHE-RSA-DES-CBC3-SHA",
                     0xC017: "AECDH-DES-CBC3-SHA"}

CIPHER_PROBES = {
    "null": Probe("null", "NULL suites (no encryption) on TLS 1.2", suites=NULL_SUITES),
    "export": Probe("export", "EXPORT suites (40/56-bit) on TLS 1.2", suites=EXPORT_SUITES),
    "rc4": Probe("rc4", "RC4 suites on TLS 1.2", suites=RC4_SUITES),
    "3des": Probe("3des", "3DES suites on TLS 1.2", suites=TRIPLE_DES_SUITES),
}
#: Probes of several members at once, made first: a server that refuses the group refuses each
#: member, and one that accepts names the member it took; only then is a member probed alone.  A
#: healthy endpoint costs one connection for TLS 1.0 and 1.1 and one for all four weak families.
GROUPS = {
    "old": Probe("old", "TLS 1.0 or 1.1", ssl.TLSVersion.TLSv1, LEGACY_CIPHERS, maximum=ssl.TLSVersion.TLSv1_1),
    "weak": Probe("weak", "NULL, EXPORT, RC4 or 3DES suites on TLS 1.2",
                  suites={**NULL_SUITES, **EXPORT_SUITES, **RC4_SUITES, **TRIPLE_DES_SUITES}),
}
GROUP_OF = {"tls1.0": "old", "tls1.1": "old", **dict.fromkeys(CIPHER_PROBES, "weak")}
PROBES = {**VERSION_PROBES, **CIPHER_PROBES, **GROUPS}


@dataclass(frozen=True)
class ProbeResult:
    """What one probe found: the outcome, what was negotiated (accepted) or why not (``detail``)."""

    outcome: str
    detail: str = ""
    version: str = ""
    cipher: str = ""

    @property
    def accepted(self) -> bool:
        return self.outcome == ACCEPTED


# --------------------------------------------------------------------------- what this client can offer

def version_context(probe: Probe) -> ssl.SSLContext:
    """A client context offering ``probe``'s versions alone; it verifies nothing (certificates are
    judged elsewhere).  Raises ValueError or ssl.SSLError when this OpenSSL cannot be set so."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():  # TLSv1 and TLSv1_1 are deprecated names: probing them is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        context.maximum_version = probe.maximum or probe.version
        context.minimum_version = probe.version
    if probe.ciphers:
        context.set_ciphers(probe.ciphers)
    return context


@cache
def unavailable(probe: Probe) -> str | None:
    """Why this client cannot offer ``probe`` (None: it can): the context is made and a ClientHello
    written into memory, no connection.  A hand-written ClientHello can always be offered."""
    if probe.suites is not None:
        return None
    try:
        context = version_context(probe)
        context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="probe.invalid").do_handshake()
    except ssl.SSLWantReadError:  # the ClientHello is written; the answer would come next
        return None
    except (ssl.SSLError, ValueError) as error:
        return f"{ssl.OPENSSL_VERSION}: {error}"
    return None


# --------------------------------------------------------------------------- a ClientHello written here

class HelloRefused(ssl.SSLError):
    """The server answered the hand-written ClientHello with an alert."""


ALERTS = {10: "unexpected_message", 40: "handshake_failure", 47: "illegal_parameter", 50: "decode_error",
          70: "protocol_version", 71: "insufficient_security", 80: "internal_error", 112: "unrecognized_name"}
_GROUPS = (0x001D, 0x0017, 0x0018, 0x0019)  # x25519, secp256r1, secp384r1, secp521r1
_SIGNATURES = (0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0203, 0x0201)
_RENEGOTIATION_SCSV = 0x00FF
_HANDSHAKE, _ALERT = 22, 21


def _vector(data: bytes, size: int) -> bytes:
    return len(data).to_bytes(size, "big") + data


def _extension(kind: int, body: bytes) -> bytes:
    return struct.pack("!H", kind) + _vector(body, 2)


def client_hello(suites: Mapping[int, str], server_name: str | None) -> bytes:
    """A TLS 1.2 ClientHello record offering ``suites`` (and the renegotiation SCSV) with the
    extensions an ECDHE suite needs (groups, point formats, signature algorithms) and SNI."""
    offered = b"".join(struct.pack("!H", code) for code in (*suites, _RENEGOTIATION_SCSV))
    extensions = [_extension(10, _vector(b"".join(struct.pack("!H", g) for g in _GROUPS), 2)),
                  _extension(11, _vector(b"\x00", 1)),
                  _extension(13, _vector(b"".join(struct.pack("!H", s) for s in _SIGNATURES), 2))]
    if server_name and not _is_address(server_name):
        name = server_name.encode("idna")
        extensions.insert(0, _extension(0, _vector(b"\x00" + _vector(name, 2), 2)))
    body = (b"\x03\x03" + os.urandom(32) + _vector(b"", 1) + _vector(offered, 2) + _vector(b"\x00", 1)
            + _vector(b"".join(extensions), 2))
    handshake = b"\x01" + _vector(body, 3)
    return bytes([_HANDSHAKE]) + b"\x03\x01" + _vector(handshake, 2)


def _is_address(name: str) -> bool:
    try:
        ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


class HelloOnly:
    """What :meth:`Connection.start_tls` takes for a context: it sends :func:`client_hello` and
    reads only the server's first answer (see :class:`_HelloSocket`)."""

    def __init__(self, suites: Mapping[int, str]):
        self.suites = suites

    def wrap_socket(self, sock: socket.socket, server_hostname: str | None = None,
                    do_handshake_on_connect: bool = False) -> "_HelloSocket":
        return _HelloSocket(sock, self.suites, client_hello(self.suites, server_hostname))


class _HelloSocket:
    """A handshake that stops at the ServerHello: ``do_handshake`` returns once the server named one
    of the offered suites, raises :class:`HelloRefused` on an alert, SSLEOFError when the server
    closes, ssl.SSLError when the answer is not a ServerHello; SSLWantRead/Write while waiting (the
    connection's handshake loop keeps the deadline).  Nothing else is ever sent or received."""

    def __init__(self, sock: socket.socket, suites: Mapping[int, str], hello: bytes):
        self._sock, self._suites = sock, suites
        self._out, self._in = hello, b""
        self._version, self._cipher = "", ""

    def fileno(self) -> int:
        return self._sock.fileno()

    def settimeout(self, value: float | None) -> None:
        self._sock.settimeout(value)

    def close(self) -> None:
        self._sock.close()

    def version(self) -> str:
        return self._version

    def cipher(self) -> tuple[str, str, int]:
        return self._cipher, self._version, 0

    def do_handshake(self) -> None:
        while self._out:
            try:
                self._out = self._out[self._sock.send(self._out):]
            except BlockingIOError:
                raise ssl.SSLWantWriteError() from None
        while not self._answered():
            try:
                data = self._sock.recv(4096)
            except BlockingIOError:
                raise ssl.SSLWantReadError() from None
            if not data:
                raise ssl.SSLEOFError("the server closed the connection during the handshake")
            self._in += data

    def _answered(self) -> bool:
        """True once the ServerHello is read; raises for an alert or an answer that is not TLS."""
        data = self._in
        if len(data) < 5:
            return False
        kind, length = data[0], struct.unpack("!H", data[3:5])[0]
        if kind == _ALERT:
            if len(data) < 7:
                return False
            raise HelloRefused(f"alert {ALERTS.get(data[6], data[6])}")
        if kind != _HANDSHAKE or data[1] != 3:
            raise ssl.SSLError(f"the answer is not TLS: {data[:16]!r}")
        if len(data) < 5 + length:
            return False
        record = data[5:5 + length]
        if len(record) < 39 or record[0] != 2:  # ServerHello: type, length, version, random, session id
            raise ssl.SSLError("the first handshake message is not a ServerHello")
        version, session = struct.unpack("!H", record[4:6])[0], record[38]
        suite = struct.unpack("!H", record[39 + session:41 + session])[0]
        if suite not in self._suites:
            raise ssl.SSLError(f"the server chose suite 0x{suite:04X}, which was not offered")
        self._version = {0x0301: "TLSv1", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2"}.get(version, f"0x{version:04X}")
        self._cipher = self._suites[suite]
        return True


# --------------------------------------------------------------------------- making a probe

#: OpenSSL's reasons for a handshake the server would not have: its alert, or it chose another version.
_REFUSAL_REASONS = ("ALERT", "UNSUPPORTED_PROTOCOL", "VERSION_TOO_LOW", "VERSION_TOO_HIGH")
_CLOSED = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError, ConnectionAbortedError, BrokenPipeError)


def classify(error: TlsFailed) -> ProbeResult:
    """A failed probe handshake: refused by the server, a timeout, or broken otherwise (the wire
    keeps what the handshake raised as the TlsFailed's context)."""
    cause = error.__context__
    detail = str(error) if cause is None else (getattr(cause, "strerror", None) or str(cause.args[-1] if cause.args else cause))
    if isinstance(cause, (TimeoutError, socket.timeout)):
        return ProbeResult(TIMEOUT, str(error))
    if isinstance(cause, (HelloRefused, *_CLOSED)) or (
            isinstance(cause, ssl.SSLError) and any(word in (getattr(cause, "reason", None) or "") for word in _REFUSAL_REASONS)):
        return ProbeResult(REFUSED, detail)
    return ProbeResult(BROKE, detail)


def _context(probe: Probe):
    return HelloOnly(probe.suites) if probe.suites is not None else version_context(probe)


def _secured(run: TargetRun, transcript: Transcript, service: str, context) -> Connection:
    """A new connection to ``service`` once the probe's handshake is done: implicit TLS from the
    first byte, else after the greeting and the protocol's STARTTLS/STLS."""
    endpoint = run.target.endpoint(service)
    if service in IMPLICIT_TLS:
        return Connection.open(endpoint.host, endpoint.port, timeout=run.target.timeout, transcript=transcript,
                               source=run.target.source, tls=context, server_name=run.target.server_name(endpoint),
                               budget=run.budget, service=service)
    session = run.connect(service, transcript)
    try:
        secure(run, session, service, context=context)
    except BaseException:
        session.close()
        raise
    return session.connection


def attempt(connect: Callable[[], Connection]) -> ProbeResult:
    """The outcome of ``connect()``, a connection whose handshake offers one probe: accepted (what
    was negotiated), else :func:`classify`'s verdict.  A refused STARTTLS/STLS command is raised."""
    try:
        connection = connect()
    except TlsRefused:
        raise
    except TlsFailed as error:
        return classify(error)
    result = ProbeResult(ACCEPTED, version=connection.sock.version() or "", cipher=connection.sock.cipher()[0])
    connection.close()
    return result


def probe_handshake(run: TargetRun, transcript: Transcript, service: str, probe: Probe) -> ProbeResult:
    """Connect to ``service`` and handshake offering ``probe`` alone; a dead service or a refused
    STARTTLS/STLS command is raised (a WireError: the observation's error)."""
    why = unavailable(probe)
    if why is not None:
        transcript.note(f"not sent: this client cannot offer {probe.label} ({why})")
        return ProbeResult(UNAVAILABLE, why)
    return attempt(lambda: _secured(run, transcript, service, _context(probe)))


# --------------------------------------------------------------------------- what the checks read

def negotiated_version(tls: TlsFactory, service: str) -> str:
    """The version ``service`` negotiates with a client that offers every version (the handshake
    that reads its certificate, shared with the certificate checks): not applicable when the target
    does not offer ``service``; blocked by the check that judges the upgrade (STARTTLS, STLS,
    implicit TLS) when it is refused or no handshake works at all.  A certificate that does not
    verify blocks nothing here: versions and suites are judged all the same."""
    return tls.certificate(service).version


def probe(tls: TlsFactory, service: str, name: str) -> ProbeResult:
    """What ``service`` does with the probe ``name`` of :data:`PROBES` (its group's answer when that
    decides it, see :data:`GROUPS`): not applicable or blocked as :func:`negotiated_version` is,
    inconclusive when a probe connection itself broke (a service that no longer answers, an
    upgrade command refused this time).
    Undecided outcomes are returned: :func:`decided` makes them inconclusive."""
    negotiated_version(tls, service)
    if name in GROUP_OF:
        together = _observed(tls, service, GROUP_OF[name])
        if together.outcome == REFUSED or together.accepted and PROBES[name].covers(together):
            return together
    return _observed(tls, service, name)


def _observed(tls: TlsFactory, service: str, name: str) -> ProbeResult:
    """The probe ``name`` on ``service``, made once per run, its transcript shown."""
    chosen = PROBES[name]
    observed = tls.run.shows(tls.target_run.observe(
        ("tls-probe", service, name), f"{service} TLS probe: {chosen.label} only",
        lambda transcript: probe_handshake(tls.target_run, transcript, service, chosen)))
    if observed.error is not None:
        raise Inconclusive(messages.message(MESSAGES, "probe-broke", probe=chosen.label, error=observed.error))
    return observed.value


def lowest_accepted(run: TargetRun, service: str) -> str | None:
    """The lowest TLS version ``service`` accepted in this run's version probes (read, never made):
    None unless every lower version was probed (alone or in its group) and refused."""
    for name in VERSION_PROBES:
        result = _seen(run, service, name)
        if result is None and name in GROUP_OF:
            together = _seen(run, service, GROUP_OF[name])
            if together is not None and (together.outcome == REFUSED or together.accepted and PROBES[name].covers(together)):
                result = together
        if result is None or result.outcome not in (ACCEPTED, REFUSED):
            return None
        if result.accepted:
            return VERSION_NAMES[VERSION_PROBES[name].version]
    return None


def _seen(run: TargetRun, service: str, name: str) -> ProbeResult | None:
    observed = run.observed(("tls-probe", service, name))
    return observed.value if observed is not None and observed.error is None else None


def decided(result: ProbeResult, name: str) -> ProbeResult:
    """``result`` when the server accepted or refused; else inconclusive, saying why (never a pass)."""
    if result.outcome not in (ACCEPTED, REFUSED):
        raise Inconclusive(messages.message(MESSAGES, result.outcome, probe=PROBES[name].label, detail=result.detail))
    return result
