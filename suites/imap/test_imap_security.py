"""E.imap-security — IMAP's security, measured: a greeting that is not PREAUTH in clear, CAPABILITY
before TLS offering STARTTLS and LOGINDISABLED (and no plaintext mechanism), a cleartext LOGIN
refused without being evaluated, a verified STARTTLS with a fresh CAPABILITY inside, plaintext
injected with STARTTLS thrown away, the account's AUTHENTICATE PLAIN and LOGIN inside TLS, IMAPS
on 993, SELECT/FETCH/LOGOUT, ID and COMPRESS, and the mechanisms offered."""

from mailconform.mailbox import Mailbox, looks
from mailconform.checks import LAST, Blocked, NotApplicable, check, expect, say
from mailconform.observations import TlsRefused
from mailconform.sessions import DECOY_USER, IMAP_STARTTLS_CHECK, fake_password
from mailconform.wire import TlsFailed, WireError

STEP = "E.imap-security"
INJECTION_WAIT = 0.3  # seconds to listen inside TLS for a response nobody asked for
CLEARTEXT_MECHANISMS = ("AUTH=PLAIN", "AUTH=LOGIN")
WEAK_MECHANISMS = ("AUTH=CRAM-MD5", "AUTH=DIGEST-MD5")


def where(imap, service: str) -> str:
    return f"{service} ({imap.endpoint(service)})"


def caps(capabilities) -> str:
    return " ".join(sorted(capabilities)) or "(no capabilities)"


@check("imap.session.greeting", step=STEP, rfc="9051#7.1.4", level="SHOULD", severity="high",
       catalogue="IMAP-GREETING")
def test_the_greeting_is_ok_and_not_preauth(imap):
    """RFC 9051 §7.1.4: PREAUTH "indicates that the connection has already been authenticated by
    external means"; it "SHOULD only be returned by servers on connections that are protected by TLS
    ... or ... IPsec".  RFC 3501 §7.1.1: the greeting is an untagged OK (ready for LOGIN), PREAUTH
    or BYE.  On the cleartext port (143) a PREAUTH greeting skips authentication and prevents
    STARTTLS: the server must greet with ``* OK``.
    """
    at = where(imap, "imap")
    hello = imap.hello("imap")
    greeting = hello.greeting
    expect(greeting.status != "PREAUTH", "preauth", actual=str(greeting), endpoint=at)
    expect(greeting.status == "OK", "not-ok", actual=str(greeting), endpoint=at)
    if isinstance(hello.error, WireError) and not isinstance(hello.error, TlsFailed):
        expect(False, "broken", actual=str(hello.error), endpoint=at)


@check("imap.capability.before-tls", step=STEP, rfc="3501#6.1.1", level="MUST", severity="high",
       catalogue="IMAP-CAPABILITY")
def test_capability_in_clear_offers_starttls_and_logindisabled(imap):
    """RFC 3501 §6.1.1: "Client and server implementations MUST implement the STARTTLS,
    LOGINDISABLED, and AUTH=PLAIN (described in [IMAP-TLS]) capabilities."  RFC 2595 §3.2: "Such a
    server will respond with a tagged "NO" response to any attempt to use the LOGIN command." (a
    server advertising LOGINDISABLED); §6: PLAIN "MUST NOT be advertised or used unless a strong
    encryption layer ... is active".  Before TLS on 143 CAPABILITY answers OK with IMAP4rev1 (or
    IMAP4rev2), STARTTLS and LOGINDISABLED, and offers no AUTH=PLAIN or AUTH=LOGIN.
    """
    at = where(imap, "imap")
    hello = imap.greeted_hello("imap")
    answer = hello.answered()
    expect(answer.ok, "refused", actual=str(answer), endpoint=at)
    have = hello.capabilities
    shown = caps(have)
    expect("IMAP4REV1" in have or "IMAP4REV2" in have, "no-revision", actual=shown, endpoint=at)
    expect("STARTTLS" in have, "no-starttls", actual=shown, endpoint=at)
    offered = [m for m in CLEARTEXT_MECHANISMS if m in have]
    expect(not offered, "plaintext-mechanisms", actual=shown, mechanisms=", ".join(offered), endpoint=at)
    expect("LOGINDISABLED" in have, "no-logindisabled", actual=shown, endpoint=at)


