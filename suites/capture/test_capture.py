"""A1.capture — watch it in Wireshark: the run's own traffic with each target (``--capture-dir DIR``),
read back with tshark, TLS decrypted with the run's key log."""

from mailconform.capture import Capture, any_of
from mailconform.checks import AFTER_EVERYTHING, NotApplicable, check, expect
from mailconform.sessions import DECOY_USER, FAKE_PASSWORD_PREFIX, decoy_plain_prefix
from mailconform.verdicts import say

STEP = "A1.capture"
# Display filters in the forms every tshark reads (``a == "x" || a == "y"``, not Wireshark 4's sets).
#: Frames that carry a credential: POP3 PASS/APOP/AUTH, SMTP AUTH, IMAP LOGIN/AUTHENTICATE — not the
#: made-up credentials of the decoy user, which A2.esmtp and A3.auth-methods send before TLS on purpose.
CREDENTIALS = (f'({any_of("pop.request.command", "PASS", "APOP", "AUTH")} || smtp.req.command == "AUTH" || '
               'imap.request.command matches "(?i)^(login|authenticate)$") && '
               f'!(smtp.auth.username_password contains "{decoy_plain_prefix()}") && '
               f'!(pop.request.parameter contains "{decoy_plain_prefix()}") && '
               f'!(pop.request.parameter contains "{FAKE_PASSWORD_PREFIX}") && '
               f'!(imap.request.username contains "{DECOY_USER}")')  # E.imap-security's LOGIN before TLS
#: Frames that carry a message read from the mailbox: POP3 RETR/TOP, IMAP FETCH.
MAILBOX = f'{any_of("pop.request.command", "RETR", "TOP")} || imap.request.command matches "(?i)^(uid )?fetch$"'
FIELDS = ["frame.number", "tcp.dstport", "_ws.col.Protocol"]


def _where(rows: list[list[str]]) -> str:
    """``frame 12 (POP to port 110)``…, never the frame's text: it may hold the password."""
    return ", ".join(f"frame {number} ({protocol} to port {port})" for number, port, protocol in rows[:8]) + (
        f" and {len(rows) - 8} more" if len(rows) > 8 else "")


def _before_tls(capture: Capture, commands: str) -> list[list[str]]:
    """The frames of ``commands`` outside TLS; not applicable when the capture holds none of them at
    all, in cleartext or (decrypted) inside TLS: the run never tried, so nothing shows it is safe."""
    attempted = capture.frames(f"({commands})", ["frame.protocols", *FIELDS])  # "sll:…:tcp:tls:pop"
    if not attempted:
        raise NotApplicable(say("nothing-attempted"))
    return [row[1:] for row in attempted if "tls" not in row[0].split(":")]


@check("capture.files.readable", step=STEP, rfc="8314#3", level="policy", severity="info", order=AFTER_EVERYTHING)
def test_the_capture_reads_back_and_tls_decrypts(capture):
    """RFC 8314 §3: "TLS ... provides confidentiality" — so a capture of a TLS session shows nothing
    without the session's keys.  The run writes them (NSS key log) beside the capture, and with them
    every TLS session of the capture must decrypt.
    """
    frames = capture.frames(capture.traffic("frame"), ["frame.number"])  # the suite's own marks do not count
    if not frames and capture.marker_port is not None and capture.frames("frame", ["frame.number"]):
        raise NotApplicable(say("nothing-exchanged", file=capture.pcap))  # dumpcap did capture: its marks
    expect(bool(frames), "empty", file=capture.pcap)
    handshakes = capture.frames("tls.handshake.type == 1", FIELDS)
    decrypted = capture.frames(f"tls && ({' || '.join(('pop', 'smtp', 'imap'))})", FIELDS)
    expect(not handshakes or bool(decrypted), "not-decrypted", actual=f"{len(handshakes)} TLS handshake(s), "
           f"0 decrypted frames", keys=capture.keylog)


@check("capture.cleartext.credentials", step=STEP, rfc="8314#3", level="SHOULD", severity="high",
       order=AFTER_EVERYTHING)
def test_no_credential_crossed_before_tls(capture, target):
    """RFC 8314 §3: "cleartext ... [is] to be avoided ... to protect the user's credentials"; the
    suite sends a password before TLS only where the target says ``allow_cleartext_auth = true``,
    and then every such frame is shown here (as the lab asks: see the password in Wireshark).
    Not applicable when the capture holds no login at all, in cleartext or inside TLS.
    """
    rows = _before_tls(capture, CREDENTIALS)
    expect(not rows, "cleartext-credentials", tolerated=target.allow_cleartext_auth, frames=_where(rows),
           count=len(rows))


@check("capture.cleartext.mailbox", step=STEP, rfc="8314#3", level="SHOULD", severity="medium",
       order=AFTER_EVERYTHING)
def test_no_mailbox_content_crossed_before_tls(capture, target):
    """RFC 8314 §3: mail access "SHOULD" be protected by TLS; messages the suite read from the mailbox
    (RETR, TOP, FETCH) before TLS are shown here.  Not applicable when the capture holds no such
    read at all, in cleartext or inside TLS.
    """
    rows = _before_tls(capture, MAILBOX)
    expect(not rows, "cleartext-mailbox", tolerated=target.allow_cleartext_auth, frames=_where(rows),
           count=len(rows))
