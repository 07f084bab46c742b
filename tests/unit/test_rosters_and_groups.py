"""Groups and rosters in the targets file: what they expand to, and every mistake reported at once
with where it is (the TOML path, or the CSV file, line and column)."""

import tomllib

import pytest

from mailconform.targets import TargetsError, parse_targets_file, resolve_targets

BASE = """
[targets.solo]
host = "127.0.0.1"
[targets.solo.services]
smtp = 25

[templates.alumno]
domain = "{name}.lab.test"
intrusive = true
[templates.alumno.services]
smtp = 25
[templates.alumno.account]
user = "alumno"
password_env = "PW_{name}"
address = "alumno@{name}.lab.test"

[rosters.clase]
file = "clase.csv"
template = "alumno"
"""


def parse(tmp_path, roster, extra="", env=None):
    (tmp_path / "clase.csv").write_bytes(roster.encode("utf-8"))
    return parse_targets_file(tomllib.loads(BASE + extra), tmp_path, "t.toml", env or {})


def errors(tmp_path, roster, extra=""):
    with pytest.raises(TargetsError) as caught:
        parse(tmp_path, roster, extra)
    return caught.value.errors


@pytest.mark.parametrize("roster", [
    "name,host\nalumno01,192.0.2.1\nalumno02,192.0.2.2\n",
    "\ufeffname;host\r\nalumno01;192.0.2.1\r\n\r\nalumno02;192.0.2.2\r\n",   # a Spanish spreadsheet's CSV UTF-8
    "name\thost\nalumno01\t192.0.2.1\nalumno02\t192.0.2.2\n",
])
def test_a_roster_row_is_its_template_filled_in(tmp_path, roster):
    parsed = parse(tmp_path, roster)
    assert parsed.groups == {"clase": ("alumno01", "alumno02")}
    second = parsed.targets["alumno02"]
    assert (second.host, second.domain, second.intrusive) == ("192.0.2.2", "alumno02.lab.test", True)
    assert (second.account.address, second.account.password_env) == ("alumno@alumno02.lab.test", "PW_alumno02")
    assert second.origin == "clase.csv, line 3 (alumno02)" or second.origin == "clase.csv, line 4 (alumno02)"


def test_columns_set_target_keys_with_their_types(tmp_path):
    roster = ("name,host,timeout,intrusive,services.pop3,account.user,tls.server_name\n"
              "a1,192.0.2.1,2.5,no,1100,ana,mail.a1.test\na2,192.0.2.2,,,,,\n")
    parsed = parse(tmp_path, roster)
    first, second = parsed.targets["a1"], parsed.targets["a2"]
    assert (first.timeout, first.intrusive, first.services["pop3"].port) == (2.5, False, 1100)
    assert (first.account.user, first.tls.server_name) == ("ana", "mail.a1.test")
    assert (second.timeout, second.intrusive, "pop3" in second.services) == (10.0, True, False)


def test_every_roster_mistake_at_once_with_file_line_and_column(tmp_path):
    roster = "name,host,timeout,intrusive\nalumno01,192.0.2.1,soon,maybe\nbad name,192.0.2.2,,\nalumno01,x,,\n"
    assert errors(tmp_path, roster) == [
        "clase.csv, line 2, column timeout: expected float, got 'soon'",
        "clase.csv, line 2, column intrusive: expected bool, got 'maybe'",
        "clase.csv, line 3: name 'bad name': expected letters, digits, '.', '_' or '-'",
        "clase.csv, line 4 (alumno01): the target alumno01 is defined twice",
    ]


@pytest.mark.parametrize("roster, extra, expected", [
    ("host\n192.0.2.1\n", "", "clase.csv: no name column (columns: host)"),
    ("name,colour\na1,red\n", "", "clase.csv, column colour: neither a target key"),
    ("name\na1\n", '[templates.other]\ndomain = "{room}.test"\n[rosters.b]\nfile = "clase.csv"\ntemplate = "other"\n',
     "templates.other: {room} is not a column of clase.csv"),
    ("name\nsolo\n", "", "clase.csv, line 2 (solo): the target solo is defined twice"),
    ("name\na1\n", '[rosters.c]\nfile = "nowhere.csv"\ntemplate = "alumno"\n', "rosters.c.file: "),
    ("name\na1\n", '[rosters.d]\nfile = "clase.csv"\ntemplate = "nobody"\n', "rosters.d.template: no [templates.nobody]"),
    ("name\na1\n", '[rosters.e]\nfile = "clase.csv"\n', "rosters.e: expected file = "),
    ("name,timeout\na1,0\n", "", "clase.csv, line 2 (a1).timeout: expected a positive number"),
    ("name,host\na1,192.0.2.1,extra\n", "", "clase.csv, line 2: 3 cells, but the header has 2 columns"),
])
def test_a_roster_mistake_says_where(tmp_path, roster, extra, expected):
    assert any(error.startswith(expected) for error in errors(tmp_path, roster, extra)), errors(tmp_path, roster, extra)