# Last: where the server evaluates the decoy's LOGIN, it is a failed login (Dovecot's auth penalty).
@check("imap.login.cleartext-refused", step=STEP, rfc="2595#3.2", level="MUST", severity="critical",
       order=LAST, catalogue="IMAP-LOGIN-PRETLS")
def test_login_in_clear_is_refused_without_evaluation(imap):
    """RFC 2595 §3.2: "Such a server will respond with a tagged "NO" response to any attempt to use
    the LOGIN command." (such a server: one that advertises LOGINDISABLED).  RFC 9051 §6.2.3:
    "Server sites SHOULD NOT use any configuration that permits the LOGIN command without such a
    protection mechanism against password snooping."  RFC 5530: PRIVACYREQUIRED.  A LOGIN with
    made-up credentials before TLS is answered NO (ideally [PRIVACYREQUIRED]) or BAD; NO
    [AUTHENTICATIONFAILED] shows the password was checked, in clear — and so does a plain NO from a
    server that does not announce LOGINDISABLED (Courier-IMAP's "NO Login failed.").
    """
    at = where(imap, "imap")
    hello = imap.greeted_hello("imap")
    if "LOGINDISABLED" not in hello.capabilities:  # the server may evaluate it: a failed login
        imap.target_run.spend_failed_login()
    session = imap.session("imap")
    response = session.login(DECOY_USER, fake_password())
    expect(not response.ok, "accepted", actual=str(response), endpoint=at)
    code = (response.resp_code or "").upper()
    expect(code != "AUTHENTICATIONFAILED", "evaluated", actual=str(response), endpoint=at)
    expect(response.status in ("NO", "BAD"), "odd", actual=str(response), endpoint=at)
    expect("LOGINDISABLED" in hello.capabilities or response.status == "BAD" or code == "PRIVACYREQUIRED",
           "evaluated-unannounced", actual=str(response), endpoint=at)


@check("imap.starttls.handshake", step=STEP, rfc="9051#6.2.1", level="MUST", severity="high",
       catalogue="IMAP-STARTTLS", tls_failure_is_finding=True)
def test_starttls_is_answered_ok_and_the_handshake_verifies(imap):
    """RFC 9051 §11.2: "If the server listens on a cleartext port, it MUST allow the STARTTLS
    command on it."  §6.2.1: "A TLS [TLS-1.3] negotiation begins immediately after the CRLF at the
    end of the tagged OK response from the server."  The handshake must verify against the target's
    trust anchor (tls.ca_file) for the server's name.
    """
    at = where(imap, "imap")
    hello, shake = imap.starttls_handshake()
    error = shake.error
    if isinstance(error, TlsRefused):
        expect(False, "refused", actual=str(error.reply), endpoint=at)
    expect("STARTTLS" in hello.capabilities, "not-advertised", actual=caps(hello.capabilities), endpoint=at)
    if error is not None:
        expect(not isinstance(error, TlsFailed), "handshake-failed", actual=str(error), endpoint=at)
        raise error


@check("imap.starttls.capability-after", step=STEP, rfc="9051#6.2.1", level="SHOULD NOT", severity="high",
       catalogue="IMAP-STARTTLS-RECAP")
def test_capability_inside_tls_is_fresh(imap):
    """RFC 9051 §6.2.1: "The server MAY advertise different capabilities and, in particular, SHOULD
    NOT advertise the STARTTLS capability, after a successful STARTTLS command."  RFC 3501 §6.2.1:
    "the client MUST discard cached information about server capabilities".  RFC 9051 §6.1.1:
    servers "MUST also implement AUTH=PLAIN".  Inside TLS CAPABILITY lists no STARTTLS, no
    LOGINDISABLED, and AUTH=PLAIN.
    """
    at = where(imap, "imap")
    hello = imap.tls_hello()
    answer = hello.answered()
    expect(answer.ok, "refused", actual=str(answer), endpoint=at)
    have = hello.capabilities
    shown = caps(have)
    expect("STARTTLS" not in have, "starttls-again", actual=shown, endpoint=at)
    expect("LOGINDISABLED" not in have, "login-disabled", actual=shown, endpoint=at)
    expect("AUTH=PLAIN" in have, "no-plain", actual=shown, endpoint=at)


