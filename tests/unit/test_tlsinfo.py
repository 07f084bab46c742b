"""mailconform.tlsinfo: the certificate rules on certificates made here (fixtures.pki.flawed) —
RFC 9525 name matching, the validity window, the path to a trust anchor, key, signature, EKU —
and what a report shows of a chain."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fixtures.pki import _ca_certificate, _server_certificate
from fixtures.pki.flawed import FLAWS, authority, issue
from mailconform import tlsinfo
from mailconform.observations import Handshake, HandshakeFacts
from mailconform.targetrun import Observed
from mailconform.targets import load_targets
from mailconform.wire import Transcript

NAME, ADDRESS = "mail.lab.test", "192.0.2.25"
DAY = datetime.timedelta(days=1)


def parsed(cert) -> tlsinfo.Certificate:
    return tlsinfo.certificate(cert.public_bytes(serialization.Encoding.DER))


@pytest.fixture(scope="module")
def trusted():
    return authority("unit-test CA")


@pytest.fixture(scope="module")
def made(trusted):
    """flaw → (the chain it sends, parsed; the anchor, parsed)."""
    return {flaw: (tuple(parsed(c) for c in issued.chain), parsed(issued.anchor))
            for flaw, issued in ((flaw, issue(flaw, NAME, ADDRESS, trusted)) for flaw in FLAWS)}


def leaf(made, flaw) -> tlsinfo.Certificate:
    return made[flaw][0][0]


def verdict(made, flaw) -> tlsinfo.ChainVerdict:
    sent, anchor = made[flaw]
    return tlsinfo.verify_chain(sent, (anchor,))


# --------------------------------------------------------------------------- names (RFC 9525 §6.3)

@pytest.mark.parametrize("presented, reference, matches", [
    ("mail.lab.test", "mail.lab.test", True),
    ("MAIL.Lab.Test.", "mail.lab.test", True),
    ("mail.lab.test", "smtp.lab.test", False),
    ("*.lab.test", "mail.lab.test", True),
    ("*.lab.test", "lab.test", False),               # the wildcard stands for exactly one label
    ("*.lab.test", "a.mail.lab.test", False),
    ("m*.lab.test", "mail.lab.test", False),         # only as the complete left-most label
    ("mail.*.test", "mail.lab.test", False),
    ("*.test", "lab.test", False),                   # never for a bare top-level domain
])
def test_dns_ids_match_label_by_label_with_a_left_most_wildcard_only(presented, reference, matches):
    assert tlsinfo.dns_id_matches(presented, reference) is matches


def test_host_names_match_dns_ids_and_addresses_match_ip_entries(made):
    good = leaf(made, "good")
    assert tlsinfo.matches_name(good, NAME) and tlsinfo.matches_name(good, ADDRESS)
    assert not tlsinfo.matches_name(good, "192.0.2.26") and not tlsinfo.matches_name(good, "other.lab.test")
    wrong = leaf(made, "wrong-name")
    assert not tlsinfo.matches_name(wrong, NAME) and not tlsinfo.matches_name(wrong, ADDRESS)
    assert wrong.names == "other.lab.test"


def test_the_common_name_never_matches(trusted):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    with_san = parsed(_server_certificate(key, trusted.key, trusted.cert, now, (NAME, "other.lab.test"), ()))
    assert with_san.common_names == (NAME,)
    assert not tlsinfo.matches_name(parsed(_server_certificate(key, trusted.key, trusted.cert, now,
                                                               ("other.lab.test",), ())), NAME)
    ca = parsed(trusted.cert)  # no subjectAltName: its name is only in the CN
    assert not ca.has_san and not tlsinfo.matches_name(ca, "unit-test CA")
    assert tlsinfo.only_in_common_name(ca, "unit-test CA") and "(no subjectAltName)" in ca.names


# --------------------------------------------------------------------------- validity, key, signature, EKU

def test_the_validity_window(made):
    now = datetime.datetime.now(datetime.timezone.utc)
    assert tlsinfo.validity(leaf(made, "good"), now) == "valid"
    assert tlsinfo.validity(leaf(made, "expired"), now) == "expired"
    assert tlsinfo.validity(leaf(made, "not-yet-valid"), now) == "not-yet-valid"
    assert tlsinfo.validity(leaf(made, "expiring"), now) == "expiring"
    assert tlsinfo.validity(leaf(made, "good"), now + 720 * DAY) == "expiring"  # within 14 days of its end


def test_key_signature_and_extended_key_usage(made):
    good = leaf(made, "good")
    assert good.key == "EC secp256r1 (256 bits)" and good.key_strong
    assert leaf(made, "rsa-1024").key == "RSA 1024 bits" and not leaf(made, "rsa-1024").key_strong
    assert good.signature == "ecdsa-with-SHA256" and not good.signature_weak
    sha1 = leaf(made, "sha1")
    assert sha1.signature == "ecdsa-with-SHA1" and sha1.signature_hash == "sha1" and sha1.signature_weak
    assert good.usages == ("serverAuth",) and good.server_auth
    assert leaf(made, "client-only").usages == ("clientAuth",) and not leaf(made, "client-only").server_auth


# --------------------------------------------------------------------------- the path to the trust anchor

def test_a_certificate_issued_by_the_anchor_verifies(made):
    result = verdict(made, "good")
    assert result.problem is None and result.anchor == made["good"][1] and result.unused == ()


def test_a_sha1_signature_still_chains_it_is_judged_on_its_own(made):
    assert verdict(made, "sha1").problem is None


def test_a_missing_intermediate_is_named(made):
    result = verdict(made, "missing-intermediate")
    assert result.problem == "missing-issuer" and result.missing == "CN=mailconform test intermediate CA"


def test_a_sent_intermediate_completes_the_path(trusted):
    now = datetime.datetime.now(datetime.timezone.utc)
    middle_key = ec.generate_private_key(ec.SECP256R1())
    middle = _ca_certificate(middle_key, now, "unit-test intermediate", (trusted.cert, trusted.key))
    server = _server_certificate(ec.generate_private_key(ec.SECP256R1()), middle_key, middle, now, (NAME,), ())
    stray = parsed(authority("an unrelated CA").cert)
    result = tlsinfo.verify_chain((parsed(server), stray, parsed(middle)), (parsed(trusted.cert),))
    assert result.problem is None and [c.subject for c in result.path] == [f"CN={NAME}", "CN=unit-test intermediate"]
    assert result.unused == (stray,)


def test_self_signed_and_untrusted_roots(made):
    assert verdict(made, "self-signed").problem == "self-signed"
    assert verdict(made, "snakeoil").problem == "self-signed"
    untrusted = verdict(made, "untrusted")
    assert untrusted.problem == "untrusted-root" and untrusted.top.subject == "CN=an untrusted CA"
    sent, _ = made["self-signed"]
    assert tlsinfo.verify_chain(sent, sent).problem is None  # a self-signed certificate trusted as such


def test_trust_anchors_come_from_the_ca_file(tmp_path, trusted):
    bundle = tmp_path / "ca.pem"
    pem = trusted.cert.public_bytes(serialization.Encoding.PEM)
    bundle.write_bytes(b"junk before\n" + pem + b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    assert tlsinfo.trust_anchors(bundle) == (parsed(trusted.cert),)


# --------------------------------------------------------------------------- what is shown, and the chain as read

def test_the_description_shows_pem_and_a_summary_and_no_key(made):
    lines = tlsinfo.describe(made["untrusted"][0])
    text = "\n".join(lines)
    assert text.count("-----BEGIN CERTIFICATE-----") == 2 and "PRIVATE" not in text
    assert lines[-7].startswith("certificate 2 of 2 (sent with it): subject CN=an untrusted CA")
    assert f"names (subjectAltName): {NAME}, {ADDRESS}" in text and "SHA-256 fingerprint: " in text
    assert "(self-signed)" in text and "key: EC secp256r1 (256 bits); signature: ecdsa-with-SHA256" in text


class _LeafOnly:
    """A socket that knows its peer's leaf only (no unverified chain to give)."""

    def __init__(self, der: bytes):
        self.der = der

    def getpeercert(self, binary_form=False):
        return self.der


