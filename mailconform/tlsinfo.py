"""TLS facts per endpoint, read by the checks of suites/tls: which lab step grades each endpoint's
TLS rows, the handshake facts and the certificate's properties (ssl + cryptography).

The certificate checks judge what a handshake that does not verify (:func:`reading_context`)
brought back: the whole chain the server sent (:func:`peer_chain`), parsed once per certificate
(:func:`certificate`).  The rules live here, one function each: the validity window
(:func:`validity`), the name per RFC 9525 §6.3 (:func:`matches_name`), the path to a trust anchor
(:func:`verify_chain`, :func:`trust_anchors`), the key, the signature and the extended key usage
(properties of :class:`Certificate`); :func:`describe` is what a transcript shows of a chain, and
:func:`consistency_rows` / :func:`consistency_table` the per-target table across endpoints.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

if TYPE_CHECKING:
    from mailconform.targetrun import TargetRun
    from mailconform.targets import Target

#: Every TLS endpoint a target may offer, and the lab step its TLS rows are graded in.
TLS_STEPS: dict[str, str] = {
    "smtp": "A2.smtp-tls", "submission": "A2.smtp-tls", "smtps": "A2.smtp-tls",
    "pop3": "A3.pop3-tls", "pop3s": "A3.pop3-tls",
    "imap": "E.imap-security", "imaps": "E.imap-security",
}
TLS_ENDPOINTS = tuple(TLS_STEPS)

#: A certificate that ends within this is a warning: renew it now.
EXPIRY_WARNING = datetime.timedelta(days=14)
MIN_RSA_BITS = 2048   # RFC 9325 §4.5
MIN_EC_BITS = 256
WEAK_HASHES = {"md5", "sha1"}  # RFC 9155; RFC 9325 §4.5
MAX_CHAIN = 10  # certificates followed from the leaf towards an anchor, at most


# --------------------------------------------------------------------------- reading the chain

def reading_context() -> ssl.SSLContext:
    """A client context that reads any certificate: no verification, no name check, OpenSSL's
    security level 0 (a 1024-bit key or a SHA-1 signature still completes the handshake, to be
    judged), every protocol version the local OpenSSL has.  It sends the server name (SNI) all the same."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    return context


def peer_chain(sock: ssl.SSLSocket) -> tuple[bytes, ...]:
    """The certificates the server sent, leaf first, as DER: the unverified chain (Python 3.13 has
    it public; 3.10–3.12 on the ``_sslobj``), else the leaf alone."""
    chain = None
    try:
        public = getattr(sock, "get_unverified_chain", None)
        chain = public() if public else sock._sslobj.get_unverified_chain()  # noqa: SLF001 (3.11)
    except (AttributeError, ValueError, ssl.SSLError):
        pass
    if chain:
        return tuple(c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER) for c in chain)
    leaf = sock.getpeercert(binary_form=True)
    return (leaf,) if leaf else ()


# --------------------------------------------------------------------------- one certificate