@check("imap.starttls.injection", step=STEP, rfc="9051#6.2.1", level="MUST", severity="critical",
       catalogue="IMAP-STARTTLS-INJECTION")
def test_plaintext_sent_with_starttls_is_discarded(imap):
    """RFC 9051 §6.2.1: "In order to avoid this vulnerability, server implementations MUST do one of
    the following if any data is received in the same TCP buffer after the CRLF that starts the
    STARTTLS command:" "1.  Extra data from the TCP buffer is interpreted as the beginning of the
    TLS handshake." "2.  Extra data from the TCP buffer is thrown away." (the STARTTLS plaintext
    command injection of [CERT-555316], CERT VU#555316).  STARTTLS and NOOP go in one write: a
    response to that NOOP inside TLS means the server executed plaintext an attacker could have
    injected.
    """
    at = where(imap, "imap")
    imap.starttls_works()
    session = imap.session("imap")
    session.send_raw(b"x1 STARTTLS\r\nx2 NOOP\r\n")
    started = session.read_tagged("x1")
    if not started.ok:
        raise Blocked(IMAP_STARTTLS_CHECK, say("starttls-refused", reply=started))
    try:
        imap.start_tls(session, "imap")
    except TlsFailed:  # the NOOP was taken for the start of the handshake: nothing was executed
        session.transcript.note(say("handshake-ate-it"))
        return
    unasked = session.connection.pending(INJECTION_WAIT).decode("ascii", "replace").strip()
    expect(not unasked, "injected", actual=unasked, endpoint=at)
    response = session.command("NOOP")
    expect(response.ok, "noop-refused", actual=str(response), endpoint=at)


@check("imap.auth.plain", step=STEP, rfc="4959#3", level="MUST", severity="medium",
       catalogue="IMAP-AUTH-PLAIN")
def test_authenticate_plain_works_inside_tls(imap):
    """RFC 3501 §6.2.2: "The AUTHENTICATE command indicates a [SASL] authentication mechanism to the
    server."  RFC 4959 §3: "This extension adds an optional second argument to the AUTHENTICATE
    command that is defined in Section 6.2.2 of [RFC3501].  If this second argument is present, it
    represents the contents of the "initial client response" defined in Section 5.1 of [RFC4422]."
    (when SASL-IR is advertised).  Inside TLS the account's AUTHENTICATE PLAIN is answered OK.
    """
    user, password = imap.account_credentials()
    service = imap.login_service()
    at = where(imap, service)
    session = imap.secured(service)
    capability = session.capability()
    expect(capability.ok, "capability-refused", actual=str(capability), endpoint=at)
    initial = "SASL-IR" in session.capabilities
    response = session.authenticate_plain(user, password, initial=initial)
    expect(response.ok, "refused", actual=str(response), user=user, endpoint=at,
           how="SASL-IR" if initial else "continuation")


@check("imap.login.account", step=STEP, rfc="3501#6.2.3", level="MUST", severity="high",
       endpoints=("imap", "imaps"), catalogue="IMAP-LOGIN-OK")
def test_the_account_logs_in_inside_tls(imap, endpoint):
    """RFC 3501 §6.2.3: "The LOGIN command identifies the client to the server and carries the
    plaintext password authenticating this user."  RFC 8314 §3: the password travels only inside
    TLS (STARTTLS on 143, implicit TLS on 993).  The account's LOGIN is answered OK.
    """
    at = where(imap, endpoint)
    user = imap.account_credentials()[0]
    _, response = imap.try_login(endpoint)
    expect(response.ok, "refused", actual=str(response), user=user, endpoint=at)


@check("imap.imaps.implicit-tls", step=STEP, rfc="8314#3.2", level="MUST", severity="high",
       catalogue="IMAP-993-IMPLICIT", tls_failure_is_finding=True)