def test_peer_chain_falls_back_to_the_leaf(made):
    der = leaf(made, "good").der
    assert tlsinfo.peer_chain(_LeafOnly(der)) == (der,)
    assert tlsinfo.peer_chain(_LeafOnly(b"")) == ()


def test_the_consistency_table_covers_every_service_name(tmp_path, made):
    targets = tmp_path / "targets.toml"
    targets.write_text(f'[targets.lab]\nhost = "{ADDRESS}"\n[targets.lab.services]\nsmtp = 25\nimaps = 993\n'
                       f'pop3s = {{ host = "{NAME}", port = 995 }}\n')
    target = load_targets(targets)["lab"]
    facts = {service: HandshakeFacts("TLSv1.3", "TLS_AES_128_GCM_SHA256", made[flaw][0][0].der,
                                     tuple(c.der for c in made[flaw][0]))
             for service, flaw in (("smtp", "good"), ("imaps", "wrong-name"), ("pop3s", "good"))}
    rows = tlsinfo.consistency_rows(target, facts, floor=lambda service: "TLSv1.2")
    assert [row.service for row in rows] == ["smtp", "pop3s", "imaps"]
    assert tlsinfo.service_names(target) == (ADDRESS, NAME)
    assert rows[0].covers == {ADDRESS: True, NAME: True} and rows[2].covers == {ADDRESS: False, NAME: False}
    assert rows[0].fingerprint == rows[1].fingerprint != rows[2].fingerprint
    assert {(row.version, row.floor) for row in rows} == {("TLSv1.3", "TLSv1.2")}


