"""mailconform's TLS checks against testssl.sh and sslyze on the reference's seven TLS endpoints,
side by side in one run: the same questions (protocol versions, weak suites, the certificate).

    python bench/bench_tls.py [--target reference] [--testssl PATH] [--sslyze PATH]

(a) ``pytest suites/tls --target=reference`` (every TLS check: versions, suites and, when present,
    the certificate checks), once as the target is configured and once with the connection rate
    limit lifted (``connections_per_second = 1000``: the other tools have none);
(b) Debian's testssl.sh, ``-p -S`` per endpoint (``--starttls smtp|pop3|imap`` where the service
    upgrades), non-interactive;
(c) sslyze, ``--certinfo`` and the protocol scans per endpoint (``--starttls`` likewise).

Prints each tool's wall-clock seconds per endpoint and in total, and the ratios; a missing tool is
named with how to install it, never a crash.  Loopback only; it never judges the numbers.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fixtures import reference  # noqa: E402
from mailconform.targets import load_targets  # noqa: E402
from mailconform.tlsinfo import TLS_ENDPOINTS  # noqa: E402

#: The STARTTLS dialect both tools name for each upgrading service.
STARTTLS = {"smtp": "smtp", "submission": "smtp", "pop3": "pop3", "imap": "imap"}
SSLYZE_VENV = Path("/var/tmp/sslyze-venv/bin/sslyze")
INSTALL = {
    "testssl.sh": "apt-get install -y testssl.sh   (Debian/Ubuntu; or git clone https://github.com/testssl/testssl.sh)",
    "sslyze": f"python3 -m venv {SSLYZE_VENV.parents[1]} && {SSLYZE_VENV.parent}/pip install sslyze   "
              "(a venv of its own, not mailconform's .venv)",
}
TOOL_TIMEOUT = 600  # seconds one tool may take on one endpoint


def endpoints(target) -> list[tuple[str, str, int]]:
    """(service, host, port) of every TLS endpoint the target offers, in the suite's order."""
    return [(service, e.host, e.port) for service in TLS_ENDPOINTS if (e := target.endpoint(service))]


def unthrottled_targets(directory: Path, name: str) -> Path:
    """A copy of targets.toml whose ``name`` table has no connection rate limit (and an absolute CA path)."""
    text = (REPO / "targets.toml").read_text()
    table = re.search(rf"^\[targets\.{re.escape(name)}\]\n.*?(?=^\[targets\.(?!{re.escape(name)}\.)|\Z)",
                      text, re.S | re.M).group(0)
    table = re.sub(r'^ca_file = "(?!/)', f'ca_file = "{REPO}/', table, flags=re.M)
    table = table.replace(f"[targets.{name}]\n", f"[targets.{name}]\nconnections_per_second = 1000\n", 1)
    path = directory / "targets.toml"
    path.write_text(table)
    return path


def mailconform(name: str, directory: Path, targets_file: Path | None) -> tuple[float, dict[str, float], str]:
    """(wall seconds of the pytest process, seconds per endpoint summed over its rows, summary line)."""
    junit = directory / "junit.xml"
    command = [sys.executable, "-m", "pytest", "suites/tls", "-p", "no:cacheprovider", "-q", f"--target={name}",
               f"--junitxml={junit}", *([f"--targets-file={targets_file}"] if targets_file else [])]
    began = time.monotonic()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    wall = time.monotonic() - began
    per_endpoint: dict[str, float] = {}
    for case in ElementTree.parse(junit).iter("testcase"):
        endpoint = re.search(r"\[[^\]]*-([a-z0-9]+)\]$", case.get("name", ""))
        if endpoint:
            per_endpoint[endpoint.group(1)] = per_endpoint.get(endpoint.group(1), 0.0) + float(case.get("time", 0))
    summary = next((line.strip() for line in reversed(done.stdout.splitlines())
                    if re.search(r"\d+ (passed|failed)", line)), f"pytest exited {done.returncode}")
    return wall, per_endpoint, summary


def find_tool(given: str | None, names: tuple[str, ...], extra: Path | None = None) -> str | None:
    if given:
        return given if Path(given).exists() or shutil.which(given) else None
    found = next((shutil.which(n) for n in names if shutil.which(n)), None)
    return found or (str(extra) if extra and extra.exists() else None)


