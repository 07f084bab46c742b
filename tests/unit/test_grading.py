"""Grading arithmetic and every rubric policy: weights, warnings, inconclusive, unreachable, waivers."""

import copy
import csv
import json
from dataclasses import replace
from types import SimpleNamespace

import pytest

from mailconform import cli, messages
from mailconform.grading import (
    DEFAULT_RUBRIC, EXIT_NOT_JUDGED, MergeError, RubricError, grade, grade_document, load_rubric, merge_documents,
    write_csv,
)
from mailconform.scheduling import Shard


def rubric_file(tmp_path, scoring="", waivers=""):
    path = tmp_path / "rubric.toml"
    path.write_text('[scoring]\nweights = { critical = 4, high = 3, medium = 2, low = 1, info = 0 }\n'
                    f'{scoring}\n[steps]\n"A1.smtp-session" = 10\n"A1.mx" = 6\n{waivers}')
    return load_rubric(path)


def row(check, outcome, severity="high", step="A1.smtp-session", target="t", message="why"):
    return {"target": target, "check": check, "id": check.split("[")[0].split("@")[0], "step": step,
            "outcome": outcome, "severity": severity, "message": message}


def test_the_default_rubric_is_valid_and_grades_every_step():
    rubric = load_rubric(DEFAULT_RUBRIC)
    assert len(rubric.steps) == 15 and rubric.inconclusive == "review"


def test_a_steps_score_is_its_points_times_the_weight_earned(tmp_path):
    rubric = rubric_file(tmp_path, "warn = 0.5")
    grades = grade(rubric, [row("a", "pass"), row("b", "fail", "low"), row("c", "warn", "medium"),
                            row("d", "not_applicable"), row("m", "pass", step="A1.mx")])
    step = grades["t"]["steps"]["A1.smtp-session"]
    assert (step["outcome"], step["max"]) == ("fail", 10)
    assert step["score"] == round(10 * (3 + 0 + 2 * 0.5) / (3 + 1 + 2), 2)  # d is left out
    assert (grades["t"]["score"], grades["t"]["max"]) == (round(step["score"] + 6, 2), 16)


@pytest.mark.parametrize("policy, score, maximum, flagged", [
    ("zero", 5.0, 10, False), ("exclude", 10.0, 10, False), ("review", 10.0, 10, True)])
def test_inconclusive_policies(tmp_path, policy, score, maximum, flagged):
    rubric = rubric_file(tmp_path, f'inconclusive = "{policy}"')
    grades = grade(rubric, [row("a", "pass"), row("b", "inconclusive")])
    step = grades["t"]["steps"]["A1.smtp-session"]
    assert (step["score"], step["max"]) == (score, maximum)
    assert bool(grades["t"]["flags"]) == flagged


@pytest.mark.parametrize("policy, maximum", [("zero", 10), ("review", 0)])
def test_an_unreachable_target_scores_nothing_and_is_flagged(tmp_path, policy, maximum):
    rubric = rubric_file(tmp_path, f'unreachable = "{policy}"\ninconclusive = "exclude"')
    grades = grade(rubric, [row("a", "inconclusive"), row("b", "blocked")])
    assert (grades["t"]["score"], grades["t"]["max"]) == (0, maximum)
    assert "nothing could be decided: unreachable?" in grades["t"]["flags"]


def test_a_waived_check_counts_as_passed_and_says_why(tmp_path):
    rubric = rubric_file(tmp_path, waivers='[waivers.t]\n"a" = "the proxy eats it"\n')
    grades = grade(rubric, [row("a", "fail"), row("b", "pass"), row("a", "fail", target="u")])
    check = grades["t"]["steps"]["A1.smtp-session"]["checks"][0]
    assert (check["outcome"], check["waived"], check["message"]) == ("pass", True, "waived: the proxy eats it")
    assert grades["t"]["steps"]["A1.smtp-session"]["score"] == 10
    assert grades["u"]["steps"]["A1.smtp-session"]["score"] == 0  # the waiver is for target t only


def test_a_step_the_target_does_not_offer_is_left_out(tmp_path):
    grades = grade(rubric_file(tmp_path), [row("a", "not_applicable"), row("m", "pass", step="A1.mx")])
    assert (grades["t"]["score"], grades["t"]["max"]) == (6, 6)


def test_a_rubric_of_steps_alone_takes_the_default_weights(tmp_path):
    path = tmp_path / "steps.toml"
    path.write_text('[steps]\n"A1.mx" = 2\n')
    rubric = load_rubric(path)
    assert rubric.weights["critical"] == 4 and rubric.inconclusive == "review" and rubric.steps == {"A1.mx": 2}