class _Probed:
    """A target run that observed some version probes (``("tls-probe", service, name)``)."""

    def __init__(self, target, outcomes: dict[str, str], certificate=None):
        self.target = target
        self.outcomes = outcomes
        self.certificate = certificate

    def observed(self, key):
        if key[0] == "certificate":
            return self.certificate if key[1] == "smtp" else None
        outcome = self.outcomes.get(key[2])
        return None if outcome is None else Observed(ProbeOutcome(outcome), None, Transcript("probe"))


@dataclass(frozen=True)
class ProbeOutcome:
    outcome: str


def test_the_table_reads_only_what_the_run_observed(tmp_path, made):
    targets = tmp_path / "targets.toml"
    targets.write_text(f'[targets.lab]\nhost = "{NAME}"\n[targets.lab.services]\nsmtp = 25\nimaps = 993\n')
    target = load_targets(targets)["lab"]
    chain = tuple(c.der for c in made["good"][0])
    shake = Handshake(None, HandshakeFacts("TLSv1.3", "TLS_AES_128_GCM_SHA256", chain[0], chain), None)
    run = _Probed(target, {"tls1.0": "refused", "tls1.1": "refused", "tls1.2": "accepted"},
                  Observed(shake, None, Transcript("certificate")))
    [row] = tlsinfo.consistency_table(run, lambda service: "TLSv1.2")
    assert (row.service, row.endpoint, row.covers, row.floor) == ("smtp", f"{NAME}:25", {NAME: True}, "TLSv1.2")


def test_a_cross_signed_copy_of_the_anchor_is_not_an_unused_certificate(trusted, made):
    now = datetime.datetime.now(datetime.timezone.utc)
    old_root = authority("an older root")
    cross = parsed(_ca_certificate(trusted.key, now, "unit-test CA", (old_root.cert, old_root.key)))
    sent, anchor = made["good"]
    result = tlsinfo.verify_chain((*sent, cross), (anchor,))
    assert result.problem is None and result.unused == ()