@dataclass(frozen=True)
class Certificate:
    """One certificate and the properties the checks judge."""

    der: bytes
    cert: x509.Certificate

    @property
    def subject(self) -> str:
        return self.cert.subject.rfc4514_string() or "(empty subject)"

    @property
    def issuer(self) -> str:
        return self.cert.issuer.rfc4514_string() or "(empty issuer)"

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the DER, as ``AB:CD:…``."""
        return hashlib.sha256(self.der).hexdigest().upper()

    @property
    def short_fingerprint(self) -> str:
        return self.fingerprint[:16]

    @property
    def _san(self) -> x509.SubjectAlternativeName | None:
        try:
            return self.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except (x509.ExtensionNotFound, ValueError):
            return None

    @property
    def dns_names(self) -> tuple[str, ...]:
        san = self._san
        return tuple(name.lower().rstrip(".") for name in san.get_values_for_type(x509.DNSName)) if san else ()

    @property
    def ip_addresses(self) -> tuple[str, ...]:
        san = self._san
        return tuple(str(address) for address in san.get_values_for_type(x509.IPAddress)) if san else ()

    @property
    def has_san(self) -> bool:
        return self._san is not None

    @property
    def common_names(self) -> tuple[str, ...]:
        return tuple(str(a.value) for a in self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME))

    @property
    def names(self) -> str:
        """The identities it presents, as the messages name them (SAN entries, else the CN)."""
        listed = [*self.dns_names, *self.ip_addresses]
        if listed:
            return ", ".join(listed)
        return ", ".join(f"CN={cn}" for cn in self.common_names) + " (no subjectAltName)" if self.common_names \
            else "(no names)"

    @property
    def not_before(self) -> datetime.datetime:
        return self.cert.not_valid_before_utc

    @property
    def not_after(self) -> datetime.datetime:
        return self.cert.not_valid_after_utc

    @property
    def self_issued(self) -> bool:
        """Its own issuer, signed by its own key (a self-signed leaf, or a root)."""
        return self.cert.issuer == self.cert.subject and signed_by(self, self)

    @property
    def key(self) -> str:
        """The public key, as a person reads it: ``RSA 2048 bits``, ``EC secp256r1 (256 bits)``, ``Ed25519``."""
        key = self.cert.public_key()
        if isinstance(key, rsa.RSAPublicKey):
            return f"RSA {key.key_size} bits"
        if isinstance(key, ec.EllipticCurvePublicKey):
            return f"EC {key.curve.name} ({key.curve.key_size} bits)"
        if isinstance(key, dsa.DSAPublicKey):
            return f"DSA {key.key_size} bits"
        if isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            return "Ed25519" if isinstance(key, ed25519.Ed25519PublicKey) else "Ed448"
        return type(key).__name__

    @property
    def key_strong(self) -> bool:
        """RSA of at least 2048 bits, EC of at least 256, or Ed25519/Ed448 (RFC 9325 §4.5)."""
        key = self.cert.public_key()
        if isinstance(key, rsa.RSAPublicKey):
            return key.key_size >= MIN_RSA_BITS
        if isinstance(key, ec.EllipticCurvePublicKey):
            return key.curve.key_size >= MIN_EC_BITS
        return isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey))

    @property
    def signature(self) -> str:
        """The signature algorithm's name (``ecdsa-with-SHA256``, ``sha1WithRSAEncryption``…)."""
        oid = self.cert.signature_algorithm_oid
        return getattr(oid, "_name", None) or oid.dotted_string

    @property
    def signature_hash(self) -> str | None:
        """The hash the issuer signed with (``sha256``, ``sha1``…), None for Ed25519/Ed448 or one unknown here."""
        try:
            algorithm = self.cert.signature_hash_algorithm
        except UnsupportedAlgorithm:
            return None
        return algorithm.name if algorithm else None

    @property
    def signature_weak(self) -> bool:
        return self.signature_hash in WEAK_HASHES

    @property
    def usages(self) -> tuple[str, ...] | None:
        """The extended key usages by name (``serverAuth``…), None when the extension is absent."""
        try:
            eku = self.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            return None
        return tuple(getattr(oid, "_name", None) or oid.dotted_string for oid in eku)

    @property
    def server_auth(self) -> bool:
        """No extended key usage (any use), or one that includes serverAuth (or anyExtendedKeyUsage)."""
        try:
            eku = self.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            return True
        return ExtendedKeyUsageOID.SERVER_AUTH in eku or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


@cache
def certificate(der: bytes) -> Certificate:
    """``der`` parsed (once per run and certificate); ValueError when it is not a certificate."""
    return Certificate(der, x509.load_der_x509_certificate(der))


def chain_of(ders: tuple[bytes, ...]) -> tuple[Certificate, ...]:
    """The certificates a server sent, parsed, leaf first."""
    return tuple(certificate(der) for der in ders)


def signed_by(subject: Certificate, issuer: Certificate) -> bool:
    """``issuer`` names and signed ``subject`` (any hash: a SHA-1 signature still verifies here, it is
    judged on its own)."""
    cert = subject.cert
    if cert.issuer != issuer.cert.subject:
        return False
    key = issuer.cert.public_key()
    try:
        parameters = cert.signature_algorithm_parameters  # None for what cryptography no longer signs with (SHA-1)
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, parameters or padding.PKCS1v15(),
                       cert.signature_hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes,
                       parameters or ec.ECDSA(cert.signature_hash_algorithm))
        elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            key.verify(cert.signature, cert.tbs_certificate_bytes)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


# --------------------------------------------------------------------------- the rules

