"""How long the A1 suite takes: on the reference server, on a dead host, and on a class of servers.

    python bench/bench_suite.py [--class-size 30] [--repeat 3]

Prints wall-clock seconds per scenario (median of the repeats).  Loopback only."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fixtures import reference  # noqa: E402
from fixtures.twins import Blackhole, MailTwin  # noqa: E402


def timed_run(targets: list[str], targets_file: Path | None = None) -> float:
    command = [sys.executable, "-m", "pytest", "suites", "-q", "-p", "no:cacheprovider",
               *(f"--target={t}" for t in targets)]
    if targets_file:
        command.append(f"--targets-file={targets_file}")
    began = time.monotonic()
    subprocess.run(command, cwd=REPO, capture_output=True, check=False)
    return time.monotonic() - began


def median_of(repeat: int, run) -> float:
    return statistics.median(run() for _ in range(repeat))


def twin_table(name: str, smtp: int, pop3: int, timeout: float) -> str:
    return (f'[targets.{name}]\nhost = "127.0.0.1"\nintrusive = true\nallow_cleartext_auth = true\n'
            f'timeout = {timeout}\n[targets.{name}.services]\nsmtp = {smtp}\npop3 = {pop3}\n'
            f'[targets.{name}.account]\nuser = "alice"\npassword = "alice-pw"\naddress = "alice@twin.test"\n')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--class-size", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mailconform-bench-"))

    reference.start()
    print(f"reference (24 A1 checks, real Postfix+Dovecot): {median_of(args.repeat, lambda: timed_run(['reference'])):.2f} s")

    timeout = 3
    with Blackhole() as smtp, Blackhole() as pop3:
        dead = work / "dead.toml"
        dead.write_text(twin_table("dead", smtp.port, pop3.port, timeout))
        seconds = median_of(args.repeat, lambda: timed_run(["dead"], dead))
        print(f"dead host, 2 services, timeout {timeout} s: {seconds:.2f} s (2 connect timeouts = {2 * timeout} s)")

    twins = [MailTwin() for _ in range(args.class_size)]
    for twin in twins:
        twin.start()
    try:
        klass = work / "class.toml"
        klass.write_text("\n".join(twin_table(f"student{i:02d}", t.smtp_port, t.pop3_port, 5)
                                   for i, t in enumerate(twins, 1)))
        names = [f"student{i:02d}" for i in range(1, args.class_size + 1)]
        seconds = median_of(args.repeat, lambda: timed_run(names, klass))
        print(f"class of {args.class_size} scripted servers: {seconds:.2f} s ({seconds / args.class_size:.2f} s per server)")
    finally:
        for twin in twins:
            twin.stop()


if __name__ == "__main__":
    main()