def test_imaps_speaks_tls_from_the_first_byte(imap):
    """RFC 8314 §3.2: "When a TCP connection is established for the "imaps" service (default port
    993), a TLS handshake begins immediately."  RFC 9051 §11.2: "The server MUST implement TLS
    negotiation on an Implicit TLS port."  Inside TLS the greeting is ``* OK`` and CAPABILITY lists
    AUTH=PLAIN and neither STARTTLS nor LOGINDISABLED.  Dovecot: ``service imap-login {
    inet_listener imaps { port = 993  ssl = yes } }``.
    """
    at = where(imap, "imaps")
    hello = imap.hello("imaps")
    expect(hello.greeting.status == "OK", "not-ok", actual=str(hello.greeting), endpoint=at)
    answer = hello.answered()
    expect(answer.ok, "capability-refused", actual=str(answer), endpoint=at)
    have = hello.capabilities
    shown = caps(have)
    expect("STARTTLS" not in have, "starttls-offered", actual=shown, endpoint=at)
    expect("LOGINDISABLED" not in have, "login-disabled", actual=shown, endpoint=at)
    expect("AUTH=PLAIN" in have, "no-plain", actual=shown, endpoint=at)


@check("imap.mailbox.select-fetch", step=STEP, rfc="3501#6.3.1", level="MUST", severity="high",
       catalogue="IMAP-SELECT-FETCH")
def test_select_inbox_and_fetch_a_message(imap, smtp, pop3, target):
    """RFC 3501 §6.3.1: "The SELECT command selects a mailbox so that messages in the mailbox can
    be accessed."  "the server MUST send ... EXISTS".  §6.4.5: "The FETCH command retrieves data
    associated with a message in the mailbox."  A probe message is delivered over SMTP (intrusive
    targets only), found over IMAP (SELECT INBOX, SEARCH for its Message-ID, waiting up to
    delivery_wait), fetched, and deleted again over IMAP; without delivery the newest message
    there is fetched (not applicable when the INBOX is empty).
    """
    service = imap.login_service()
    at = where(imap, service)
    session = imap.logged_in(service)  # before delivering: a login that fails sends nothing
    mailbox = Mailbox(imap.run, smtp, pop3)  # not the fixture: the probe is removed over IMAP, not POP3
    sent = mailbox.deliver() if mailbox.delivery_refusal() is None else None
    number = None
    for _ in looks(target.delivery_wait if sent else 0):
        selected = session.command("SELECT INBOX")  # selecting again shows what arrived since
        expect(selected.ok, "select-refused", actual=str(selected), endpoint=at)
        exists = next((int(words[1]) for words in map(str.split, selected.untagged)
                       if len(words) == 3 and words[2].upper() == "EXISTS" and words[1].isdigit()), None)
        expect(exists is not None, "no-exists", actual=str(selected), endpoint=at)
        if sent is None:
            number = exists or None
            break
        found = session.command(f"SEARCH HEADER Message-ID {sent.token}")
        numbers = [int(word) for line in found.untagged if line.upper().startswith("* SEARCH")
                   for word in line.split()[2:] if word.isdigit()]
        if numbers:
            number = numbers[-1]
            break
    if sent is not None:
        expect(number is not None, "lost", token=sent.token, endpoint=at)
    if number is None:
        raise NotApplicable(say("empty", endpoint=at))
    fetched = session.command(f"FETCH {number} (FLAGS RFC822.SIZE BODY.PEEK[HEADER])")
    expect(fetched.ok, "fetch-refused", actual=str(fetched), endpoint=at)
    data = " ".join(line for line in fetched.untagged if " FETCH " in line.upper())
    expect(bool(data) and (sent is None or sent.token in data), "fetch-empty", actual=str(fetched), endpoint=at)
    if sent is not None:  # the probe goes again (best effort)
        session.command(f"STORE {number} +FLAGS.SILENT (\\Deleted)")
        session.command("EXPUNGE")


@check("imap.session.logout", step=STEP, rfc="3501#6.1.3", level="MUST", severity="medium",
       catalogue="IMAP-LOGOUT")
def test_logout_says_bye_then_ok(imap):
    """RFC 3501 §6.1.3: "The LOGOUT command informs the server that the client is done with the
    connection.  The server MUST send a BYE untagged response before the (tagged) OK response, and
    then close the network connection."
    """
    at = where(imap, "imap")
    session = imap.session("imap")
    response = session.logout()
    expect(response.ok, "refused", actual=str(response), endpoint=at)
    expect(any(line.upper().startswith("* BYE") for line in response.untagged), "no-bye", actual=str(response),
           endpoint=at)
    session.close()