def validity(cert: Certificate, now: datetime.datetime | None = None) -> str:
    """``not-yet-valid``, ``expired``, ``expiring`` (within :data:`EXPIRY_WARNING`) or ``valid``."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if now < cert.not_before:
        return "not-yet-valid"
    if now > cert.not_after:
        return "expired"
    return "expiring" if cert.not_after - now < EXPIRY_WARNING else "valid"


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return None


def is_address(host: str) -> bool:
    """``host`` is an IP address (v4, or v6 with or without brackets), not a host name."""
    return _ip(host) is not None


def _ascii(name: str) -> str:
    name = name.lower().rstrip(".")
    try:
        return name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError:
        return name


def dns_id_matches(presented: str, reference: str) -> bool:
    """RFC 9525 §6.3: a DNS-ID matches the reference name label by label, case-insensitively; a
    wildcard only as the complete left-most label, standing for exactly one label (``*.lab.test``
    matches ``mail.lab.test``, neither ``lab.test`` nor ``a.mail.lab.test``), never for a bare TLD."""
    presented, reference = _ascii(presented), _ascii(reference)
    if "*" not in presented:
        return presented == reference
    wildcard, _, rest = presented.partition(".")
    if wildcard != "*" or "*" in rest or "." not in rest:
        return False
    label, _, parent = reference.partition(".")
    return bool(label) and parent == rest


def matches_name(cert: Certificate, reference: str) -> bool:
    """The certificate names ``reference`` (RFC 9525 §6.3): an IP address against its iPAddress
    SANs, a host name against its DNS-ID SANs.  The subject's CN never counts (RFC 9525 drops the
    CN-ID; clients ignore it when a SAN exists, and modern ones always)."""
    address = _ip(reference)
    if address is not None:
        return any(_ip(presented) == address for presented in cert.ip_addresses)
    return any(dns_id_matches(presented, reference) for presented in cert.dns_names)


def only_in_common_name(cert: Certificate, reference: str) -> bool:
    """The name is only in the subject's CN (no subjectAltName at all): what old tools make."""
    return not cert.has_san and any(_ascii(cn) == _ascii(reference) or dns_id_matches(cn, reference)
                                    for cn in cert.common_names)


@dataclass(frozen=True)
class ChainVerdict:
    """Where the path from the leaf towards a trust anchor led.

    ``problem``: None (it ends at ``anchor``), ``missing-issuer`` (``missing`` names the issuer the
    server did not send and no anchor is: an intermediate left out), ``self-signed`` (the leaf signs
    itself and is no anchor) or ``untrusted-root`` (the path ends at a root that is no anchor).
    ``unused``: certificates the server sent that are not on the path (the anchor, or a
    cross-signed copy of it, does not count)."""

    path: tuple[Certificate, ...]
    anchor: Certificate | None
    problem: str | None
    missing: str = ""
    unused: tuple[Certificate, ...] = ()

    @property
    def top(self) -> Certificate:
        return self.path[-1]


def verify_chain(sent: tuple[Certificate, ...], anchors: tuple[Certificate, ...]) -> ChainVerdict:
    """Follow the issuers from the leaf (``sent[0]``) through what the server sent to one of
    ``anchors``, checking each signature.  Only the path is judged here: the validity, key and
    signature hash of its certificates are other checks' (one flaw, one finding)."""
    leaf = sent[0]
    path = [leaf]
    anchor_ders = {a.der for a in anchors}
    problem, missing, anchor = None, "", None
    while True:
        current = path[-1]
        if current.der in anchor_ders:
            anchor = current
            break
        anchor = next((a for a in anchors if signed_by(current, a)), None)
        if anchor is not None:
            break
        issuer = next((c for c in sent if c not in path and signed_by(current, c)), None)
        if issuer is not None and len(path) < MAX_CHAIN:
            path.append(issuer)
            continue
        if current.self_issued:
            problem = "self-signed" if current is leaf else "untrusted-root"
        else:
            problem, missing = "missing-issuer", current.issuer
        break
    # not on the path: neither the anchor itself nor another certificate of it (a cross-signed root)
    unused = tuple(c for c in sent if c not in path and (anchor is None or c.cert.subject != anchor.cert.subject))
    return ChainVerdict(tuple(path), anchor, problem, missing, unused)


@cache
def trust_anchors(ca_file: Path | None) -> tuple[Certificate, ...]:
    """The certificates of ``ca_file`` (the target's ``tls.ca_file``), else of the system store
    (OpenSSL's default CA file, else the certificates in its CA directory)."""
    if ca_file is not None:
        return _pem_certificates(Path(ca_file).read_bytes())
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return _pem_certificates(Path(candidate).read_bytes())
    directory = Path(paths.capath or paths.openssl_capath or "")
    found: list[Certificate] = []
    if directory.is_dir():
        for path in sorted(directory.iterdir()):
            if path.is_file() and path.suffix in (".pem", ".crt", ".0"):
                found += _pem_certificates(path.read_bytes())
    return tuple(found)


