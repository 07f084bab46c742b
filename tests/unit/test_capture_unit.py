"""--capture-dir without a mail server: file names, display filters, start-up failures, the key log's
mode, dumpcap's lifetime (a stand-in dumpcap), and the A1.capture checks on hand-made captures
(tshark reads them; those tests are skipped without it)."""

import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from mailconform.capture import AUTOSTOP, MARK, Capture, any_of, decode_as, file_stem
from mailconform.targetrun import TargetRun
from mailconform.targets import parse_targets
from mailconform.verdicts import CheckContext, CheckFailed, NotApplicable, current_check
from suites.capture import test_capture as capture_checks  # a module: pytest collects no check from it here

ENDPOINTS = {"pop3": ("127.0.0.1", 110)}
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")


# --------------------------------------------------------------------------- file names and filters

def test_two_target_names_with_the_same_stem_get_different_files():
    url, plain = "smtp://127.0.0.1:25", "smtp_127.0.0.1_25"
    assert file_stem(url) != file_stem(plain)
    assert file_stem(plain) == plain                           # a name that is already a file name stays
    assert file_stem(url).startswith("smtp_127.0.0.1_25-")     # a changed one says where it came from
    assert file_stem(url) == file_stem(url)                    # and is the same in every run
    assert file_stem("a/b") != file_stem("a:b")
    assert file_stem("") != "target" and file_stem("///") != file_stem("")


def test_display_filters_use_no_wireshark_4_set_syntax():
    """``x in {"A", "B"}`` (quoted strings in a set) needs Wireshark 4; ``==`` and ``||`` read everywhere."""
    assert any_of("pop.request.command", "RETR", "TOP") == \
        '(pop.request.command == "RETR" || pop.request.command == "TOP")'
    for display_filter in (capture_checks.CREDENTIALS, capture_checks.MAILBOX):
        assert " in {" not in display_filter and "{" not in display_filter, display_filter
    assert '"PASS"' in capture_checks.CREDENTIALS and '"APOP"' in capture_checks.CREDENTIALS


@needs_tshark
def test_tshark_accepts_every_display_filter_of_the_checks(tmp_path):
    pcap = _pcap(tmp_path / "one.pcap", [_udp(40000, 40000, b"x")])
    capture = Capture(pcap, tmp_path / "none.keys", "", decode_as(ENDPOINTS), marker_port=40000)
    for display_filter in (capture_checks.CREDENTIALS, capture_checks.MAILBOX, capture.traffic()):
        assert capture.frames(display_filter, capture_checks.FIELDS) == [] or display_filter == capture.traffic()


# --------------------------------------------------------------------------- start-up failures

