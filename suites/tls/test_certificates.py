"""The certificate every TLS endpoint presents (graded in A2.smtp-tls, A3.pop3-tls and
E.imap-security): inside its validity window, issued for the name clients reach it by, sent with
its whole chain, trusted (not self-signed), with a strong key and signature, for server use.

Every row reads one observation per endpoint: a handshake that does not verify, so an expired,
self-signed or misnamed certificate is read and judged (:meth:`certificate` of the factories);
the chain is shown in the transcript as PEM and as a summary.  Port 25 is server-to-server TLS,
opportunistic (RFC 7435): there an untrusted or misnamed certificate is a warning (senders still
encrypt); on submission, smtps, POP3 and IMAP, where mail clients verify, a failure.  An endpoint
whose STARTTLS/STLS is refused, or where no handshake works at all, is blocked by the check that
judges that upgrade.
"""

from __future__ import annotations

import datetime

from mailconform import tlsinfo
from mailconform.checks import Blocked, check, expect, say
from mailconform.targetrun import OPPORTUNISTIC_SERVICE
from mailconform.tlsinfo import TLS_ENDPOINTS, TLS_STEPS

CHAIN_CHECK = "tls.cert.chain"


def where(tls, endpoint: str) -> str:
    """``smtps (127.0.10.2:465)``: the endpoint as the messages name it (not applicable when absent)."""
    return f"{endpoint} ({tls.endpoint(endpoint)})"


def sent(tls, endpoint: str) -> tuple[tlsinfo.Certificate, ...]:
    """The chain ``endpoint`` presents, parsed, leaf first (any factory reads any TLS endpoint's)."""
    return tlsinfo.chain_of(tls.certificate(endpoint).chain)


def path(tls, target, endpoint: str) -> tlsinfo.ChainVerdict:
    """Where the chain ``endpoint`` sent leads: to the target's trust anchor, or where it stops."""
    return tlsinfo.verify_chain(sent(tls, endpoint), tlsinfo.trust_anchors(target.tls.ca_file))


def anchor_of(target) -> str:
    return f"tls.ca_file {target.tls.ca_file}" if target.tls.ca_file else say("system-store")


@check("tls.cert.validity", step=TLS_STEPS, endpoints=TLS_ENDPOINTS, rfc="5280#4.1.2.5", level="MUST",
       severity="high", catalogue="TLS-CERT-VALIDITY")
def test_the_certificate_is_within_its_validity_window(tls, endpoint):
    """RFC 5280 §4.1.2.5 (paraphrased): the validity period is the interval, from notBefore to
    notAfter, during which the CA warrants that it will maintain information about the status of the
    certificate; outside it clients refuse the certificate.  RFC 8314 §4.4 (paraphrased): mail
    servers keep their certificates valid.  One that ends within 14 days is a warning: renew it.
    """
    leaf = sent(tls, endpoint)[0]
    now = datetime.datetime.now(datetime.timezone.utc)
    state = tlsinfo.validity(leaf, now)
    fields = {"endpoint": where(tls, endpoint), "start": f"{leaf.not_before:%Y-%m-%d %H:%M} UTC",
              "end": f"{leaf.not_after:%Y-%m-%d %H:%M} UTC", "days": abs((leaf.not_after - now).days)}
    expect(state != "not-yet-valid", "not-yet-valid", **fields)
    expect(state != "expired", "expired", **fields)
    expect(state != "expiring", "expiring", tolerated=True, **fields)


@check("tls.cert.name", step=TLS_STEPS, endpoints=TLS_ENDPOINTS, rfc="9525#6.3", level="MUST",
       severity="high", catalogue="TLS-CERT-NAME")
def test_the_certificate_names_the_server(tls, target, endpoint):
    """RFC 9525 §6.3 (paraphrased): the client compares the DNS domain name it was given with the
    DNS-IDs (subjectAltName dNSName entries) of the certificate, label by label and ignoring case; a
    wildcard matches only as the complete left-most label, and stands for exactly one label.  The
    subject's Common Name is no identifier (RFC 9525 no longer uses CN-IDs); an IP address is
    matched against iPAddress entries.  The name checked is the one clients reach the server by:
    ``tls.server_name``, else the host.  On port 25 a mismatch is a warning (opportunistic TLS).
    """
    leaf = sent(tls, endpoint)[0]
    name = target.server_name(tls.endpoint(endpoint))
    fields = {"endpoint": where(tls, endpoint), "name": name, "names": leaf.names}
    matches = tlsinfo.matches_name(leaf, name)
    cn_only = not matches and tlsinfo.only_in_common_name(leaf, name)
    if endpoint == OPPORTUNISTIC_SERVICE:  # opportunistic TLS: a warning, with a message that says why
        expect(not cn_only, "cn-only-25", tolerated=True, **fields)
        expect(matches or cn_only, "mismatch-25", tolerated=True, **fields)
    else:
        expect(not cn_only, "cn-only", **fields)
        expect(matches, "mismatch", **fields)


@check("tls.cert.chain", step=TLS_STEPS, endpoints=TLS_ENDPOINTS, rfc="5246#7.4.2", level="MUST",
       severity="high", catalogue="TLS-CERT-CHAIN")