def _pem_certificates(data: bytes) -> tuple[Certificate, ...]:
    """Every certificate of a PEM bundle; a block that does not parse is left out, not fatal."""
    begin = b"-----BEGIN CERTIFICATE-----"
    found = []
    for block in data.split(begin)[1:]:
        try:
            with warnings.catch_warnings():  # an old root's non-positive serial number: still a root
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                cert = x509.load_pem_x509_certificate(begin + block)
        except ValueError:
            continue
        found.append(Certificate(cert.public_bytes(serialization.Encoding.DER), cert))
    return tuple(found)


# --------------------------------------------------------------------------- what a report shows

def describe(chain: tuple[Certificate, ...], now: datetime.datetime | None = None) -> list[str]:
    """Each certificate as PEM, then a readable summary of each (subject, issuer, names, validity,
    key, signature, extended key usage, SHA-256 fingerprint): the summary last, where a terminal
    showing a transcript's tail sees it.  Public data only: a private key is never at hand here."""
    return [line for cert in chain for line in cert.pem.strip().splitlines()] + summary(chain, now)


def summary(chain: tuple[Certificate, ...], now: datetime.datetime | None = None) -> list[str]:
    """A readable summary of each certificate of ``chain``, leaf first."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    lines: list[str] = []
    for index, cert in enumerate(chain, 1):
        role = "the server's" if index == 1 else "sent with it"
        days = (cert.not_after - now).days
        lines += [
            f"certificate {index} of {len(chain)} ({role}): subject {cert.subject}",
            f"  issuer: {cert.issuer}" + (" (self-signed)" if cert.self_issued else ""),
            f"  names (subjectAltName): {cert.names}",
            f"  valid from {cert.not_before:%Y-%m-%d %H:%M} to {cert.not_after:%Y-%m-%d %H:%M} UTC"
            f" ({validity(cert, now)}, {days} day(s) left)",
            f"  key: {cert.key}; signature: {cert.signature}",
            f"  extended key usage: {', '.join(cert.usages) if cert.usages is not None else '(none: any use)'}",
            f"  SHA-256 fingerprint: {':'.join(cert.fingerprint[i:i + 2] for i in range(0, 64, 2))}",
        ]
    return lines


@dataclass(frozen=True)
class ConsistencyRow:
    """One endpoint of the per-target consistency table: its leaf's fingerprint and names, which
    service host names they cover, the negotiated version and cipher, and the lowest TLS version
    it accepts (``floor``: None when no probe told)."""

    service: str
    endpoint: str
    fingerprint: str
    names: str
    covers: Mapping[str, bool]   # every service host name of the target → the leaf names it
    version: str
    cipher: str
    floor: str | None = None


def service_names(target: Target) -> tuple[str, ...]:
    """The names the target's TLS endpoints are reached by (``tls.server_name``, else each host)."""
    names = (target.server_name(target.endpoint(s)) for s in TLS_ENDPOINTS if target.endpoint(s))
    return tuple(dict.fromkeys(names))


def consistency_rows(target: Target, presented: Mapping[str, object],
                     floor: Callable[[str], str | None] = lambda service: None) -> list[ConsistencyRow]:
    """The table's rows for the endpoints in ``presented`` (service → the HandshakeFacts of its
    certificate observation: ``version``, ``cipher``, ``chain``), in TLS_ENDPOINTS order.
    ``floor(service)``: the lowest TLS version the endpoint accepts, from the protocol probes
    (the hook for suites/tls/test_protocols.py's observations)."""
    names = service_names(target)
    rows = []
    for service in TLS_ENDPOINTS:
        facts = presented.get(service)
        if facts is None or not facts.chain:
            continue
        leaf = certificate(facts.chain[0])
        rows.append(ConsistencyRow(service, str(target.endpoint(service)), leaf.fingerprint, leaf.names,
                                   {name: matches_name(leaf, name) for name in names}, facts.version,
                                   facts.cipher, floor(service)))
    return rows


def consistency_table(run: TargetRun, floor: Callable[[str], str | None]) -> list[ConsistencyRow]:
    """The consistency table of one target from what its run observed (no connection is made): a
    row per endpoint whose certificate observation was made and completed a handshake; ``floor``
    as in :func:`consistency_rows` (:func:`mailconform.tlsprobe.lowest_accepted`)."""
    presented = {}
    for service in TLS_ENDPOINTS:
        observed = run.observed(("certificate", service))
        if observed is not None and observed.error is None and observed.value.answer is not None:
            presented[service] = observed.value.answer
    return consistency_rows(run.target, presented, floor)
