"""What a person reads, in English and Spanish: one catalogue per language (``en.toml``,
``es.toml`` beside this file), keyed by check ID.

Each check's table holds its ``title``, its ``fix`` (the setting that repairs it), its
``messages`` (failure and warning sentences, ``{name}`` fields filled in at run time) and, for
condition expectations, what was ``expected`` and — where it is a fact, not data — the ``actual``.  The ``core`` table holds the sentences the
session plumbing says on behalf of any check (blocked by…, not applicable because…).

A key missing from the catalogue is shown as written in the code, so a missing translation never
breaks a grading run; the self-tests make sure none is missing for the bundled suites.
"""

from __future__ import annotations

import tomllib
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path

LANGUAGES = {"en": "English", "es": "español"}
DEFAULT_LANGUAGE = "en"
CORE = "core"

#: The language of this run (set once by the plugin from ``--lang``).
language: ContextVar[str] = ContextVar("language", default=DEFAULT_LANGUAGE)


@cache
def catalogue(lang: str) -> dict:
    """The parsed catalogue of ``lang``."""
    return tomllib.loads((Path(__file__).parent / f"{lang}.toml").read_text(encoding="utf-8"))


def _entry(check_id: str, lang: str | None = None) -> dict:
    return catalogue(lang or language.get()).get(check_id, {})


def _fill(template: str, fields: dict) -> str:
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError):
        return template  # a literal sentence that happens to contain braces


def title(check_id: str, fallback: str, lang: str | None = None) -> str:
    return _entry(check_id, lang).get("title") or _entry(check_id, DEFAULT_LANGUAGE).get("title") or fallback


def fix(check_id: str, lang: str | None = None) -> str:
    return _entry(check_id, lang).get("fix") or _entry(check_id, DEFAULT_LANGUAGE).get("fix") or ""


def message(check_id: str, key: str, **fields) -> str:
    """The sentence ``key`` of check ``check_id`` in this run's language, fields filled in."""
    for lang in (language.get(), DEFAULT_LANGUAGE):
        template = _entry(check_id, lang).get("messages", {}).get(key)
        if template is not None:
            return _fill(template, fields)
    return _fill(key, fields)


def expected(check_id: str, key: str, **fields) -> str | None:
    """What a condition expectation ``key`` wanted, in this run's language; None if not given."""
    return _part("expected", check_id, key, fields)


def actual(check_id: str, key: str, **fields) -> str | None:
    """What came instead, for a condition whose actual value is a fact rather than data."""
    return _part("actual", check_id, key, fields)


def _part(table: str, check_id: str, key: str, fields: dict) -> str | None:
    for lang in (language.get(), DEFAULT_LANGUAGE):
        template = _entry(check_id, lang).get(table, {}).get(key)
        if template is not None:
            return _fill(template, fields)
    return None


def core(key: str, **fields) -> str:
    """A sentence the session plumbing says on behalf of any check."""
    return message(CORE, key, **fields)


def advice(from_url: bool, key: str, **fields) -> str:
    """A core sentence that tells the user to set something, naming where they set it: the URL
    (its parameters, ``MAILCONFORM_*`` variables) for a URL target, else the targets file."""
    return core(f"{key}-url" if from_url else key, **fields)


def codes(table: str) -> dict[str, str]:
    """What reply codes mean (``codes.smtp``, ``codes.enhanced``, ``codes.pop3``, ``codes.imap``)."""
    return catalogue(language.get()).get("codes", {}).get(table) or catalogue(DEFAULT_LANGUAGE)["codes"].get(table, {})


@contextmanager
def speaking(lang: str):
    """Within the block, sentences are in ``lang`` (a file written in another run's language)."""
    token = language.set(lang if lang in LANGUAGES else DEFAULT_LANGUAGE)
    try:
        yield
    finally:
        language.reset(token)


def label(key: str) -> str:
    """A word of the reports (``Expected``, ``Fix``…) in this run's language."""
    return core(f"label-{key}")
