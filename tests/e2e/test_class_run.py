"""A class graded as a teacher grades it: one command over a roster (the reference server and
broken twins, one row each), in parallel, with a grade file, a gradebook CSV and the exit status
a script relies on; then the same class in two shards, merged, gives the same grades."""

import csv
import json
import subprocess
import sys

import pytest

from fixtures.twins import Blackhole, MailTwin
from suite_runner import REPO, run_suite

PASSWORD = "class-s3cret-pw-4410"
TEMPLATE = """
[templates.student]
host = "127.0.0.1"
intrusive = true
timeout = 2
delivery_wait = 1
connections_per_second = 1000
allow_cleartext_auth = true
[templates.student.account]
user = "alice"
password = "{password}"
address = "alice@twin.test"

[rosters.class-2026]
file = "class-2026.csv"
template = "student"
"""
COLUMNS = ["name", "host", "domain", "dns", "source", "timeout", "delivery_wait", "connections_per_second",
           "allow_cleartext_auth", "services.smtp", "services.pop3", "services.pop3s", "tls.ca_file",
           "tls.server_name", "account.password", "account.address"]
#: The reference server's row: what targets.toml says of it.
REFERENCE_ROW = {"name": "reference", "host": "127.0.10.2", "domain": "mailconform.test", "dns": "127.0.10.53:53",
                 "source": "127.0.0.1", "timeout": "10", "delivery_wait": "10", "connections_per_second": "20",
                 "allow_cleartext_auth": "no", "services.smtp": "25", "services.pop3": "110", "services.pop3s": "995",
                 "tls.ca_file": str(REPO / "fixtures/pki/ca.pem"), "tls.server_name": "mail.mailconform.test",
                 "account.password": "alice-pw", "account.address": "alice@mailconform.test"}
#: Twin rows: fault → the grade it must get (score, max) under the default rubric.  No domain, so
#: A1.mx is not graded: 10 points for A1.smtp-session, 10 for A1.pop3-session.  Check weights:
#: high 3, medium 2, low 1, critical 4, info 0; A1.smtp-session weighs 10×3 + 2 + 1 = 33,
#: A1.pop3-session 7×3 + 2×2 + 1 + 4 + 0 = 30.
TWIN_GRADES = {
    "noop-500": (19.7, 20.0),            # NOOP (low) fails: 10 × 32/33 + 10
    "pop3-any-password": (18.67, 20.0),  # the bad password (critical) is let in: 10 + 10 × 26/30
    "greeting-554": (5.0, 20.0),         # no SMTP at all: 0, and POP3's delivery checks are blocked: 10 × 15/30
}


@pytest.fixture(scope="module")
def class_dir(reference_server, tmp_path_factory):
    """The roster and the targets file, with every twin running and one row nobody answers."""
    directory = tmp_path_factory.mktemp("class")
    twins = {fault: MailTwin({fault}, accounts={"alice": PASSWORD}) for fault in TWIN_GRADES}
    holes = Blackhole(), Blackhole()
    for server in (*twins.values(), *holes):
        server.start()
    rows = [REFERENCE_ROW] + [{"name": fault, "services.smtp": str(twin.smtp_port), "services.pop3": str(twin.pop3_port)}
                              for fault, twin in twins.items()]
    rows.append({"name": "switched-off", "timeout": "1", "services.smtp": str(holes[0].port),
                 "services.pop3": str(holes[1].port)})
    with (directory / "class-2026.csv").open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, COLUMNS, delimiter=";")
        writer.writeheader()
        writer.writerows(rows)
    (directory / "targets.toml").write_text(TEMPLATE.replace("{password}", PASSWORD))
    try:
        yield directory
    finally:
        for server in (*twins.values(), *holes):
            server.stop()


@pytest.fixture(scope="module")
def class_run(class_dir):
    return run_suite(class_dir / "whole", ["class-2026"], class_dir / "targets.toml", "-n", "4", "--step", "A1",
                     f"--grade-json={class_dir / 'whole' / 'grades.json'}",
                     f"--grade-csv={class_dir / 'whole' / 'grades.csv'}")


def grades(path):
    return json.loads(path.read_text(encoding="utf-8"))["targets"]


def test_every_student_gets_the_expected_grade(class_run, class_dir):
    got = grades(class_dir / "whole" / "grades.json")
    assert list(got) == ["reference", *TWIN_GRADES, "switched-off"], class_run.output[-3000:]
    assert (got["reference"]["score"], got["reference"]["max"]) == (25.0, 25.0), class_run.output[-3000:]
    for fault, expected in TWIN_GRADES.items():
        assert (got[fault]["score"], got[fault]["max"]) == expected, got[fault]
    assert got["switched-off"]["judged"] is False
    assert got["switched-off"]["flags"][0] == "nothing could be decided: unreachable?"


def test_the_gradebook_csv_has_a_row_per_student(class_run, class_dir):
    rows = list(csv.reader((class_dir / "whole" / "grades.csv").open(encoding="utf-8-sig")))
    assert rows[0] == ["target", "A1.smtp-session", "A1.mx", "A1.pop3-session", "total", "max", "flags"]
    assert rows[1] == ["reference", "10.0", "5.0", "10.0", "25.0", "25.0", ""]
    assert [row[0] for row in rows[1:]] == ["reference", *TWIN_GRADES, "switched-off"]


def test_the_exit_status_and_the_summary_name_who_failed_and_who_was_not_judged(class_run):
    assert class_run.returncode == 1, class_run.output[-3000:]
    assert "NOT JUDGED    switched-off: nothing could be decided" in class_run.output
    assert "SCORE         reference: 25 / 25" in class_run.output
    assert "[5/5 targets]" in class_run.output  # the progress line, as each student is done
    assert PASSWORD not in class_run.output


def test_two_shards_merged_give_the_same_grades(class_run, class_dir):
    """As two CI jobs would: each shard on its own, at the same time, then one merge."""
    shards = [subprocess.Popen(
        [sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider", "-q", "--target=class-2026",
         f"--targets-file={class_dir / 'targets.toml'}", "--step=A1", f"--shard={k}/2",
         f"--grade-json={class_dir / f'shard{k}.json'}"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True) for k in (1, 2)]
    outputs = [shard.communicate(timeout=300)[0] for shard in shards]
    merged = subprocess.run([sys.executable, "-m", "mailconform", "merge", str(class_dir / "shard1.json"),
                             str(class_dir / "shard2.json"), f"--grade-json={class_dir / 'merged.json'}",
                             f"--grade-csv={class_dir / 'merged.csv'}"], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert merged.returncode == 6, merged.stderr + "".join(outputs)  # switched-off could not be judged
    whole = grades(class_dir / "whole" / "grades.json")
    scores = {name: (g["score"], g["max"]) for name, g in grades(class_dir / "merged.json").items()}
    assert scores == {name: (g["score"], g["max"]) for name, g in whole.items()}
    assert list(scores) == list(whole)
    assert (class_dir / "merged.csv").read_bytes() == (class_dir / "whole" / "grades.csv").read_bytes()