def test_every_rubric_problem_is_reported_at_once_with_its_path(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('colour = 1\n[scoring]\nweights = { high = -1 }\nwarn = 2\ninconclusive = "maybe"\n'
                    '[steps]\n"A9.nowhere" = 3\n"A1.mx" = "x"\n[waivers.t]\n"a" = ""\n')
    with pytest.raises(RubricError) as caught:
        load_rubric(path)
    assert [e.split(":")[0] for e in caught.value.errors] == [
        "colour", "scoring.weights.high", "scoring.weights", "scoring.warn", "scoring.inconclusive",
        "steps.A9.nowhere", "steps.A1.mx", "waivers.t.a"]


def _document(rubric, grades, lang="en", shard=None, positions=None):
    targets = [SimpleNamespace(name=name, source=None, services={}) for name in grades]
    return grade_document(rubric, grades, targets, lang, shard, positions)


def test_the_csv_has_one_row_per_target_and_opens_with_accents_intact(tmp_path):
    rubric = rubric_file(tmp_path)
    grades = grade(rubric, [row("a", "pass", target="alumnoñ"), row("m", "fail", step="A1.mx", target="alumnoñ")])
    path = tmp_path / "grades.csv"
    write_csv(path, _document(rubric, grades))
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # the BOM spreadsheets look for
    rows = list(csv.reader(path.open(encoding="utf-8-sig")))
    assert rows == [["target", "A1.smtp-session", "A1.mx", "total", "max", "flags"],
                    ["alumnoñ", "10.0", "0.0", "10.0", "16.0", ""]]


def test_grade_files_speak_the_runs_language(tmp_path):
    rubric = rubric_file(tmp_path)
    with messages.speaking("es"):
        grades = grade(rubric, [row("a", "inconclusive"), row("b", "blocked")])
    path = tmp_path / "notas.csv"
    write_csv(path, _document(rubric, grades, lang="es"))
    header, first = csv.reader(path.open(encoding="utf-8-sig"))
    assert header == ["servidor", "A1.smtp-session", "total", "máximo", "avisos"]
    assert first[-1] == "no se pudo decidir nada: ¿inalcanzable?; A1.smtp-session: comprobaciones no concluyentes, revisar a mano"


CLASS = [row("a", "pass", target=t) for t in ("s1", "s2", "s3")] + [row("b", "fail", target="s2"),
                                                                   row("m", "warn", step="A1.mx", target="s3")]


def test_merged_shards_equal_the_whole_run(tmp_path):
    rubric = rubric_file(tmp_path)
    names = ["s1", "s2", "s3"]
    positions = {name: place for place, name in enumerate(names)}
    whole = _document(rubric, grade(rubric, CLASS))
    shards = {}
    for index in (1, 2):
        mine = Shard(index, 2).of(names)
        shards[f"shard{index}.json"] = _document(rubric, grade(rubric, [r for r in CLASS if r["target"] in mine]),
                                                 shard=f"{index}/2", positions=positions)
    merged = merge_documents(shards)
    assert merged["targets"] == whole["targets"] and list(merged["targets"]) == names
    assert [m["shard"] for m in merged["run"]["merged_from"]] == ["1/2", "2/2"]
    write_csv(tmp_path / "whole.csv", whole)
    write_csv(tmp_path / "merged.csv", merged)
    assert (tmp_path / "whole.csv").read_bytes() == (tmp_path / "merged.csv").read_bytes()


def test_shards_that_cannot_be_merged_say_why(tmp_path):
    rubric = rubric_file(tmp_path)
    one = _document(rubric, grade(rubric, CLASS))
    two = _document(replace(rubric, steps={"A1.mx": 1}), grade(rubric, CLASS[:1]))
    with pytest.raises(MergeError) as caught:
        merge_documents({"a.json": one, "b.json": two, "c.json": {"results": []}})
    assert caught.value.errors == ["c.json: not a grade file written by --grade-json (run: missing)"]
    with pytest.raises(MergeError) as caught:
        merge_documents({"a.json": one, "b.json": two})
    assert caught.value.errors == ["b.json: graded with another rubric than a.json (points per step differ)",
                                   "b.json: target s1 is graded in a.json too"]


def _valid_grade_file(tmp_path):
    rubric = rubric_file(tmp_path)
    return json.loads(json.dumps(_document(rubric, grade(rubric, CLASS), shard="1/1")))


def _with(document, path, value):
    """``document`` with the value at ``path`` (a tuple of keys) replaced, or deleted when ``value`` is DELETE."""
    document = copy.deepcopy(document)
    *parents, last = path
    table = document
    for key in parents:
        table = table[key]
    if value is DELETE:
        del table[last]
    else:
        table[last] = value
    return document


DELETE = object()


@pytest.mark.parametrize("path, value, why", [
    ((), [], "expected an object at the top level, got an array"),
    ((), 3, "expected an object at the top level, got a number"),
    ((), "x", "expected an object at the top level, got a string"),
    ((), None, "expected an object at the top level, got null"),
    (("run",), [], "run: expected an object, got an array"),
    (("run", "steps"), DELETE, "run.steps: missing"),
    (("run", "steps", "A1.mx"), "6", 'run.steps."A1.mx": expected a number, got a string'),
    (("run", "lang"), ["en"], "run.lang: expected a string, got an array"),
    (("run", "targets"), [], "run.targets: expected an object, got an array"),
    (("run", "targets", "s2"), 1, "run.targets.s2: expected an object, got a number"),
    (("run", "targets", "s2", "position"), "1", "run.targets.s2.position: expected a number, got a string"),
    (("targets",), [], "targets: expected an object, got an array"),
    (("targets", "s2"), 3, "targets.s2: expected an object, got a number"),
    (("targets", "s2", "score"), True, "targets.s2.score: expected a number, got true"),
    (("targets", "s2", "flags"), [1], "targets.s2.flags: expected a list of strings, got an array"),
    (("targets", "s2", "judged"), "yes", "targets.s2.judged: expected true or false, got a string"),
    (("targets", "s2", "steps", "A1.smtp-session"), [],
     'targets.s2.steps."A1.smtp-session": expected an object, got an array'),
    (("targets", "s2", "steps", "A1.smtp-session", "max"), DELETE, 'targets.s2.steps."A1.smtp-session".max: missing'),
])
def test_a_file_that_is_no_grade_file_says_what_is_wrong_in_it(tmp_path, path, value, why):
    document = _with(_valid_grade_file(tmp_path), path, value) if path else value
    with pytest.raises(MergeError) as caught:
        merge_documents({"ok.json": _valid_grade_file(tmp_path), "bad.json": document})
    assert caught.value.errors == [f"bad.json: not a grade file written by --grade-json ({why})"]


def _values(value, path=()):
    """The path of every value in a JSON document, the document's own first."""
    yield path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield from _values(item, (*path, key))


def test_merge_never_crashes_on_a_damaged_grade_file(tmp_path, capsys):
    """Every value of a grade file of the wrong kind or missing, and the file cut short anywhere:
    the command merges it (exit 0 or 6) or says what is wrong (exit 2), never a traceback."""
    valid = _valid_grade_file(tmp_path)
    damaged = [json.dumps(_with(valid, path, value) if path else value) for path in _values(valid)
               for value in (None, [], {}, "x", 3, DELETE) if path or value is not DELETE]
    whole = json.dumps(valid)
    damaged += [whole[:cut] for cut in range(0, len(whole), 7)] + ["[" * 100_000, "1" * 5_000, "NaN"]
    given = tmp_path / "grades.json"
    for text in damaged:
        given.write_text(text, encoding="utf-8")
        status = cli.main(["merge", str(given), "--grade-json", str(tmp_path / "m.json"),
                           "--grade-csv", str(tmp_path / "m.csv")])
        err = capsys.readouterr().err
        assert status in (0, 2, EXIT_NOT_JUDGED), text
        assert status != 2 or f"{given}: " in err and "Traceback" not in err, (text, err)


def test_merged_files_that_cannot_be_written_are_a_usage_error(tmp_path, capsys):
    given = tmp_path / "grades.json"
    given.write_text(json.dumps(_valid_grade_file(tmp_path)), encoding="utf-8")
    assert cli.main(["merge", str(given), "--grade-csv", str(tmp_path / "missing" / "m.csv")]) == 2
    assert capsys.readouterr().err == (f"mailconform merge: {tmp_path / 'missing' / 'm.csv'}: cannot be written "
                                       f"(No such file or directory)\n")


@pytest.mark.parametrize("text, error", [("0/3", True), ("4/3", True), ("2", True), ("a/b", True), ("2/3", False)])
def test_shard_syntax(text, error):
    if error:
        with pytest.raises(ValueError, match="expected K/N with 1 <= K <= N"):
            Shard.parse(text)
    else:
        assert str(Shard.parse(text)) == "2/3"


def test_shards_split_the_targets_round_robin_and_together_cover_them_once():
    names = [f"alumno{n:02}" for n in range(1, 8)]
    shares = [Shard(k, 3).of(names) for k in (1, 2, 3)]
    assert shares[0] == ["alumno01", "alumno04", "alumno07"]
    assert sorted(sum(shares, [])) == names and {len(s) for s in shares} == {2, 3}
    assert Shard(5, 9).of(names[:3]) == []
