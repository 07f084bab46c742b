"""mailconform.received: Received trace fields as real servers write them (catalogue §5.3), read
from header bytes the way POP3 TOP returns them (lines without their CRLF, folded)."""

from email.utils import parsedate_to_datetime

import pytest

from mailconform.received import REGISTERED, header_fields, hop_of, parse_received, received_fields, tokens


def lines(block: bytes) -> list[bytes]:
    """A recorded header block (CRLF lines, folded) as POP3 hands it over: one bytes per line."""
    return block.split(b"\r\n")


POSTFIX_ESMTPS = (
    b"Received: from mail-qk2-f13.google.com (mail-qk2-f13.google.com [74.125.230.205])\r\n"
    b"\t(using TLSv1.2 with cipher ECDHE-RSA-AES128-GCM-SHA256 (128/128 bits))\r\n"
    b"\t(No client certificate requested)\r\n"
    b"\tby smtp.subspace.kernel.org (Postfix) with ESMTPS id 4907232B135\r\n"
    b"\tfor <git@vger.kernel.org>; Mon, 28 Sep 2026 20:25:28 +0000 (UTC)\r\n"
)
#: What the bundled reference writes (smtpd_tls_received_header = yes): a comment nested in a comment.
POSTFIX_REFERENCE = (
    b"Return-Path: <alice@mailconform.test>\r\n"
    b"X-Original-To: alice@mailconform.test\r\n"
    b"Delivered-To: alice@mailconform.test\r\n"
    b"Received: from mc-cde9e6001ef4ae90.mailconform.example.com (unknown [127.0.0.1])\r\n"
    b"\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\r\n"
    b"\t key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256)\r\n"
    b"\t(No client certificate requested)\r\n"
    b"\tby mail.mailconform.test (Postfix) with ESMTPS id 4C181162805\r\n"
    b"\tfor <alice@mailconform.test>; Tue,  1 Dec 2026 02:58:23 +0000 (UTC)\r\n"
    b"Subject: mailconform probe mc-cde9e6001ef4ae90\r\n"
    b"\r\n"
    b"body: Received: from fake by fake with ESMTPSA; not a header\r\n"
)
POSTFIX_ESMTPSA = (
    b"Received: from localhost.localdomain (h-98-128-181-169.NA.cust.bahnhof.se [98.128.181.169])\r\n"
    b"        (Authenticated sender: carl@hgsystem.se)\r\n"
    b"        by s6.example.net (Postfix) with ESMTPSA id 4LQ3Qx0Jk7z9sPd\r\n"
    b"        for <a@b.example>; Tue, 3 May 2022 10:00:00 +0200 (CEST)\r\n"
)
POSTFIX_NO_FROM = (
    b"Received: (Authenticated sender: peter@korsgaard.com)\r\n"
    b"        by mail.gandi.net (Postfix) with ESMTPSA id 86651240004;\r\n"
    b"        Mon, 7 Oct 2019 10:00:00 +0000 (UTC)\r\n"
)
POSTFIX_PICKUP = (
    b"Received: by keithp.com (Postfix, from userid 1000)\r\n"
    b"\tid EB61C15822F0; Mon,  7 Oct 2019 11:22:33 -0700 (PDT)\r\n"
)
POSTFIX_UTF8 = (
    b"Received: from x.example (x.example [192.0.2.1])\r\n"
    b"\tby lists.ozlabs.org (Postfix) with UTF8SMTPS id 4DW09V0PkhzDwt7\r\n"
    b"\tfor <l@lists.ozlabs.org>; Wed, 9 Dec 2020 10:00:00 +1100 (AEDT)\r\n"
)
EXIM_ESMTPSA = (
    b"Received: from e0022681537dd.dyn.armlinux.org.uk\r\n"
    b"\t([fd8f:7570:feb6:1:222:68ff:fe15:37dd]:48134 helo=rmk-PC.armlinux.org.uk)\r\n"
    b"\tby pandora.armlinux.org.uk with esmtpsa  (TLS1.3) tls TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\r\n"
    b"\t(Exim 4.96)\r\n"
    b"\t(envelope-from <rmk@armlinux.org.uk>)\r\n"
    b"\tid 1tUmBR-0005uk-1w;\r\n"
    b"\tMon, 06 Jan 2025 12:26:13 +0000\r\n"
)
EXIM_LOCAL = (
    b"Received: from rmk by rmk-PC.armlinux.org.uk with local (Exim 4.94.2)\r\n"
    b"\t(envelope-from <rmk@armlinux.org.uk>)\r\n"
    b"\tid 1tUmBQ-0001Xa-Bc; Mon, 06 Jan 2025 12:26:12 +0000\r\n"
)
SENDMAIL_ESMTPSA = (
    b"Received: from terminus.zytor.com (terminus.zytor.com [IPv6:2607:7c80:54:3:0:0:0:136])\r\n"
    b"\t(authenticated bits=0)\r\n"
    b"\tby mail.zytor.com (8.18.1/8.17.1) with ESMTPSA id 556HjTFp1004770\r\n"
    b"\t(version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256 verify=NO);\r\n"
    b"\tFri, 6 Jun 2025 10:45:33 -0700\r\n"
)
SENDMAIL_SUBMIT = (
    b"Received: (from chleroy@localhost)\r\n"
    b" by PO20335.IDSI0.si.c-s.fr (8.17.1/8.17.1/Submit) id 22EBnbIq4150437;\r\n"
    b" Mon, 14 Mar 2022 12:49:37 +0100\r\n"
)
DOVECOT_LMTP = (
    b"Received: from mail.lab.test\r\n\tby mail.lab.test with LMTP\r\n\tid kH3mFz0aAmcJGQAAd5gHjw\r\n"
    b"\t(envelope-from <alice@lab.test>)\r\n\tfor <bob@lab.test>; Tue, 01 Dec 2026 03:00:00 +0000\r\n"
)
MICROSOFT = (
    b"Received: from AM0PR02MB1234.eurprd02.prod.outlook.com (2603:10a6:208:1::1) by\r\n"
    b" AM0PR02MB5678.eurprd02.prod.outlook.com (2603:10a6:208:2::2) with Microsoft SMTP\r\n"
    b" Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id\r\n"
    b" 15.20.7633.25; Thu, 6 Jun 2024 08:00:00 +0000\r\n"
)
QMAIL = b"Received: (qmail 1234 invoked from network); 1 Jan 2020 00:00:00 -0000\r\n"


