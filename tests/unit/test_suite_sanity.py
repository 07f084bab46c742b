"""The suite's own bookkeeping: check ids are unique, documented, and every name a check is
"blocked by" is a real check."""

import ast
import importlib.util
import re
import string
from pathlib import Path

import pytest

from mailconform import messages
from mailconform.checks import check_info

REPO = Path(__file__).resolve().parents[2]
SUITE_FILES = sorted((REPO / "suites").rglob("test_*.py"))


def _checks():
    found = []
    for path in SUITE_FILES:
        spec = importlib.util.spec_from_file_location(f"sanity_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found += [info for info in map(check_info, vars(module).values()) if info is not None]
    return found


CHECKS = _checks()
IDS = [info.id for info in CHECKS]


def test_every_suite_directory_is_a_package():
    """So that two protocols may each have a test_tls.py without an "import file mismatch"."""
    for directory in {path.parent for path in SUITE_FILES}:
        assert (directory / "__init__.py").is_file(), f"{directory} needs an __init__.py"


def test_check_ids_are_unique():
    assert len(IDS) == len(set(IDS)), sorted(i for i in IDS if IDS.count(i) > 1)


@pytest.mark.parametrize("info", CHECKS, ids=IDS)
def test_every_check_quotes_its_rfc(info):
    assert f"RFC {info.rfc_label.split()[1]}" in info.doc, f"{info.id}: the docstring should quote {info.rfc_label}"


def test_every_blocking_reference_names_a_real_check():
    sources = [REPO / "mailconform" / "sessions.py", REPO / "mailconform" / "mailbox.py", *SUITE_FILES]
    pattern = re.compile(r'(?:by=|Blocked\(|_CHECK = )"([a-z0-9]+\.[a-z0-9.-]+)"')
    named = {name for path in sources for name in pattern.findall(path.read_text())}
    assert named, "the pattern found nothing: it is out of date"
    assert named <= set(IDS), f"blocked by checks that do not exist: {sorted(named - set(IDS))}"


# --------------------------------------------------------------------------- the message catalogues

def _keys(table: dict, prefix: tuple = ()) -> set[tuple]:
    """Every leaf's path of keys (a tuple: keys such as codes.pop3."SYS/TEMP" hold slashes)."""
    out = set()
    for key, value in table.items():
        out |= _keys(value, (*prefix, key)) if isinstance(value, dict) else {(*prefix, key)}
    return out


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_the_catalogues_have_the_same_keys_and_fields_in_every_language():
    english = messages.catalogue("en")
    for lang in messages.LANGUAGES:
        other = messages.catalogue(lang)
        assert _keys(other) == _keys(english), f"{lang}: {sorted(_keys(other) ^ _keys(english))}"
        for key in _keys(english):
            here, there = english, other
            for part in key:
                here, there = here[part], there[part]
            assert _fields(there) == _fields(here), f"{lang} {key}: fields {_fields(there)} != {_fields(here)}"


@pytest.mark.parametrize("info", CHECKS, ids=IDS)
def test_every_check_has_a_title_and_a_fix_in_every_language(info):
    for lang in messages.LANGUAGES:
        entry = messages.catalogue(lang).get(info.id, {})
        assert entry.get("title") and entry.get("fix"), f"{lang}: {info.id} needs a title and a fix"


def _message_keys_used(path: Path) -> list[tuple[str, str, str]]:
    """(check id, key, kind) for every catalogue key a suite file uses: expect(x, "key"), a
    tolerated={code: "key"}; kind is "condition" for a failing expect(condition, key), which also
    needs what was expected, else "message"."""
    tree = ast.parse(path.read_text())
    used = []
    for function in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
        decorator = next((d for d in function.decorator_list if isinstance(d, ast.Call)
                          and getattr(d.func, "id", "") == "check"), None)
        if decorator is None:
            continue
        check_id = decorator.args[0].value
        replies = {id(n.value) for n in ast.walk(function) if isinstance(n, ast.Attribute)
                   and n.attr in ("code", "ok", "err")}
        for call in (n for n in ast.walk(function) if isinstance(n, ast.Call)):
            if getattr(call.func, "id", "") == "expect" and len(call.args) > 1:
                warning = any(k.arg == "tolerated" and getattr(k.value, "value", False) is True for k in call.keywords)
                condition = id(call) not in replies and not warning
                used.append((check_id, call.args[1].value, "condition" if condition else "message"))
            for keyword in call.keywords:
                if keyword.arg == "tolerated" and isinstance(keyword.value, ast.Dict):
                    used += [(check_id, v.value, "message") for v in keyword.value.values]
    return used


USED = [used for path in SUITE_FILES for used in _message_keys_used(path)]


def test_the_key_scan_finds_the_suites_messages():
    assert ("smtp.session.unknown-command", "answered-502", "message") in USED  # the scan is up to date


@pytest.mark.parametrize("check_id, key, kind", USED, ids=[f"{c}:{k}" for c, k, _ in USED])
def test_every_message_a_check_uses_is_in_every_catalogue(check_id, key, kind):
    for lang in messages.LANGUAGES:
        entry = messages.catalogue(lang).get(check_id, {})
        assert key in entry.get("messages", {}), f"{lang}: {check_id} messages.{key} is missing"
        if kind == "condition":
            assert key in entry.get("expected", {}), f"{lang}: {check_id} expected.{key} is missing"


def test_every_core_message_the_code_uses_is_in_the_catalogue():
    sources = [*(REPO / "mailconform").rglob("*.py"), *SUITE_FILES]
    used = {key for path in sources for key in re.findall(r'messages\.core\("([a-z0-9-]+)"', path.read_text())}
    advice = {key for path in sources for key in re.findall(r'messages\.advice\([^,]+, "([a-z0-9-]+)"', path.read_text())}
    assert advice, "the advice pattern found nothing: it is out of date"
    used |= advice | {f"{key}-url" for key in advice}  # the file target's words and the URL target's
    used |= {f"label-{key}" for path in sources for key in re.findall(r'messages\.label\("([a-z0-9-]+)"', path.read_text())}
    assert used, "the pattern found nothing: it is out of date"
    assert used <= set(messages.catalogue("en")["core"]["messages"]), sorted(used - set(messages.catalogue("en")["core"]["messages"]))
