"""Relay probes are safe: only reserved domains or the target's own in RCPT, never DATA, even against a
server that accepts everything and claims someone else's name in its greeting."""

from __future__ import annotations

import socket
import threading

import pytest

from mailconform import relay
from mailconform.targets import Account, Endpoint, Target, TlsSettings
from mailconform.wire import SmtpSession, Transcript


class AcceptEverything:
    """An SMTP server on loopback that answers 250 to every command and records them."""

    def __init__(self, greeting: bytes):
        self.greeting = greeting
        self.commands: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn):
        with conn, conn.makefile("rb") as lines:
            conn.sendall(self.greeting)
            for line in lines:
                command = line.decode(errors="replace").strip()
                self.commands.append(command)
                conn.sendall(b"221 bye\r\n" if command == "QUIT" else b"250 ok\r\n")
                if command == "QUIT":
                    return


def make_target(port: int, domain: str | None = "lab.test") -> Target:
    return Target(name="t", host="127.0.0.1", domain=domain, services={"smtp": Endpoint("127.0.0.1", port)},
                  tls=TlsSettings(), account=Account(user="alice", password="pw-123456",
                                                     address=f"alice@{domain or 'lab.test'}"))


@pytest.mark.parametrize("greeting, domain", [
    (b"220 mail.lab.test ESMTP\r\n", "lab.test"),
    (b"220 gmail.com ESMTP pretending\r\n", "lab.test"),   # a greeting may claim any name
    (b"220 smtp.gmail.com\r\n", None),                     # and a target may have no domain
])
def test_no_probe_names_a_foreign_domain_or_reaches_data(greeting, domain):
    server = AcceptEverything(greeting)
    target = make_target(server.port, domain)
    transcript = Transcript("relay")

    def connect():
        return SmtpSession.connect("127.0.0.1", server.port, timeout=2, transcript=transcript)

    found = relay.probe(connect, target, transcript, target.account.address)
    server.listener.close()
    assert set(found.rounds) == set(relay.TRICKS) and all(r.rcpt and r.rcpt.code == 250 for r in found.rounds.values())
    recipients = [c.split(":", 1)[1].strip()[1:-1] for c in server.commands if c.upper().startswith("RCPT TO:")]
    assert len(recipients) == len(relay.TRICKS) + 1
    own = relay.own_names(target) | {"[127.0.0.1]", "127.0.0.1"}
    assert [r for r in recipients if relay.foreign_domains(r, own)] == []
    assert not any("gmail" in r.lower() for r in recipients)
    assert not any(c.upper().startswith(("DATA", "BDAT")) for c in server.commands)
    sessions = sum(c.upper().startswith("EHLO") for c in server.commands)  # a few rounds share each session
    assert 2 <= sessions <= (len(relay.TRICKS) + 1) // relay.ROUNDS_PER_SESSION + 2


@pytest.mark.parametrize("address, foreign", [
    ("v@example.com", []),
    ('"v@example.com"@[127.0.0.1]', []),
    ("@lab.test,@example.com:v@example.com", []),
    ("v@[IPv6:2001:db8::25]", []),
    ("v@relay.invalid", []),
    ("v@lab.test.example.com", []),
    ("v@gmail.com", ["gmail.com"]),
    ("v%gmail.com@lab.test", ["gmail.com"]),
    ("gmail.com!v@lab.test", ["gmail.com"]),
    ("v@[10.0.0.1]", ["[10.0.0.1]"]),
])
def test_foreign_domains_are_found_wherever_they_hide(address, foreign):
    assert relay.foreign_domains(address, {"lab.test", "127.0.0.1"}) == foreign