def one(block: bytes):
    [field] = received_fields(lines(block))
    return field


def test_folded_fields_are_unfolded_and_the_body_is_not_read():
    fields = header_fields(lines(POSTFIX_REFERENCE))
    assert [name for name, _ in fields] == ["Return-Path", "X-Original-To", "Delivered-To", "Received", "Subject"]
    received = dict(fields)["Received"]
    assert "\r" not in received and "\n" not in received
    assert received.startswith("from mc-cde9e6001ef4ae90.mailconform.example.com (unknown [127.0.0.1])")
    assert len(received_fields(lines(POSTFIX_REFERENCE))) == 1  # the body's "Received:" is content


def test_postfix_esmtps_with_its_tls_comment():
    field = one(POSTFIX_ESMTPS)
    assert (field.protocol, field.registered, field.tls, field.auth) == ("ESMTPS", True, True, False)
    assert field.clause("from").value == "mail-qk2-f13.google.com"
    assert field.clause("from").comments[0] == "mail-qk2-f13.google.com [74.125.230.205]"
    assert field.clause("by").value == "smtp.subspace.kernel.org"
    assert field.clause("id").value == "4907232B135"
    assert field.clause("for").value == "<git@vger.kernel.org>"
    assert field.date == "Mon, 28 Sep 2026 20:25:28 +0000 (UTC)"
    assert field.mentions("[74.125.230.205]") and not field.mentions("smtp.subspace.kernel.org")


def test_a_comment_nested_in_a_comment_hides_its_words():
    """"(using TLSv1.3 with cipher … (256/256 bits) key-exchange …)": its "with" is no clause."""
    field = one(POSTFIX_REFERENCE)
    assert field.protocol == "ESMTPS" and field.clause("with").value == "ESMTPS"
    assert [c.name for c in field.clauses] == ["from", "by", "with", "id", "for"]
    assert field.clause("from").comments[1].startswith(
        "using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)")
    assert field.mentions("MC-CDE9E6001EF4AE90.mailconform.example.com")  # case-insensitive


def test_postfix_esmtpsa_and_a_field_with_no_from_clause():
    field = one(POSTFIX_ESMTPSA)
    assert (field.protocol, field.tls, field.auth) == ("ESMTPSA", True, True)
    assert field.clause("from").comments == ("h-98-128-181-169.NA.cust.bahnhof.se [98.128.181.169]",
                                             "Authenticated sender: carl@hgsystem.se")
    field = one(POSTFIX_NO_FROM)
    assert field.clause("from") is None and field.leading == ("Authenticated sender: peter@korsgaard.com",)
    assert field.protocol == "ESMTPSA" and field.date == "Mon, 7 Oct 2019 10:00:00 +0000 (UTC)"


def test_a_local_pickup_has_no_with_clause_and_its_comment_is_no_from_clause():
    field = one(POSTFIX_PICKUP)
    assert field.clause("from") is None and field.protocol is None and not field.registered
    assert field.clause("by").comments == ("Postfix, from userid 1000",)
    assert field.clause("id").value == "EB61C15822F0"


def test_utf8_keywords_are_registered():
    field = one(POSTFIX_UTF8)
    assert (field.protocol, field.registered, field.tls, field.auth) == ("UTF8SMTPS", True, True, False)


