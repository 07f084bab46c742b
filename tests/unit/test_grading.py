"""Grading arithmetic and every rubric policy: weights, warnings, inconclusive, unreachable, waivers."""

import csv

import pytest

from mailconform.grading import DEFAULT_RUBRIC, RubricError, grade, load_rubric, write_csv


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


def test_the_csv_has_one_row_per_target_and_opens_with_accents_intact(tmp_path):
    rubric = rubric_file(tmp_path)
    grades = grade(rubric, [row("a", "pass", target="alumnoñ"), row("m", "fail", step="A1.mx", target="alumnoñ")])
    path = tmp_path / "grades.csv"
    write_csv(path, rubric, grades)
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # the BOM spreadsheets look for
    rows = list(csv.reader(path.open(encoding="utf-8-sig")))
    assert rows == [["target", "A1.smtp-session", "A1.mx", "total", "max", "flags"],
                    ["alumnoñ", "10.0", "0.0", "10.0", "16.0", ""]]
