"""How long the A1 suite takes and how many connections it makes: on the reference server, on a
class of scripted servers (serially and with -n), on a dead host, and per target.

    python bench/bench_suite.py [--repeat 1] [--sizes 1,10,30] [--workers 8]

Prints wall-clock seconds per scenario (median of the repeats) and connection counts; it never
judges them.  Loopback only.  With the defaults it takes about 2-3 minutes on a 2-core machine."""

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

#: The suite before the shared observations (one run per target, observations made once).
BEFORE_COMMIT = "da40550"
#: Connections (SMTP + POP3, as MailTwin.connections counts them) one full run of the suite at
#: BEFORE_COMMIT makes against one MailTwin.  Measured once, not re-measured by this script:
#:   git worktree add /tmp/mc-before da40550
#:   start a MailTwin from the *current* fixtures (the counters live there), write a targets file
#:   like twin_table() below but without max_connections (unknown to the old suite), then
#:   cd /tmp/mc-before && PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 PYTHONPATH=/tmp/mc-before \
#:     /work/main/.venv/bin/python -m pytest suites -p mailconform.plugin -p pytest_timeout \
#:     -p no:cacheprovider --target=NAME --targets-file=FILE -q
#:   (mailconform.__file__ was /tmp/mc-before/mailconform/__init__.py; 21 passed, 3 skipped)
#: Three runs gave 32 connections each (peak 1-2 at once); then the worktree was removed.
CONNECTIONS_BEFORE = 32

TWIN_TIMEOUT = 5
DEAD_TIMEOUT = 3


#: Runs a command and prints the peak resident size of its largest descendant (kilobytes) on stderr.
_PEAK_RSS = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)")


def measured_run(targets: list[str], targets_file: Path | None = None, workers: int = 0,
                 expect_clean: bool = True, extra: tuple[str, ...] = ()) -> tuple[float, float]:
    """(wall seconds, peak MB of the largest process) of one pytest run of the suite; a run that
    should pass but does not is reported."""
    command = [sys.executable, "-c", _PEAK_RSS, sys.executable, "-m", "pytest", "suites", "-q",
               "-p", "no:cacheprovider", f"--target={','.join(targets)}", *extra]
    if targets_file:
        command.append(f"--targets-file={targets_file}")
    if workers:
        command += ["-n", str(workers)]
    began = time.monotonic()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - began
    if expect_clean and done.returncode != 0:
        print(f"  (note: pytest exited {done.returncode} for {len(targets)} target(s), -n {workers}:\n"
              f"{done.stderr[-800:]})")
    return seconds, float(done.stderr.strip().splitlines()[-1]) / 1024


def timed_run(targets: list[str], targets_file: Path | None = None, workers: int = 0,
              expect_clean: bool = True) -> float:
    """Wall seconds of one pytest run of the suite."""
    return measured_run(targets, targets_file, workers, expect_clean)[0]


def median_of(repeat: int, run) -> float:
    return statistics.median(run() for _ in range(repeat))


def twin_table(name: str, smtp: int, pop3: int, timeout: float, delivery_wait: float = 20) -> str:
    return (f'[targets.{name}]\nhost = "127.0.0.1"\nintrusive = true\nallow_cleartext_auth = true\n'
            f'timeout = {timeout}\ndelivery_wait = {delivery_wait}\nmax_connections = 2\n'
            f'[targets.{name}.services]\nsmtp = {smtp}\npop3 = {pop3}\n'
            f'[targets.{name}.account]\nuser = "alice"\npassword = "alice-pw"\naddress = "alice@twin.test"\n')


def sizes_argument(text: str) -> list[int]:
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of target counts, got {text!r}") from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError(f"expected target counts of at least 1, got {text!r}")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1, help="runs per scenario; the median is printed (default 1)")
    parser.add_argument("--sizes", type=sizes_argument, default=[1, 10, 30],
                        help="class sizes, a comma list (default 1,10,30)")
    parser.add_argument("--workers", type=int, default=8, help="pytest-xdist workers for the class (default 8)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mailconform-bench-"))
    began = time.monotonic()

    reference.start()
    seconds = median_of(args.repeat, lambda: timed_run(["reference"]))
    print(f"reference (24 A1 checks, real Postfix+Dovecot): {seconds:.2f} s")

    twins = [MailTwin() for _ in range(max(args.sizes))]
    for twin in twins:
        twin.start()
    try:
        names = [f"student{i:02d}" for i in range(1, len(twins) + 1)]
        klass = work / "class.toml"
        klass.write_text("\n".join(twin_table(name, t.smtp_port, t.pop3_port, TWIN_TIMEOUT)
                                   for name, t in zip(names, twins)))
        print(f"\nclass of scripted servers (MailTwin, max_connections = 2), wall seconds, median of {args.repeat}:")
        print(f"{'targets':>7}  {'serial s':>8}  {f'-n {args.workers} s':>8}")
        alone = None
        for size in args.sizes:
            serial = median_of(args.repeat, lambda: timed_run(names[:size], klass))
            parallel = median_of(args.repeat, lambda: timed_run(names[:size], klass, args.workers))
            print(f"{size:>7}  {serial:>8.2f}  {parallel:>8.2f}")
            if size == 1:
                alone = serial
        if alone is None:
            alone = median_of(args.repeat, lambda: timed_run(names[:1], klass))
        print(f"slowest single target (one twin alone, serial): {alone:.2f} s")
    finally:
        for twin in twins:
            twin.stop()

    with MailTwin() as twin:
        counted = work / "counted.toml"
        counted.write_text(twin_table("counted", twin.smtp_port, twin.pop3_port, TWIN_TIMEOUT))
        timed_run(["counted"], counted)
        print("\nconnections of one full run against one twin (SMTP + POP3):")
        print(f"before ({BEFORE_COMMIT}, measured once): {CONNECTIONS_BEFORE}")
        print(f"after: {twin.connections} connections, peak {twin.peak_connections} at once")

    print()
    with Blackhole() as smtp, Blackhole() as pop3:
        dead = work / "dead.toml"
        dead.write_text(twin_table("dead", smtp.port, pop3.port, DEAD_TIMEOUT))
        for workers in (0, 4):
            seconds = median_of(args.repeat, lambda: timed_run(["dead"], dead, workers, expect_clean=False))
            print(f"dead host, 2 services, timeout {DEAD_TIMEOUT} s, {f'-n {workers}' if workers else 'serial'}: "
                  f"{seconds:.2f} s (2 connect timeouts = {2 * DEAD_TIMEOUT} s)")

    print(f"\nbench total: {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