@check("imap.extensions.id", step=STEP, rfc="2971#3.1", level="MAY", severity="info", catalogue="IMAP-ID")
def test_id_is_answered_without_version_details(imap):
    """RFC 2971 §3.1 (paraphrased, not a quotation): a server that lists ID answers the ID command
    with an ID response.  RFC 2971 §7 (Security Considerations, paraphrased): sending implementation
    and version details has security and privacy implications.  Servers that list ID answer
    ``ID NIL`` with ``* ID (...)`` or ``* ID NIL`` and OK.  Reported (version details are a warning).
    """
    at = where(imap, "imap")
    hello = imap.greeted_hello("imap")
    if "ID" not in hello.capabilities:
        raise NotApplicable(say("not-offered", endpoint=at))
    session = imap.session("imap")
    response = session.command("ID NIL")
    expect(response.ok, "refused", actual=str(response), endpoint=at)
    answer = next((line for line in response.untagged if line.upper().startswith("* ID")), "")
    expect(bool(answer), "no-id", actual=str(response), endpoint=at)
    session.transcript.note(say("answered", answer=answer))
    lower = answer.lower()
    expect('"version"' not in lower and '"os"' not in lower, "discloses", tolerated=True, answer=answer,
           endpoint=at)


@check("imap.extensions.compress", step=STEP, rfc="4978#5", level="SHOULD", severity="info",
       catalogue="IMAP-COMPRESS")
def test_compress_is_not_allowed_before_login(imap):
    """RFC 4978 §5 (Formal Syntax) makes COMPRESS an authenticated-state command:
    "command-auth =/ compress" (the COMPRESS=DEFLATE capability: "capability  =/ "COMPRESS="
    algorithm"); §6 (Security Considerations) reads in full "As for TLS compression [RFC3749]."
    (our note: compression combined with secrets leaks them, the TLS-compression attacks).  When
    COMPRESS=DEFLATE is advertised before login, COMPRESS DEFLATE is refused (BAD or NO) before
    authentication.  Reported when not offered.
    """
    at = where(imap, "imap")
    hello = imap.greeted_hello("imap")
    if "COMPRESS=DEFLATE" not in hello.capabilities:
        imap.run.shows(imap.target_run.imap_hello("imap")).transcript.note(say("not-offered", endpoint=at))
        return
    session = imap.session("imap")
    response = session.command("COMPRESS DEFLATE")
    if response.ok:
        session.close()
    expect(not response.ok, "pre-auth", actual=str(response), endpoint=at)


@check("imap.auth.mechanisms", step=STEP, rfc="4422#3", level="policy", severity="medium",
       catalogue="IMAP-MECH-HYGIENE")
def test_the_mechanisms_offered_are_sound(imap):
    """RFC 4422 §3 (paraphrased, not a quotation): a SASL mechanism is the exchange by which a
    client authenticates.  RFC 6331 ("Moving DIGEST-MD5 to Historic", paraphrased): DIGEST-MD5 is
    not to be used; CRAM-MD5 (RFC 2195) keeps the password in plaintext-equivalent form (RFC 2195
    §4: saving "contexts" "is not sufficient to protect the secrets if the server itself is
    compromised"), and the IANA SASL registry lists it for LIMITED use.  RFC 3501 §6.2 / RFC 9051
    §6.2: "Server implementations MAY
    allow access to certain mailboxes without establishing authentication.  This can be done by
    means of the ANONYMOUS [SASL] authenticator described in [ANONYMOUS]."  Inside TLS the AUTH=
    list offers no ANONYMOUS (fail) and no CRAM-MD5 or DIGEST-MD5 (warning).
    """
    at = where(imap, "imap")
    hello = imap.tls_hello()
    have = set(hello.capabilities) | set(imap.greeted_hello("imap").capabilities)
    shown = caps({c for c in have if c.startswith("AUTH=")})
    expect("AUTH=ANONYMOUS" not in have, "anonymous", actual=shown, endpoint=at)
    weak = [m for m in WEAK_MECHANISMS if m in have]
    expect(not weak, "weak", tolerated=True, mechanisms=", ".join(weak), endpoint=at)
