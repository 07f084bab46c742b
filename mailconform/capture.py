"""``--capture-dir DIR``: the run's traffic with each target as a pcapng file, and the TLS key log that
lets Wireshark (or tshark) decrypt its STARTTLS and implicit-TLS sessions — lab step A1.capture,
"watch it in Wireshark".

Per target, ``DIR/NAME.pcapng`` is written by dumpcap with a capture filter limited to the target's
addresses and ports (and its DNS resolver), and ``DIR/NAME.keys`` by the target's TLS context
(``SSLContext.keylog_filename``, NSS key log format).  The key log is a secret: whoever has it can
read those sessions, the password included.  The A1.capture checks read the capture back with
tshark.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

STARTUP_WAIT = 5.0    # seconds for dumpcap to start writing
FLUSH_WAIT = 5.0      # seconds for dumpcap to write what it has and exit
#: Which Wireshark dissector reads each service, and whether TLS comes first (implicit TLS).
_DISSECTORS = {"smtp": ("smtp", False), "submission": ("smtp", False), "smtps": ("smtp", True),
               "pop3": ("pop", False), "pop3s": ("pop", True), "imap": ("imap", False), "imaps": ("imap", True)}


def missing_tools() -> list[str]:
    """The capture tools this machine lacks (dumpcap writes, tshark reads)."""
    return [tool for tool in ("dumpcap", "tshark") if shutil.which(tool) is None]


def file_stem(target_name: str) -> str:
    """A file name for a target (a URL target's name holds ``/`` and ``:``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", target_name).strip("_") or "target"


def capture_filter(endpoints: dict[str, tuple[str, int]], dns: tuple[str, int] | None) -> str:
    """The BPF filter for the target's endpoints (host and port) and its resolver."""
    parts = [f"(host {host} and tcp port {port})" for host, port in sorted(set(endpoints.values()))]
    if dns:
        parts.append(f"(host {dns[0]} and port {dns[1]})")
    return " or ".join(parts)


def decode_as(endpoints: dict[str, tuple[str, int]]) -> list[str]:
    """tshark ``-d`` rules so each service is read by its dissector on whatever port it uses."""
    rules = []
    for service, (_, port) in endpoints.items():
        dissector, implicit_tls = _DISSECTORS[service]
        rules += [f"tcp.port=={port},tls", f"tls.port=={port},{dissector}"] if implicit_tls else \
            [f"tcp.port=={port},{dissector}"]
    return rules


@dataclass
class Capture:
    """One target's capture: started before its first connection, stopped before it is read."""

    pcap: Path
    keylog: Path
    filter: str
    decode_as: list[str] = field(default_factory=list)
    error: str | None = None
    _process: subprocess.Popen | None = field(default=None, repr=False)
    _marker: socket.socket | None = field(default=None, repr=False)

    @classmethod
    def start(cls, directory: Path, target_name: str, endpoints: dict[str, tuple[str, int]],
              dns: tuple[str, int] | None) -> Capture:
        """Start capturing ``endpoints`` (service → host, port) and the resolver ``dns``."""
        directory.mkdir(parents=True, exist_ok=True)
        stem = file_stem(target_name)
        capture = cls(directory / f"{stem}.pcapng", directory / f"{stem}.keys", capture_filter(endpoints, dns),
                      decode_as(endpoints))
        for path in (capture.pcap, capture.keylog):
            path.unlink(missing_ok=True)
        if missing := missing_tools():
            capture.error = f"{' and '.join(missing)} not found: install Wireshark's command-line tools " \
                            f"(Debian: apt install tshark)"
            return capture
        capture._marker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        capture._marker.bind(("127.0.0.1", 0))
        capture.filter += f" or (udp and host 127.0.0.1 and port {capture._marker.getsockname()[1]})"
        capture._process = subprocess.Popen(
            ["dumpcap", "-q", "-i", "any", "-f", capture.filter, "-w", str(capture.pcap)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if capture._caught_up(STARTUP_WAIT):
            return capture
        capture.stop()
        capture.error = capture.error or f"dumpcap did not start capturing within {STARTUP_WAIT:g} s"
        return capture

    def _caught_up(self, wait: float) -> bool:
        """Has dumpcap written everything up to now?  A datagram the suite sends itself (to the marker
        port the filter names) is in the file: packets reach the file in order, and the kernel
        hands them over in blocks, so without it the last ones would be lost at the start and at
        the end of a capture."""
        deadline = time.monotonic() + wait
        size = self.pcap.stat().st_size if self.pcap.exists() else 0
        while time.monotonic() < deadline and self._process.poll() is None:
            self._marker.sendto(b"mailconform: capture mark", self._marker.getsockname())
            time.sleep(0.05)
            now = self.pcap.stat().st_size if self.pcap.exists() else 0
            if size and now > size:
                return True
            size = size or now
        return False

    def stop(self) -> None:
        """End the capture once dumpcap has written everything so far (idempotent); what dumpcap
        said on failure becomes ``error``."""
        if self._process is not None and self._process.poll() is None:
            self._caught_up(FLUSH_WAIT)
        process, self._process = self._process, None
        if self._marker is not None:
            self._marker.close()
            self._marker = None
        if process is None:
            return
        process.terminate()
        try:
            _, stderr = process.communicate(timeout=FLUSH_WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        if process.returncode not in (0, -15) and not self.pcap.exists():
            self.error = f"dumpcap failed: {stderr.strip()[-300:]}"

    def frames(self, display_filter: str, fields: list[str], timeout: float = 60) -> list[list[str]]:
        """Rows of ``fields`` for every frame matching ``display_filter``, TLS decrypted with the key log."""
        command = ["tshark", "-n", "-r", str(self.pcap), "-Y", display_filter, "-T", "fields",
                   *(arg for name in fields for arg in ("-e", name)), "-E", "separator=\t"]
        if self.keylog.exists():
            command += ["-o", f"tls.keylog_file:{self.keylog}"]
        for rule in self.decode_as:
            command += ["-d", rule]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"tshark could not read {self.pcap}: {done.stderr.strip()[-300:]}")
        return [line.split("\t") for line in done.stdout.splitlines() if line.strip()]