def testssl_command(tool: str, service: str, host: str, port: int) -> list[str]:
    """By address, as sslyze is given it: a name the machine cannot resolve would cost testssl.sh
    DNS timeouts that are not its scanning."""
    upgrade = ["--starttls", STARTTLS[service]] if service in STARTTLS else []
    return [tool, "-p", "-S", "--quiet", "--warnings", "off", "--color", "0", *upgrade, f"{host}:{port}"]


def sslyze_command(tool: str, service: str, host: str, port: int, name: str, ca_file: str | None) -> list[str]:
    upgrade = ["--starttls", STARTTLS[service]] if service in STARTTLS else []
    certinfo = ["--certinfo", *([f"--certinfo_ca_file={ca_file}"] if ca_file else [])]
    return [tool, *certinfo, "--sslv2", "--sslv3", "--tlsv1", "--tlsv1_1", "--tlsv1_2", "--tlsv1_3",
            "--mozilla_config=disable", "--quiet", *upgrade, "--sni", name, f"{host}:{port}"]


def timed(command: list[str], log: Path) -> tuple[float, int]:
    """(wall seconds, exit status) of one tool run, its output kept in ``log``."""
    began = time.monotonic()
    with log.open("w") as out:
        try:
            code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  timeout=TOOL_TIMEOUT, check=False).returncode
        except subprocess.TimeoutExpired:
            code = -1
    return time.monotonic() - began, code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="reference", help="a target of targets.toml (default: reference)")
    parser.add_argument("--testssl", help="path of testssl.sh (default: testssl or testssl.sh on PATH)")
    parser.add_argument("--sslyze", help=f"path of sslyze (default: on PATH, else {SSLYZE_VENV})")
    options = parser.parse_args()

    target = load_targets(REPO / "targets.toml")[options.target]
    if options.target == "reference" and not reference.status().running:
        print("starting the reference server…")
        reference.start()
    points = endpoints(target)
    name = target.tls.server_name or target.host
    ca_file = str(target.tls.ca_file) if target.tls.ca_file else None
    print(f"{options.target}: {len(points)} TLS endpoints: " + ", ".join(f"{s} {p}" for s, _, p in points))

    columns: dict[str, dict[str, float]] = {}
    totals: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as scratch:
        scratch = Path(scratch)
        for label, targets_file in (("mailconform", None),
                                    ("mailconform, no rate limit", unthrottled_targets(scratch, options.target))):
            directory = scratch / label.replace(" ", "_").replace(",", "")
            directory.mkdir()
            wall, per_endpoint, summary = mailconform(options.target, directory, targets_file)
            columns[label], totals[label] = per_endpoint, wall
            inside = sum(per_endpoint.values())
            print(f"{label}: {wall:.2f} s wall ({inside:.2f} s in the checks, {wall - inside:.2f} s pytest start-up "
                  f"and collection) — {summary}")

        tools = {"testssl.sh": find_tool(options.testssl, ("testssl", "testssl.sh")),
                 "sslyze": find_tool(options.sslyze, ("sslyze",), SSLYZE_VENV)}
        for tool, path in tools.items():
            if path is None:
                print(f"{tool}: NOT FOUND — skipped.  Install: {INSTALL[tool]}")
                continue
            columns[tool] = {}
            for service, host, port in points:
                command = (testssl_command(path, service, host, port) if tool == "testssl.sh"
                           else sslyze_command(path, service, host, port, name, ca_file))
                seconds, code = timed(command, scratch / f"{tool}-{service}.log")
                columns[tool][service] = seconds
                print(f"  {tool} {service} {port}: {seconds:.2f} s" + (f" (exit {code})" if code else ""))
            totals[tool] = sum(columns[tool].values())

    labels = list(columns)
    print("\nseconds per endpoint (mailconform: its rows' time inside pytest; the tools: one run each)")
    print(f"{'endpoint':<17}" + "".join(f"{label:>28}" for label in labels))
    for service, _, port in points:
        print(f"{service:<11}{port:>5} " + "".join(f"{columns[label].get(service, float('nan')):>28.2f}" for label in labels))
    print(f"{'total (wall)':<17}" + "".join(f"{totals[label]:>28.2f}" for label in labels))
    ours = totals["mailconform"]
    for tool in ("testssl.sh", "sslyze"):
        if tool in totals:
            print(f"{tool} / mailconform: {totals[tool] / ours:.1f}x "
                  f"(unthrottled: {totals[tool] / totals['mailconform, no rate limit']:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