def test_a_directory_that_cannot_be_made_is_the_captures_error_not_an_exception(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    capture = Capture.start(tmp_path / "file" / "capture", "alumno01", ENDPOINTS, None)
    assert capture.error and "NotADirectoryError" in capture.error
    assert capture.marker_port is None and capture._process is None


def test_a_target_run_starts_without_its_capture_and_says_why(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    target = parse_targets({"targets": {"alumno01": {"host": "127.0.0.1", "services": {"pop3": 1110}}}},
                           tmp_path)["alumno01"]
    run = TargetRun(target, tmp_path / "file" / "capture")
    assert run.capture is not None and "NotADirectoryError" in run.capture.error
    assert run.tls_context().keylog_filename is None  # no key log without a capture


def test_an_unexpected_error_of_capture_start_does_not_escape_the_target_run(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("something else broke")
    monkeypatch.setattr(Capture, "start", broken)
    target = parse_targets({"targets": {"alumno01": {"host": "127.0.0.1", "services": {"pop3": 1110}}}},
                           tmp_path)["alumno01"]
    run = TargetRun(target, tmp_path / "capture")
    assert run.capture.error == "RuntimeError: something else broke"


def _tools(directory: Path, dumpcap: str) -> Path:
    """A PATH directory with a stand-in ``dumpcap`` (its script) and ``tshark``."""
    directory.mkdir()
    (directory / "dumpcap").write_text(dumpcap)
    (directory / "tshark").write_text("#!/bin/sh\nexit 0\n")
    for tool in ("dumpcap", "tshark"):
        (directory / tool).chmod(0o755)
    return directory


def test_a_dumpcap_that_cannot_run_is_the_captures_error(tmp_path, monkeypatch):
    bin_dir = _tools(tmp_path / "bin", "#!/nonexistent/interpreter\n")  # found, but exec fails
    monkeypatch.setenv("PATH", str(bin_dir))
    capture = Capture.start(tmp_path / "capture", "alumno01", ENDPOINTS, None)
    assert capture.error and "FileNotFoundError" in capture.error
    assert capture._marker is None and capture._process is None  # nothing left open


def test_a_dumpcap_that_fails_is_the_captures_error(tmp_path, monkeypatch):
    bin_dir = _tools(tmp_path / "bin", "#!/bin/sh\necho 'dumpcap: You do not have permission to capture' >&2\n"
                                       "exit 1\n")
    monkeypatch.setenv("PATH", str(bin_dir))
    capture = Capture.start(tmp_path / "capture", "alumno01", ENDPOINTS, None)
    assert capture.error == "dumpcap failed: dumpcap: You do not have permission to capture"


# --------------------------------------------------------------------------- a stand-in dumpcap

#: Writes to its -w file until SIGTERM, and notes its arguments and parent-death signal beside it.
FAKE_DUMPCAP = textwrap.dedent(f"""\
    #!{sys.executable}
    import ctypes, json, os, sys, time
    out = sys.argv[sys.argv.index("-w") + 1]
    signal = ctypes.c_int(0)
    ctypes.CDLL(None).prctl(2, ctypes.byref(signal))  # PR_GET_PDEATHSIG
    with open(out + ".json", "w") as notes:
        json.dump({{"argv": sys.argv[1:], "pdeathsig": signal.value, "pid": os.getpid()}}, notes)
    with open(out, "ab") as pcap:
        while True:
            pcap.write(b"x" * 64)
            pcap.flush()
            time.sleep(0.02)
    """)


@pytest.fixture
def fake_dumpcap(tmp_path, monkeypatch):
    bin_dir = _tools(tmp_path / "bin", FAKE_DUMPCAP)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


def _notes(capture: Capture) -> dict:
    import json
    return json.loads(Path(f"{capture.pcap}.json").read_text())


def test_the_key_log_is_its_owners_alone_and_so_is_a_directory_we_made(tmp_path, fake_dumpcap):
    os.umask(old := os.umask(0o022))
    capture = Capture.start(tmp_path / "new" / "capture", "alumno01", ENDPOINTS, None)
    try:
        assert capture.error is None, capture.error
        assert stat.S_IMODE(capture.keylog.stat().st_mode) == 0o600
        assert capture.keylog.read_text() == ""
        assert stat.S_IMODE((tmp_path / "new" / "capture").stat().st_mode) == 0o700
    finally:
        capture.stop()
    assert old == 0o022


def test_a_directory_that_exists_keeps_its_mode(tmp_path, fake_dumpcap):
    directory = tmp_path / "shared"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    capture = Capture.start(directory, "alumno01", ENDPOINTS, None)
    capture.stop()
    assert capture.error is None, capture.error
    assert stat.S_IMODE(directory.stat().st_mode) == 0o755
    assert stat.S_IMODE(capture.keylog.stat().st_mode) == 0o600


def test_a_stale_key_log_is_replaced_by_a_private_one(tmp_path, fake_dumpcap):
    directory = tmp_path / "capture"
    directory.mkdir()
    (directory / "alumno01.keys").write_text("CLIENT_RANDOM old\n")
    (directory / "alumno01.keys").chmod(0o644)
    capture = Capture.start(directory, "alumno01", ENDPOINTS, None)
    capture.stop()
    assert capture.keylog.read_text() == "" and stat.S_IMODE(capture.keylog.stat().st_mode) == 0o600


def test_the_tls_context_writes_its_keys_to_that_file(tmp_path, fake_dumpcap):
    target = parse_targets({"targets": {"alumno01": {"host": "127.0.0.1", "services": {"pop3": 1110}}}},
                           tmp_path)["alumno01"]
    run = TargetRun(target, tmp_path / "capture")
    try:
        assert run.tls_context().keylog_filename == str(run.capture.keylog)
        assert stat.S_IMODE(run.capture.keylog.stat().st_mode) == 0o600
    finally:
        run.capture.stop()


def test_dumpcap_stops_by_itself_and_when_its_parent_dies(tmp_path, fake_dumpcap):
    capture = Capture.start(tmp_path / "capture", "alumno01", ENDPOINTS, None)
    try:
        notes = _notes(capture)
    finally:
        capture.stop()
    assert notes["argv"][notes["argv"].index("-a") + 1] == f"duration:{AUTOSTOP}"
    if sys.platform.startswith("linux"):
        assert notes["pdeathsig"] == signal.SIGTERM


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_killed_worker_leaves_no_dumpcap_behind(tmp_path, fake_dumpcap):
    worker = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from mailconform.capture import Capture; "
                               f"c = Capture.start(Path({str(tmp_path / 'capture')!r}), 'w', {ENDPOINTS!r}, None); "
                               "print(c.error or c._process.pid, flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        line = worker.stdout.readline().strip()
        assert line.isdigit(), line
        dumpcap = int(line)
        assert _alive(dumpcap)
    finally:
        worker.kill()
        worker.wait()
    deadline = time.monotonic() + 10
    while _alive(dumpcap) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert not _alive(dumpcap), "dumpcap outlived the worker that started it"
    finally:
        if _alive(dumpcap):
            os.kill(dumpcap, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


# --------------------------------------------------------------------------- the checks on hand-made captures

def _pcap(path: Path, packets: list[bytes]) -> Path:
    """A classic pcap of raw IPv4 packets (LINKTYPE_RAW)."""
    data = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)
    for number, packet in enumerate(packets):
        data += struct.pack("<IIII", 1700000000 + number, 0, len(packet), len(packet)) + packet
    path.write_bytes(data)
    return path


def _ip(protocol: int, payload: bytes) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, protocol, 0,
                       bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + payload


def _udp(source: int, destination: int, payload: bytes) -> bytes:
    return _ip(17, struct.pack("!HHHH", source, destination, 8 + len(payload), 0) + payload)


def _tcp(source: int, destination: int, payload: bytes, sequence: int = 1) -> bytes:
    return _ip(6, struct.pack("!HHIIBBHHH", source, destination, sequence, 1, 5 << 4, 0x18, 65535, 0, 0) + payload)


def _pop3_client(*lines: str) -> list[bytes]:
    """A POP3 client's lines to port 110, one segment each, with a +OK answer after each."""
    packets, sequence, answer = [], 1, 1
    for line in lines:
        data = f"{line}\r\n".encode()
        packets.append(_tcp(50000, 110, data, sequence))
        sequence += len(data)
        packets.append(_tcp(110, 50000, b"+OK\r\n", answer))
        answer += 5
    return packets


def _run(check, capture: Capture, allow_cleartext_auth: bool = False):
    token = current_check.set(CheckContext(_check_id(check)))
    try:
        if check is capture_checks.test_the_capture_reads_back_and_tls_decrypts:
            return check(capture)
        return check(capture, SimpleNamespace(allow_cleartext_auth=allow_cleartext_auth))
    finally:
        current_check.reset(token)


def _check_id(check) -> str:
    return {capture_checks.test_the_capture_reads_back_and_tls_decrypts: "capture.files.readable",
            capture_checks.test_no_credential_crossed_before_tls: "capture.cleartext.credentials",
            capture_checks.test_no_mailbox_content_crossed_before_tls: "capture.cleartext.mailbox"}[check]


def _capture(tmp_path: Path, packets: list[bytes], marker_port: int | None = 40000) -> Capture:
    return Capture(_pcap(tmp_path / "t.pcap", packets), tmp_path / "t.keys", "", decode_as(ENDPOINTS),
                   marker_port=marker_port)


MARKS = [_udp(40000, 40000, MARK) for _ in range(3)]
READABLE = capture_checks.test_the_capture_reads_back_and_tls_decrypts
CREDENTIALS = capture_checks.test_no_credential_crossed_before_tls
MAILBOX = capture_checks.test_no_mailbox_content_crossed_before_tls


@needs_tshark
def test_the_suites_own_marks_are_no_traffic_with_the_target(tmp_path):
    with pytest.raises(NotApplicable, match="holds no traffic with the target, only the suite's own marks"):
        _run(READABLE, _capture(tmp_path, MARKS))


@needs_tshark
def test_a_capture_without_a_single_frame_is_empty(tmp_path):
    with pytest.raises(CheckFailed, match="holds no frame"):
        _run(READABLE, _capture(tmp_path, []))


@needs_tshark
def test_traffic_with_the_target_beside_the_marks_reads_back(tmp_path):
    assert _run(READABLE, _capture(tmp_path, MARKS + _pop3_client("CAPA"))) is None


@needs_tshark
@pytest.mark.parametrize("check", [CREDENTIALS, MAILBOX], ids=["credentials", "mailbox"])
def test_a_run_that_never_logged_in_nor_read_judges_nothing(tmp_path, check):
    capture = _capture(tmp_path, MARKS + _pop3_client("CAPA", "STLS"))
    with pytest.raises(NotApplicable, match="neither in cleartext nor inside TLS"):
        _run(check, capture)


@needs_tshark
def test_a_login_without_a_read_judges_the_login_only(tmp_path):
    capture = _capture(tmp_path, MARKS + _pop3_client("USER alice", "PASS secret", "STAT"))  # PASS is frame 6
    with pytest.raises(CheckFailed, match=r"in cleartext in 1 frame\(s\): frame 6 \(POP to port 110\) ") as failed:
        _run(CREDENTIALS, capture)
    assert "secret" not in str(failed.value)
    with pytest.raises(NotApplicable, match="nothing was read from the mailbox"):
        _run(MAILBOX, capture)


@needs_tshark
@pytest.mark.parametrize("command", ["RETR 1", "TOP 1 0"])
def test_a_cleartext_read_fails_and_a_tolerating_target_warns(tmp_path, command):
    capture = _capture(tmp_path, MARKS + _pop3_client("PASS secret", command))
    with pytest.raises(CheckFailed, match="messages were read from the mailbox in cleartext"):
        _run(MAILBOX, capture)
    context = CheckContext("capture.cleartext.mailbox")
    token = current_check.set(context)
    try:
        MAILBOX(capture, SimpleNamespace(allow_cleartext_auth=True))
    finally:
        current_check.reset(token)
    assert len(context.warnings) == 1 and "in cleartext in 1 frame(s)" in context.warnings[0]
    assert "secret" not in context.warnings[0]


def test_the_marks_are_dropped_only_when_there_are_marks():
    capture = Capture(Path("x"), Path("y"), "", marker_port=40123)
    assert capture.traffic() == "(frame) && !(udp.port == 40123)"
    assert Capture(Path("x"), Path("y"), "").traffic("tcp") == "tcp"

