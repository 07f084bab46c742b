"""Lab step A1.capture: with --capture-dir, each target's traffic is a pcapng that tshark reads back,
its TLS sessions decrypt with the run's key log, and every credential or mailbox read that crossed
before TLS is named — on the real reference (none: it logs in over STLS) and on a twin that takes
logins in cleartext."""

import os
import stat
import subprocess

import pytest

from fixtures.twins import MailTwin
from mailconform.capture import Capture, decode_as
from mailconform.verdicts import CheckContext, CheckFailed, current_check
from suite_runner import run_suite
from suites.capture import test_capture as capture_checks  # a module: pytest collects no check from it here

PASSWORD = "capture-Twin-pw-5521"
CHECKS = {"capture.files.readable", "capture.cleartext.credentials", "capture.cleartext.mailbox"}


def tshark(pcap, display_filter, keylog=None, pop3_port=110):
    command = ["tshark", "-n", "-r", str(pcap), "-Y", display_filter, "-T", "fields", "-e", "frame.number",
               "-d", f"tcp.port=={pop3_port},pop"]
    if keylog:
        command += ["-o", f"tls.keylog_file:{keylog}"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout.split()


def test_the_reference_capture_decrypts_and_shows_no_cleartext_login(reference_server, tmp_path):
    run = run_suite(tmp_path / "reports", ["reference"], None, "--step=A1", f"--capture-dir={tmp_path / 'capture'}")
    outcomes = run.outcomes("reference")
    assert {check: outcomes[check] for check in CHECKS} == dict.fromkeys(CHECKS, "pass"), run.output[-3000:]
    pcap, keys = tmp_path / "capture" / "reference.pcapng", tmp_path / "capture" / "reference.keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600                      # the key log is a secret
    assert stat.S_IMODE((tmp_path / "capture").stat().st_mode) == 0o700    # in a directory the run made
    logins = 'pop.request.command == "PASS"'
    assert tshark(pcap, logins) == []                    # without the key log the logins are unreadable
    assert len(tshark(pcap, f"tls and {logins}", keys)) >= 1  # with it, tshark shows them inside TLS
    # The same capture with a key log of another run: its TLS sessions stay closed, and the check says so.
    wrong = tmp_path / "other.keys"
    wrong.write_text("CLIENT_RANDOM " + "00" * 32 + " " + "11" * 48 + "\n")
    token = current_check.set(CheckContext("capture.files.readable"))  # its messages, as the plugin sets them
    try:
        with pytest.raises(CheckFailed, match="do not decrypt with the key log"):
            capture_checks.test_the_capture_reads_back_and_tls_decrypts(
                Capture(pcap, wrong, "", decode_as({"pop3": ("", 110)})))
    finally:
        current_check.reset(token)


@pytest.fixture(scope="module")
def cleartext_twin(tmp_path_factory):
    directory = tmp_path_factory.mktemp("capture-twin")
    with MailTwin(accounts={"alice": PASSWORD}) as twin:
        (directory / "targets.toml").write_text(
            f'[targets.open]\nhost = "127.0.0.1"\nintrusive = true\nallow_cleartext_auth = true\ntimeout = 2\n'
            f'delivery_wait = 1\nconnections_per_second = 1000\n'
            f'[targets.open.services]\nsmtp = {twin.smtp_port}\npop3 = {twin.pop3_port}\n'
            f'[targets.open.account]\nuser = "alice"\npassword = "{PASSWORD}"\naddress = "alice@twin.test"\n')
        yield directory, twin.pop3_port


def test_a_login_before_tls_is_found_in_the_capture(cleartext_twin):
    cleartext_twin, pop3_port = cleartext_twin
    run = run_suite(cleartext_twin / "reports", ["open"], cleartext_twin / "targets.toml", "--step=A1",
                    f"--capture-dir={cleartext_twin / 'capture'}")
    outcomes = run.outcomes("open")
    assert (outcomes["capture.cleartext.credentials"], outcomes["capture.cleartext.mailbox"]) == ("warn", "warn")
    assert outcomes["capture.files.readable"] == "pass"  # no TLS at all: nothing to decrypt
    message = run.message("open", "capture.cleartext.credentials")
    assert "a password crossed the wire in cleartext in" in message and "(POP to port" in message
    assert PASSWORD not in message
    pcap = cleartext_twin / "capture" / "open.pcapng"
    assert len(tshark(pcap, 'pop.request.command == "PASS"', pop3_port=pop3_port)) >= 1  # for Wireshark


@pytest.mark.parametrize("lang, words", [("en", ("holds no traffic with the target", "no login at all",
                                                   "no RETR, TOP or FETCH at all")),
                                          ("es", ("no tiene tráfico con el objetivo", "ningún inicio de sesión",
                                                  "ningún RETR, TOP ni FETCH"))])
def test_a_run_of_the_capture_step_alone_has_nothing_to_judge(cleartext_twin, tmp_path, lang, words):
    """No connection, no login, no read: the suite's own marks are no traffic, and no check passes
    on a capture that shows nothing either way."""
    cleartext_twin, _ = cleartext_twin
    run = run_suite(tmp_path / "reports", ["open"], cleartext_twin / "targets.toml", "--step=A1.capture",
                    f"--capture-dir={tmp_path / 'capture'}", f"--lang={lang}")
    assert run.outcomes("open") == dict.fromkeys(CHECKS, "not_applicable"), run.output[-3000:]
    for check, word in zip(("capture.files.readable", "capture.cleartext.credentials", "capture.cleartext.mailbox"),
                           words):
        assert word in run.message("open", check) and "A1.capture" in run.message("open", check)


def test_a_capture_that_cannot_start_leaves_the_rest_of_the_run_going(cleartext_twin, tmp_path):
    cleartext_twin, _ = cleartext_twin
    (tmp_path / "file").write_text("not a directory")
    run = run_suite(tmp_path / "reports", ["open"], cleartext_twin / "targets.toml", "--step=A1",
                    f"--capture-dir={tmp_path / 'file' / 'capture'}")
    outcomes = run.outcomes("open")
    assert {check: outcomes.get(check) for check in CHECKS} == dict.fromkeys(CHECKS, "not_applicable"), \
        run.output[-3000:]
    assert "no capture: NotADirectoryError" in run.message("open", "capture.files.readable")
    assert outcomes["pop3.session.login"] == outcomes["smtp.session.ehlo"] == "pass"


def test_without_capture_dir_or_tools_the_step_says_what_to_do(cleartext_twin, tmp_path):
    cleartext_twin, _ = cleartext_twin
    run = run_suite(tmp_path / "none", ["open"], cleartext_twin / "targets.toml", "--step=A1.capture")
    assert set(run.outcomes("open").values()) == {"not_applicable"}
    assert "--capture-dir DIR" in run.message("open", "capture.files.readable")
    environment = {**os.environ, "PATH": "/nonexistent"}
    done = subprocess.run(
        [os.sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider", "-q", "--target=open",
         f"--targets-file={cleartext_twin / 'targets.toml'}", "--step=A1.capture",
         f"--capture-dir={tmp_path / 'capture'}", "-rs"], capture_output=True, text=True, env=environment,
        timeout=120, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert "dumpcap and tshark not found: install Wireshark's command-line tools (Debian: apt install tshark)" \
        in done.stdout, done.stdout[-2000:]


def test_another_clients_cleartext_login_fails_a_target_that_forbids_it(tmp_path):
    """The capture sees the target's whole traffic: a mail client logging in over cleartext while the
    suite runs (the suite itself never does, since the target does not allow it) is a finding."""
    import socket
    import threading

    stop = threading.Event()
    with MailTwin(accounts={"alice": PASSWORD}) as twin:
        def cleartext_client():
            while not stop.is_set():
                with socket.create_connection(("127.0.0.1", twin.pop3_port), timeout=2) as client:
                    for line in (b"USER alice", f"PASS {PASSWORD}".encode(), b"RETR 1", b"QUIT"):
                        client.sendall(line + b"\r\n")
                    client.recv(4096)
                stop.wait(0.2)

        (tmp_path / "targets.toml").write_text(
            f'[targets.closed]\nhost = "127.0.0.1"\nintrusive = false\ntimeout = 2\nconnections_per_second = 1000\n'
            f'[targets.closed.services]\nsmtp = {twin.smtp_port}\npop3 = {twin.pop3_port}\n'
            f'[targets.closed.account]\nuser = "alice"\npassword = "{PASSWORD}"\naddress = "alice@twin.test"\n')
        client = threading.Thread(target=cleartext_client, daemon=True)
        client.start()
        try:
            run = run_suite(tmp_path / "reports", ["closed"], tmp_path / "targets.toml", "--step=A1",
                            f"--capture-dir={tmp_path / 'capture'}")
        finally:
            stop.set()
            client.join(5)
    outcomes = run.outcomes("closed")
    assert outcomes["pop3.session.login"] == "inconclusive"  # the suite kept the password to itself
    assert (outcomes["capture.cleartext.credentials"], outcomes["capture.cleartext.mailbox"]) == ("fail", "fail")
    assert PASSWORD not in run.output
