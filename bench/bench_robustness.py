"""What a hostile or absent server costs a run, and what the whole suite costs on the reference:
wall seconds, peak memory of the largest process, connections opened.

    python bench/bench_robustness.py [--timeout 3] [--class-size 30] [--workers 8]

Scenarios: the reference (real Postfix + Dovecot), whole and one lab step at a time; a dead host (nothing answers); a stalled host
(greets, then silence); hostile servers that stream without end (a 10 000-line EHLO, a 100 000-
message LIST, an endless POP3 body); a class of scripted servers, serially and with -n.  Prints
numbers, never judges them.  Loopback only; takes about a minute on a 2-core machine.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_suite import REPO, measured_run, twin_table  # noqa: E402

sys.path.insert(0, str(REPO))
from fixtures import reference  # noqa: E402
from fixtures.twins import Blackhole, MailTwin  # noqa: E402
from fixtures.zoo import ZooServer  # noqa: E402

#: The lab steps timed one by one on the reference (the pytest start-up is in each figure).
LAB_STEPS = ("A1", "A2.open-relay", "A2.esmtp", "A2.smtp-tls", "A2.starttls", "A2.rfc3848", "A2.smuggling", "A3", "E")
HOSTILE = ("greeting-then-silence", "huge-hello", "huge-list", "endless-body")
#: What the hostile targets wait for a probe message to show up: it goes to a healthy twin's
#: mailbox, which the hostile POP3 never shows, so each look until then is part of the cost.
HOSTILE_DELIVERY_WAIT = 2


def connections_in(allure: Path) -> int:
    """Connections a run opened, from its allure transcripts (an observation's is attached to every
    check that read it: each distinct transcript counted once)."""
    transcripts = {path.read_text() for path in allure.glob("*-attachment.txt")}
    return sum(len(re.findall(r"\*: connecting to ", text)) for text in transcripts)


def hostile_target(name: str, timeout: float) -> tuple[list, str]:
    """A target whose SMTP and POP3 are the zoo member where it has them, a healthy twin elsewhere."""
    servers = {}
    for service in ("smtp", "pop3"):
        try:
            servers[service] = ZooServer(name, service, password="alice-pw")
        except ValueError:  # the member does not speak it
            continue
    twin = MailTwin() if len(servers) < 2 else None
    started = [*servers.values(), *([twin] if twin else [])]
    for server in started:
        server.start()
    smtp = servers["smtp"].port if "smtp" in servers else twin.smtp_port
    pop3 = servers["pop3"].port if "pop3" in servers else twin.pop3_port
    return started, twin_table(name.replace("-", "_"), smtp, pop3, timeout, HOSTILE_DELIVERY_WAIT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=3, help="target timeout for dead and hostile hosts (3)")
    parser.add_argument("--class-size", type=int, default=30, help="targets in the class scenario (30)")
    parser.add_argument("--workers", type=int, default=8, help="pytest-xdist workers for the class (8)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mailconform-bench-"))
    began = time.monotonic()

    reference.start()
    allure = work / "allure"
    seconds, peak = measured_run(["reference"], extra=(f"--alluredir={allure}",))
    print(f"reference, whole suite: {seconds:.2f} s, peak {peak:.0f} MB, {connections_in(allure)} connections")
    for step in LAB_STEPS:  # what each lab step adds to a run (start-up included: compare with the empty run)
        seconds, _ = measured_run(["reference"], extra=("--step", step))
        print(f"  {step:24} {seconds:6.2f} s")

    print(f"\nper target, timeout {args.timeout:g} s (2 services: smtp, pop3):")
    with Blackhole() as smtp, Blackhole() as pop3:
        dead = work / "dead.toml"
        dead.write_text(twin_table("dead", smtp.port, pop3.port, args.timeout))
        seconds, peak = measured_run(["dead"], dead, expect_clean=False)
        print(f"  {'dead host':24} {seconds:6.2f} s  peak {peak:4.0f} MB")
    for name in HOSTILE:
        servers, table = hostile_target(name, args.timeout)
        try:
            targets = work / f"{name}.toml"
            targets.write_text(table)
            seconds, peak = measured_run([name.replace("-", "_")], targets, expect_clean=False)
            print(f"  {name:24} {seconds:6.2f} s  peak {peak:4.0f} MB")
        finally:
            for server in servers:
                server.stop()

    twins = [MailTwin() for _ in range(args.class_size)]
    for twin in twins:
        twin.start()
    try:
        names = [f"student{i:02d}" for i in range(1, len(twins) + 1)]
        klass = work / "class.toml"
        klass.write_text("\n".join(twin_table(n, t.smtp_port, t.pop3_port, 5) for n, t in zip(names, twins)))
        print("\nclass of scripted servers:")
        for size, workers in ((1, 0), (args.class_size, 0), (args.class_size, args.workers)):
            seconds, peak = measured_run(names[:size], klass, workers)
            print(f"  {size:3} target(s), {f'-n {workers}' if workers else 'serial':8} {seconds:6.2f} s  "
                  f"peak {peak:4.0f} MB")
    finally:
        for twin in twins:
            twin.stop()
    print(f"\nbench total: {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
