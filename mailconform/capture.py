"""``--capture-dir DIR``: the run's traffic with each target as a pcapng file, and the TLS key log that
lets Wireshark (or tshark) decrypt its STARTTLS and implicit-TLS sessions — lab step A1.capture,
"watch it in Wireshark".

Per target, ``DIR/NAME.pcapng`` is written by dumpcap with a capture filter limited to the target's
addresses and ports (and its DNS resolver), and ``DIR/NAME.keys`` by the target's TLS context
(``SSLContext.keylog_filename``, NSS key log format).  The key log is a secret: whoever has it can
read those sessions, the password included; it is made mode 0600 before any key is written, and
``DIR``, when the run makes it, 0700.  (NAME is the target's name, plus a short hash of it when the
name is no file name as it is, a URL target's.)  dumpcap ends with the process that started it,
and after :data:`AUTOSTOP` seconds at the latest.  The A1.capture checks read the capture back with
tshark.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

STARTUP_WAIT = 5.0    # seconds for dumpcap to start writing
FLUSH_WAIT = 5.0      # seconds for dumpcap to write what it has and exit
#: dumpcap stops by itself after this long (``-a duration:``), should nothing else stop it.
AUTOSTOP = 6 * 3600
MARK = b"mailconform: capture mark"
#: Which Wireshark dissector reads each service, and whether TLS comes first (implicit TLS).
_DISSECTORS = {"smtp": ("smtp", False), "submission": ("smtp", False), "smtps": ("smtp", True),
               "pop3": ("pop", False), "pop3s": ("pop", True), "imap": ("imap", False), "imaps": ("imap", True)}


def missing_tools() -> list[str]:
    """The capture tools this machine lacks (dumpcap writes, tshark reads)."""
    return [tool for tool in ("dumpcap", "tshark") if shutil.which(tool) is None]


def file_stem(target_name: str) -> str:
    """A file name for a target (a URL target's name holds ``/`` and ``:``).  A name that had to be
    changed also gets a short hash of itself, so two names never share files
    (``smtp://127.0.0.1:25`` and ``smtp_127.0.0.1_25``)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", target_name).strip("_")
    if stem and stem == target_name:
        return stem
    return f"{stem or 'target'}-{hashlib.sha256(target_name.encode()).hexdigest()[:8]}"


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


def any_of(field_name: str, *values: str) -> str:
    """``field == "A" || field == "B"``: a display filter every tshark reads (the set syntax
    ``field in {"A", "B"}`` needs Wireshark 4)."""
    return "(" + " || ".join(f'{field_name} == "{value}"' for value in values) + ")"


def _parent_death_signal():
    """Linux: a function for the child, before dumpcap runs, that has it sent SIGTERM when the
    process that started it dies (``prctl(PR_SET_PDEATHSIG)``), so a killed worker leaves no
    dumpcap behind; None elsewhere.  (The kernel forgets this for a dumpcap that gains
    capabilities on exec, a non-root user's: the ``-a duration`` autostop still ends that one.)"""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def in_child() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl
            os.kill(os.getpid(), signal.SIGTERM)

    return in_child


@dataclass
class Capture:
    """One target's capture: started before its first connection, stopped before it is read."""

    pcap: Path
    keylog: Path
    filter: str
    decode_as: list[str] = field(default_factory=list)
    error: str | None = None
    #: The UDP port of the suite's own marker datagrams in the capture (not traffic with the target).
    marker_port: int | None = None
    _process: subprocess.Popen | None = field(default=None, repr=False)
    _marker: socket.socket | None = field(default=None, repr=False)

    @classmethod
    def start(cls, directory: Path, target_name: str, endpoints: dict[str, tuple[str, int]],
              dns: tuple[str, int] | None) -> Capture:
        """Start capturing ``endpoints`` (service → host, port) and the resolver ``dns``.  What keeps it
        from starting (a directory it cannot write, dumpcap missing or failing) becomes ``error``."""
        stem = file_stem(target_name)
        capture = cls(directory / f"{stem}.pcapng", directory / f"{stem}.keys", capture_filter(endpoints, dns),
                      decode_as(endpoints))
        try:
            capture._start(directory)
        except (OSError, subprocess.SubprocessError, ValueError) as error:
            capture.stop()
            capture.error = f"{type(error).__name__}: {error}"  # as Capture.failed says it
        return capture

    @classmethod
    def failed(cls, directory: Path, target_name: str, error: BaseException) -> Capture:
        """The capture that could not start because of ``error``."""
        stem = file_stem(target_name)
        return cls(directory / f"{stem}.pcapng", directory / f"{stem}.keys", "",
                   error=f"{type(error).__name__}: {error}")

    def _start(self, directory: Path) -> None:
        if not directory.is_dir():
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(directory, 0o700)  # ours: only its owner reads the key logs
        for path in (self.pcap, self.keylog):
            path.unlink(missing_ok=True)
        if missing := missing_tools():
            self.error = f"{' and '.join(missing)} not found: install Wireshark's command-line tools " \
                         f"(Debian: apt install tshark)"
            return
        # The key log is a secret: made here, readable by its owner alone, before ssl appends to it.
        descriptor = os.open(self.keylog, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            os.fchmod(descriptor, 0o600)  # whatever the umask
        finally:
            os.close(descriptor)
        self._marker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._marker.bind(("127.0.0.1", 0))
        self.marker_port = self._marker.getsockname()[1]
        self.filter += f" or (udp and host 127.0.0.1 and port {self.marker_port})"
        self._process = subprocess.Popen(
            ["dumpcap", "-q", "-i", "any", "-f", self.filter, "-a", f"duration:{AUTOSTOP}", "-w", str(self.pcap)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            preexec_fn=_parent_death_signal())
        if self._caught_up(STARTUP_WAIT):
            return
        self.stop()
        self.error = self.error or f"dumpcap did not start capturing within {STARTUP_WAIT:g} s"

    def traffic(self, display_filter: str = "frame") -> str:
        """``display_filter`` without the suite's own marker datagrams."""
        if self.marker_port is None:
            return display_filter
        return f"({display_filter}) && !(udp.port == {self.marker_port})"

    def _caught_up(self, wait: float) -> bool:
        """Has dumpcap written everything up to now?  A datagram the suite sends itself (to the marker
        port the filter names) is in the file: packets reach the file in order, and the kernel
        hands them over in blocks, so without it the last ones would be lost at the start and at
        the end of a capture."""
        deadline = time.monotonic() + wait
        size = self.pcap.stat().st_size if self.pcap.exists() else 0
        while time.monotonic() < deadline and self._process.poll() is None:
            self._marker.sendto(MARK, self._marker.getsockname())
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