def test_exim_writes_lower_case_and_a_tls_clause():
    field = one(EXIM_ESMTPSA)
    assert (field.protocol, field.registered, field.tls, field.auth) == ("ESMTPSA", True, True, True)
    assert field.clause("with").value == "esmtpsa" and field.clause("with").comments == ("TLS1.3",)
    assert field.clause("tls").value == "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
    assert field.clause("id").value == "1tUmBR-0005uk-1w"
    assert field.mentions("helo=rmk-PC.armlinux.org.uk") and field.mentions("[fd8f:7570:feb6:1:222:68ff:fe15:37dd]")
    assert field.date == "Mon, 06 Jan 2025 12:26:13 +0000"


def test_exim_local_submission_is_an_unregistered_keyword():
    field = one(EXIM_LOCAL)
    assert field.clause("from").value == "rmk"
    assert (field.protocol, field.registered, field.tls, field.auth) == ("LOCAL", False, False, False)


def test_sendmail_comment_after_the_id_and_before_the_date():
    field = one(SENDMAIL_ESMTPSA)
    assert (field.protocol, field.tls, field.auth) == ("ESMTPSA", True, True)
    assert field.clause("from").comments == ("terminus.zytor.com [IPv6:2607:7c80:54:3:0:0:0:136]",
                                             "authenticated bits=0")
    assert field.clause("id").comments == ("version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256 verify=NO",)
    assert parsedate_to_datetime(field.date).utcoffset().total_seconds() == -7 * 3600
    field = one(SENDMAIL_SUBMIT)
    assert field.leading == ("from chleroy@localhost",) and field.clause("from") is None and field.protocol is None


def test_dovecot_lmtp_and_microsoft():
    lmtp = one(DOVECOT_LMTP)
    assert (lmtp.protocol, lmtp.registered, lmtp.tls) == ("LMTP", True, False)
    assert lmtp.clause("for").value == "<bob@lab.test>"
    microsoft = one(MICROSOFT)
    assert (microsoft.protocol, microsoft.registered, microsoft.tls) == ("MICROSOFT", False, False)
    assert microsoft.clause("with").extra == ("SMTP", "Server")
    assert microsoft.clause("id").value == "15.20.7633.25"


def test_qmail_has_only_a_comment_and_a_date():
    field = one(QMAIL)
    assert field.clauses == () and field.leading == ("qmail 1234 invoked from network",)
    assert field.date == "1 Jan 2020 00:00:00 -0000"


def test_a_semicolon_in_a_comment_does_not_start_the_date():
    field = parse_received("from a.example ([192.0.2.1] helo=a.example) by b.example with esmtp "
                           "(envelope-from <x@a.example>; auth=none) id 1abc; Tue, 1 Dec 2026 03:00:00 +0000")
    assert field.date == "Tue, 1 Dec 2026 03:00:00 +0000"
    assert field.clause("id").value == "1abc" and field.protocol == "ESMTP"


@pytest.mark.parametrize("keyword", ["SMTPS", "SMTPA", "UTF8ESMTP", "ESMTPAS", "HTTP", "esmtps2"])
def test_only_the_17_registered_keywords_are_registered(keyword):
    assert len(REGISTERED) == 17
    field = parse_received(f"from a by b with {keyword} id 1; Tue, 1 Dec 2026 03:00:00 +0000")
    assert not field.registered and not field.tls and not field.auth


def test_the_hop_of_a_connection_is_found_by_its_ehlo_name_not_by_position():
    """A delivery hop (LMTP) on top, then ours, then an older one from elsewhere."""
    block = DOVECOT_LMTP + (
        b"Received: from mc-0123.mailconform.example.com (unknown [127.0.0.1])\r\n"
        b"\tby mail.lab.test (Postfix) with ESMTPSA id ABC\r\n\tfor <bob@lab.test>; Tue, 1 Dec 2026 03:00:00 +0000\r\n"
    ) + POSTFIX_ESMTPS
    fields = received_fields(lines(block))
    assert [f.protocol for f in fields] == ["LMTP", "ESMTPSA", "ESMTPS"]
    assert hop_of(fields, "mc-0123.mailconform.example.com") is fields[1]
    assert hop_of(fields, "mc-9999.mailconform.example.com", "127.0.0.1") is fields[1]  # by the address literal
    assert hop_of(fields, "mc-9999.mailconform.example.com", "192.0.2.7") is None
    assert hop_of(fields, "mc-9999.mailconform.example.com") is None


def test_broken_fields_do_not_break_the_parser():
    for text in ("from x (unclosed by y with ESMTP", "from [192.0.2.1 by y", 'from "quoted by" by y with SMTP',
                 ") ] > ;", "", "with", "from x by y with ESMTP id 1 for <a@b> (c (d) \\) e);"):
        field = parse_received(text)
        assert isinstance(field.value, str)
    assert parse_received('from "quoted by" by y with SMTP').clause("by").value == "y"
    kinds = [t.kind for t in tokens('a (b (c) d) "e;f" <g> [h] ;')]
    assert kinds == ["atom", "comment", "quoted", "angle", "literal", ";"]