ROOMS = """
[templates.room]
host = "127.0.0.1"
domain = "{room}.lab.test"
[rosters.clase]
file = "clase.csv"
template = "room"
"""


@pytest.mark.parametrize("roster, expected", [
    ("name,room\na1\n", ["clase.csv, line 2: 1 cell, but the header has 2 columns (to keep the template's value, "
                          "leave a cell empty but write its separator)"]),  # {room} has no cell to fill it
    ("name,room,timeout\na1,r1\na2,r2,\na3\n", [
        "clase.csv, line 2: 2 cells, but the header has 3 columns (to keep the template's value, leave a cell "
        "empty but write its separator)",
        "clase.csv, line 4: 1 cell, but the header has 3 columns (to keep the template's value, leave a cell "
        "empty but write its separator)"]),
    ("name;room\na1;r1;extra\n", ["clase.csv, line 2: 3 cells, but the header has 2 columns"]),
])
def test_a_row_shorter_or_longer_than_the_header_is_refused_with_its_line(tmp_path, roster, expected):
    (tmp_path / "clase.csv").write_text(roster, encoding="utf-8")
    with pytest.raises(TargetsError) as caught:
        parse_targets_file(tomllib.loads(ROOMS), tmp_path, "t.toml", {})
    assert caught.value.errors == expected


def test_a_row_with_every_separator_keeps_the_templates_values_in_its_empty_cells(tmp_path):
    (tmp_path / "clase.csv").write_text("name,room,timeout\na1,r1,\n", encoding="utf-8")
    target = parse_targets_file(tomllib.loads(ROOMS), tmp_path, "t.toml", {}).targets["a1"]
    assert (target.domain, target.timeout) == ("r1.lab.test", 10.0)


def test_a_cell_too_large_for_csv_is_an_error_not_a_crash(tmp_path):
    assert errors(tmp_path, "name,host\na1," + "x" * 200_000 + "\n") == [
        "clase.csv, line 2: cannot be read as CSV (field larger than field limit (131072))"]


def test_groups_hold_targets_rosters_and_groups_in_order(tmp_path):
    parsed = parse(tmp_path, "name,host\na1,192.0.2.1\na2,192.0.2.2\n",
                   '[groups]\nall = ["morning", "solo"]\nmorning = ["clase", "a1"]\n')
    assert parsed.groups["all"] == ("a1", "a2", "solo")
    assert parsed.names() == "solo, a1, a2, clase, morning, all"


@pytest.mark.parametrize("groups, expected", [
    ('x = ["solo", "ghost"]', "groups.x: unknown target(s) ghost"),
    ('x = ["y"]\ny = ["x"]', "groups.x: the groups name each other in a circle"),
    ('solo = ["a1"]', "groups.solo: a target or roster already has this name"),
    ('x = []', "groups.x: expected a list of target names, got []"),
])
def test_a_group_mistake_says_which(tmp_path, groups, expected):
    assert expected in errors(tmp_path, "name,host\na1,192.0.2.1\n", f"[groups]\n{groups}\n")


def test_a_group_on_the_command_line_and_a_missing_password_of_a_row(tmp_path):
    (tmp_path / "clase.csv").write_text("name,host\na1,192.0.2.1\na2,192.0.2.2\n")
    (tmp_path / "targets.toml").write_text(BASE + '[groups]\nall = ["clase", "solo"]\n')
    resolved = resolve_targets(["all", "a1"], tmp_path / "targets.toml", {"PW_a1": "x", "PW_a2": "y"})
    assert [t.name for t in resolved] == ["a1", "a2", "solo"]
    with pytest.raises(TargetsError) as caught:
        resolve_targets(["clase"], tmp_path / "targets.toml", {"PW_a1": "x"})
    assert caught.value.errors == [
        "clase.csv, line 3 (a2).account.password_env: the environment variable PW_a2 is not set (export it before running)"]