def test_the_server_sends_its_whole_chain(tls, target, endpoint):
    """RFC 5246 §7.4.2: "This is a sequence (chain) of certificates.  The sender's certificate MUST
    come first in the list.  Each following certificate MUST directly certify the one preceding it."
    (RFC 8446 §4.4.2 keeps the leaf first and lets clients build the path.)  The server sends every
    intermediate certificate between its own and the trust anchor (the root may be left out): a
    client cannot fetch a missing one.  Certificates sent that are not on the path are a warning.
    On port 25 an incomplete chain is a warning (opportunistic TLS).
    """
    verdict = path(tls, target, endpoint)
    at = where(tls, endpoint)
    complete = verdict.problem != "missing-issuer"
    fields = {"endpoint": at, "certified": verdict.top.subject, "issuer": verdict.missing,
              "count": len(sent(tls, endpoint)), "anchor": anchor_of(target)}
    if endpoint == OPPORTUNISTIC_SERVICE:  # opportunistic TLS: a warning, with a message that says why
        expect(complete, "missing-issuer-25", tolerated=True, **fields)
    else:
        expect(complete, "missing-issuer", **fields)
    expect(not verdict.unused, "unused", tolerated=True, endpoint=at,
           subjects="; ".join(cert.subject for cert in verdict.unused))


@check("tls.cert.trust", step=TLS_STEPS, endpoints=TLS_ENDPOINTS, rfc="8314#5.3", level="MUST",
       severity="high", catalogue="TLS-CERT-TRUST")
def test_the_chain_ends_at_the_trust_anchor(tls, target, endpoint):
    """RFC 8314 §5.3 (paraphrased): a mail client does not treat a session as confidential unless
    the server's certificate is validated (RFC 5280 path validation to a trust anchor it holds).
    The chain must end at the target's trust anchor (``tls.ca_file``, else the system store): a
    self-signed certificate, or a root the anchor does not hold, fails where mail clients verify
    (submission, smtps, POP3, IMAP) and is a warning on port 25 (RFC 7435 opportunistic TLS; it
    still breaks MTA-STS, RFC 8461 §4.2).  An incomplete chain is judged by tls.cert.chain.
    """
    verdict = path(tls, target, endpoint)
    at = where(tls, endpoint)
    if verdict.problem == "missing-issuer":
        raise Blocked(f"{CHAIN_CHECK}@{endpoint}", say("incomplete", endpoint=at, issuer=verdict.missing))
    top = verdict.top.subject
    fields = {"endpoint": at, "certified": top, "root": top, "anchor": anchor_of(target)}
    if endpoint == OPPORTUNISTIC_SERVICE:  # opportunistic TLS: a warning, with a message that says why
        expect(verdict.problem != "self-signed", "self-signed-25", tolerated=True, **fields)
        expect(verdict.problem != "untrusted-root", "untrusted-root-25", tolerated=True, **fields)
    else:
        expect(verdict.problem != "self-signed", "self-signed", **fields)
        expect(verdict.problem != "untrusted-root", "untrusted-root", **fields)


@check("tls.cert.key", step=TLS_STEPS, endpoints=TLS_ENDPOINTS, rfc="9325#4.5", level="MUST",
       severity="high", catalogue="TLS-CERT-KEY")
def test_the_certificate_key_is_strong(tls, endpoint):
    """RFC 9325 §4.5 (paraphrased; RFC 7525 §4.3 said "When using RSA, servers SHOULD authenticate
    using certificates with at least a 2048-bit modulus for the public key", RFC 9325 made it a
    MUST): an RSA key of at least 2048 bits, or an elliptic-curve key of at least 256 bits
    (P-256, P-384…), or Ed25519/Ed448.
    """
    leaf = sent(tls, endpoint)[0]
    expect(leaf.key_strong, "weak", endpoint=where(tls, endpoint), described=leaf.key)


@check("tls.cert.signature", step=TLS_STEPS, endpoints=TLS_ENDPOINTS, rfc="9155", level="MUST NOT",
       severity="high", catalogue="TLS-CERT-SIGALG")
def test_the_chain_is_not_signed_with_md5_or_sha1(tls, target, endpoint):
    """RFC 9155 (paraphrased): MD5 and SHA-1 signature hashes are deprecated in TLS 1.2 — clients
    MUST NOT offer them, servers MUST NOT use them — since collisions can be made for both; current
    clients refuse certificates signed with them too (the catalogue cites RFC 9325 §4.5 likewise).
    The server's certificate and every intermediate on its path are signed with SHA-256 or better;
    a self-signed root's own signature is not judged (its key is what is trusted).
    """
    weak = [cert for cert in path(tls, target, endpoint).path if cert.signature_weak and not cert.self_issued]
    expect(not weak, "weak", endpoint=where(tls, endpoint),
           signed="; ".join(f"{cert.subject}: {cert.signature}" for cert in weak))


@check("tls.cert.eku", step=TLS_STEPS, endpoints=TLS_ENDPOINTS, rfc="5280#4.2.1.12", level="MUST",
       severity="low", catalogue="TLS-CERT-EKU")
def test_the_certificate_may_serve_tls_servers(tls, endpoint):
    """RFC 5280 §4.2.1.12: "If the extension is present, then the certificate MUST only be used for
    one of the purposes indicated."  A server certificate has no extended key usage, or one that
    includes serverAuth (id-kp-serverAuth, "TLS WWW server authentication").
    """
    leaf = sent(tls, endpoint)[0]
    expect(leaf.server_auth, "no-server-auth", endpoint=where(tls, endpoint),
           usages=", ".join(leaf.usages or ()))
