"""A class in one command: groups and rosters in the targets file, --shard, the progress line, the
summary per target and step with the top findings, and the merge command — through pytester,
against loopback targets with nothing listening (the checks here decide without the network)."""

import csv
import json
import subprocess
import sys

import pytest

from test_plugin import TARGETS, a_check, run, write_checks

ROSTER_TARGETS = TARGETS + """
[templates.alumno]
host = "127.0.0.{n}"
domain = "{name}.lab.test"
[templates.alumno.services]
smtp = 1

[rosters.clase]
file = "clase.csv"
template = "alumno"

[groups]
everyone = ["clase", "twin"]
"""

#: A spreadsheet in Spanish saves with ';' and a BOM; an empty cell keeps the template's value.
ROSTER = "\ufeffname;n;timeout\nalumno01;11;\nalumno02;12;3\nalumno03;13;\n"

#: The check decides from the target alone: pass for alumno02, a failure for the others.
BY_TARGET = 'expect(target.name in ("alumno02", "lab"), "not the right server", actual=target.name)'


@pytest.fixture
def class_dir(pytester):
    pytester.makefile(".toml", targets=ROSTER_TARGETS)
    (pytester.path / "clase.csv").write_text(ROSTER, encoding="utf-8")
    write_checks(pytester, a_check("smtp.session.noop", BY_TARGET), a_check("dns.demo.mx", step="A1.mx"))
    return pytester


def targets_run(path):
    return {r["target"] for r in json.loads(path.read_text())["results"]}


def test_a_roster_runs_every_row_from_its_template(class_dir):
    result = run(class_dir, "--target", "clase", "--results-json", "r.json")
    assert targets_run(class_dir.path / "r.json") == {"alumno01", "alumno02", "alumno03"}
    result.stdout.fnmatch_lines(["mailconform: 3 target(s)*", "  alumno01: smtp=127.0.0.11:1, domain alumno01.lab.test",
                                 "  alumno02: smtp=127.0.0.12:1, domain alumno02.lab.test"])


def test_one_row_of_a_roster_and_a_group_of_rosters_and_targets(class_dir):
    run(class_dir, "--target", "alumno02", "--results-json", "one.json")
    assert targets_run(class_dir.path / "one.json") == {"alumno02"}
    run(class_dir, "--target", "everyone", "--target", "alumno01", "--results-json", "all.json")
    assert targets_run(class_dir.path / "all.json") == {"alumno01", "alumno02", "alumno03", "twin"}


def test_a_roster_problem_names_the_file_line_and_column(class_dir):
    (class_dir.path / "clase.csv").write_text("name,n,timeout,colour\nalumno01,11,soon,red\nbad name,12,,\n")
    result = run(class_dir, "--target", "lab")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*clase.csv, column colour: neither a target key*nor a {colour} of the template*"])
    (class_dir.path / "clase.csv").write_text("name,n,timeout\nalumno01,11,soon\nbad name,12,\n")
    result = run(class_dir, "--target", "lab")
    result.stderr.fnmatch_lines(["*clase.csv, line 2, column timeout: expected float, got 'soon'",
                                 "*clase.csv, line 3: name 'bad name': expected letters, digits*"])


def test_the_summary_has_points_per_step_a_score_per_target_and_the_top_findings(class_dir):
    result = run(class_dir, "--target", "alumno01,alumno02", "-q")
    result.stdout.fnmatch_lines([
        "*= mailconform verdicts =*",
        "target*step*outcome*points*pass*warn*fail*inconclusive*not_applicable*blocked",
        "alumno01*A1.smtp-session*fail*0 / 10*1",
        "alumno01*A1.mx*pass*5 / 5*1",
        "SCORE         alumno01: 5 / 15",
        "alumno02*A1.smtp-session*pass*10 / 10*1",
        "SCORE         alumno02: 15 / 15",
        "FAIL          alumno01 smtp.session.noop: not the right server",
        "              Fix: *",
    ])


def test_the_summary_and_grade_files_follow_lang(class_dir):
    result = run(class_dir, "--target", "alumno01", "--lang", "es", "--grade-csv", "notas.csv")
    result.stdout.fnmatch_lines(["*= veredictos de mailconform =*", "servidor*paso*resultado*puntos*",
                                 "NOTA          alumno01: 5 / 15",
                                 "              Solución: *"])
    header, row = csv.reader((class_dir.path / "notas.csv").open(encoding="utf-8-sig"))
    assert header == ["servidor", "A1.smtp-session", "A1.mx", "total", "máximo", "avisos"]


def test_a_progress_line_as_each_target_is_done(class_dir):
    result = run(class_dir, "--target", "clase", "-q")
    result.stdout.fnmatch_lines(["[[]1/3 targets] alumno01: 5 / 15 — 0 running, 2 left",
                                 "[[]2/3 targets] alumno02: 15 / 15 — 0 running, 1 left",
                                 "[[]3/3 targets] alumno03: 5 / 15 — 0 running, 0 left"])


def test_a_progress_line_under_xdist_too(class_dir):
    result = run(class_dir, "--target", "clase", "-n", "2", subprocess=True)
    result.stdout.fnmatch_lines(["[[]3/3 targets] *"])


def test_one_target_has_no_progress_line(class_dir):
    assert "targets]" not in run(class_dir, "--target", "alumno01").stdout.str()


def test_shards_split_the_class_and_an_empty_shard_is_no_error(class_dir):
    result = run(class_dir, "--target", "clase", "--shard", "2/2", "--results-json", "r.json")
    assert targets_run(class_dir.path / "r.json") == {"alumno02"}
    result.stdout.fnmatch_lines(["  shard 2/2: 1 of 3 targets"])
    result = run(class_dir, "--target", "alumno01", "--shard", "2/2", "--grade-json", "g.json")
    assert result.ret == pytest.ExitCode.OK
    assert json.loads((class_dir.path / "g.json").read_text())["targets"] == {}


def test_a_bad_shard_is_a_usage_error(class_dir):
    result = run(class_dir, "--target", "clase", "--shard", "3/2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--shard 3/2: expected K/N with 1 <= K <= N, e.g. --shard 2/4"])


def merge(*args, cwd):
    return subprocess.run([sys.executable, "-m", "mailconform", "merge", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def test_shards_merged_equal_one_run(class_dir):
    run(class_dir, "--target", "everyone", "--grade-json", "whole.json", "--grade-csv", "whole.csv")
    for k in (1, 2, 3):
        run(class_dir, "--target", "everyone", "--shard", f"{k}/3", "--grade-json", f"shard{k}.json")
    done = merge("shard1.json", "shard2.json", "shard3.json", "--grade-json", "merged.json", "--grade-csv",
                 "merged.csv", cwd=class_dir.path)
    assert done.returncode == 0, done.stderr
    assert "SCORE         alumno02: 15 / 15" in done.stdout
    whole, merged = (json.loads((class_dir.path / f"{name}.json").read_text()) for name in ("whole", "merged"))
    assert merged["targets"] == whole["targets"] and list(merged["targets"]) == list(whole["targets"])
    assert (class_dir.path / "merged.csv").read_bytes() == (class_dir.path / "whole.csv").read_bytes()


def test_merging_a_shard_twice_is_refused(class_dir):
    run(class_dir, "--target", "clase", "--shard", "1/2", "--grade-json", "one.json")
    done = merge("one.json", "one.json", "missing.json", cwd=class_dir.path)
    assert done.returncode == 2
    assert "one.json: given twice" in done.stderr and "missing.json: cannot be read as JSON" in done.stderr


def test_merging_files_that_are_no_grade_files_names_each_with_what_is_wrong(class_dir):
    run(class_dir, "--target", "clase", "--shard", "1/2", "--grade-json", "one.json")
    whole = (class_dir.path / "one.json").read_text()
    for name, text in (("list.json", "[]"), ("number.json", "3"), ("string.json", '"x"'),
                       ("run.json", '{"run": [], "targets": {}}'), ("cut.json", whole[:len(whole) // 2])):
        (class_dir.path / name).write_text(text)
    done = merge("one.json", "list.json", "number.json", "string.json", "run.json", "cut.json", cwd=class_dir.path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.splitlines()[1:] == [
        "  - list.json: not a grade file written by --grade-json (expected an object at the top level, got an array)",
        "  - number.json: not a grade file written by --grade-json (expected an object at the top level, got a number)",
        "  - string.json: not a grade file written by --grade-json (expected an object at the top level, got a string)",
        "  - run.json: not a grade file written by --grade-json (run: expected an object, got an array)",
        "  - cut.json: cannot be read as JSON (" + done.stderr.split("cut.json: cannot be read as JSON (")[1].rstrip()]


@pytest.mark.parametrize("raised, error", [
    (OSError(5, "Input/output error"), "cannot be read (Input/output error)"),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "cannot be read: not UTF-8 (UnicodeDecodeError)"),
    (RecursionError(), "cannot be read: nested too deeply"),
    (TypeError("unhashable type: 'list'"), "cannot be loaded: TypeError in test_class_runs.py, line *"),
])
def test_an_error_loading_the_targets_that_no_check_foresaw_is_a_usage_error(class_dir, monkeypatch, raised, error):
    def parse_badly(*args):
        raise raised
    monkeypatch.setattr("mailconform.targets.parse_targets_file", parse_badly)
    result = run(class_dir, "--target", "clase")
    assert result.ret == pytest.ExitCode.USAGE_ERROR and "INTERNALERROR" not in result.stderr.str()
    result.stderr.fnmatch_lines(["ERROR: *targets.toml: 1 problem(s):", f"  - {error}"])


def test_an_error_outside_the_targets_file_is_still_a_usage_error(class_dir, monkeypatch):
    def resolve_badly(*args):
        raise RuntimeError("Symlink loop from '/tmp/ca.pem'")
    monkeypatch.setattr("mailconform.plugin.resolve_targets", resolve_badly)
    result = run(class_dir, "--target", "lab")
    assert result.ret == pytest.ExitCode.USAGE_ERROR and "INTERNALERROR" not in result.stderr.str()
    result.stderr.fnmatch_lines(["ERROR: *targets.toml: cannot be loaded: RuntimeError in test_class_runs.py, line *"])


def test_a_ca_file_name_too_long_for_the_system_is_a_usage_error(class_dir):
    (class_dir.path / "targets.toml").write_text(ROSTER_TARGETS.replace(
        "[templates.alumno]", f'[targets.lab.tls]\nca_file = "{"a" * 5_000}.pem"\n\n[templates.alumno]'))
    result = run(class_dir, "--target", "lab")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["  - targets.lab.tls.ca_file: *aaaa.pem cannot be read (File name too long)"])


def test_a_password_written_as_password_env_is_shown_nowhere(class_dir):
    (class_dir.path / "targets.toml").write_text(ROSTER_TARGETS.replace(
        'password = "s3cr3t-pw"', 'password_env = "Tr0ub4dor&3"'))
    result = run(class_dir, "--target", "lab")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["  - targets.lab.account.password_env: password_env must name an environment "
                                 "variable, not hold the password (value hidden; it looks like a password was *"])
    assert "Tr0ub4dor" not in result.stdout.str() + result.stderr.str()
