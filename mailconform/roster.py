"""A class as a roster: a CSV file with one row per student, made into targets from a template.

In the targets file::

    [templates.alumno]                      # the keys of a target; {column} is filled in per row
    domain = "{name}.lab.test"
    intrusive = true
    [templates.alumno.services]
    smtp = 25
    pop3 = 110
    [templates.alumno.account]
    user = "alumno"
    password_env = "{name}_PASSWORD"
    address = "alumno@{name}.lab.test"

    [rosters.clase-2026]
    file = "clase-2026.csv"                 # beside the targets file
    template = "alumno"

and ``clase-2026.csv`` (comma, semicolon or tab separated, as a spreadsheet saves it)::

    name,host,account.user
    alumno01,192.168.56.101,
    alumno02,192.168.56.102,ana

Each row is a target named by its ``name`` column.  A column named like a target key (``host``,
``timeout``, ``services.smtp``, ``account.user``, ``tls.server_name``…) sets that key; any column
may also be used as ``{column}`` in the template's strings; an empty cell leaves the template's
value.  Every row has as many cells as the header has columns: a shorter or longer row is an error
naming its line, not read as missing cells (a separator lost in the middle would shift the cells
after it into the wrong columns unnoticed).  ``--target clase-2026`` runs the whole roster,
``--target alumno02`` one row.
"""

from __future__ import annotations

import copy
import csv
import json
import re
from pathlib import Path
from typing import Any, Callable

#: Why a target, group, roster, template or roster row name was refused (see :func:`is_target_name`).
NAME_RULE = "a target name may hold only letters, digits, '.', '_' and '-' (it is what --target selects)"
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.-]+)\}")
_BOOLEANS = {"true": True, "yes": True, "sí": True, "si": True, "1": True,
             "false": False, "no": False, "0": False}


def is_target_name(name: str) -> bool:
    """Can ``--target`` select ``name``?  It splits on commas and reads anything with ``://`` as a URL,
    so a name holds letters and digits (of any script), '.', '_' and '-', and starts with neither '-' nor '.'."""
    return bool(name) and name[0] not in "-." and all(char.isalnum() or char in "._-" for char in name)


def toml_key(key: str) -> str:
    """``key`` as a TOML path writes it: bare when it can be, else quoted, anything unprintable escaped."""
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=not key.isprintable())


def column_kinds(target_keys: set[str], services: set[str], tls_keys: set[str],
                 account_keys: set[str]) -> dict[str, type]:
    """Every column that sets a target key, with the type its text is read as."""
    kinds: dict[str, type] = {key: str for key in target_keys - {"services", "tls", "account"}}
    kinds |= {"intrusive": bool, "allow_cleartext_auth": bool, "max_connections": int, "max_failed_logins": int,
              "timeout": float, "delivery_wait": float, "connections_per_second": float}
    kinds |= {f"services.{service}": int for service in services}
    kinds |= {f"tls.{key}": str for key in tls_keys} | {"tls.verify": bool}
    kinds |= {f"account.{key}": str for key in account_keys}
    return kinds


def expand(roster: str, table: Any, templates: Any, base_dir: Path, kinds: dict[str, type],
           error: Callable[[str, str], None]) -> list[tuple[str, str, dict]]:
    """The roster's rows as (target name, where it came from, target table); each problem goes to
    ``error(path, message)``."""
    path = f"rosters.{toml_key(roster)}"
    if not isinstance(table, dict) or set(table) != {"file", "template"} or not all(
            isinstance(table[key], str) for key in table):
        error(path, 'expected file = "CSV file" and template = "NAME" (a [templates.NAME] table)')
        return []
    template = templates.get(table["template"]) if isinstance(templates, dict) else None
    if not isinstance(template, dict):
        error(f"{path}.template", f"no [templates.{toml_key(table['template'])}] table in the file")
        return []
    rows = _read_rows(base_dir / table["file"], f"{path}.file", error)
    if not rows:
        return []
    header, *body = rows
    source = Path(table["file"]).name
    placeholders = _placeholders(template)
    if "name" not in header:
        error(source, f"no name column (columns: {', '.join(header)})")
        return []
    unknown = [c for c in header if c != "name" and c not in kinds and c not in placeholders]
    for column in unknown:
        error(f"{source}, column {column}", "neither a target key (host, timeout, services.smtp, account.user…) "
                                            "nor a {" + column + "} of the template")
    for missing in sorted(placeholders - set(header) - {"name"}):
        error(f"templates.{toml_key(table['template'])}", f"{{{missing}}} is not a column of {source}")
    if unknown or placeholders - set(header) - {"name"}:
        return []
    expanded = []
    for line, cells in body:
        row = dict(zip(header, cells))
        where = f"{source}, line {line}"
        name = row["name"]
        if not is_target_name(name):
            error(where, f"name {name!r}: expected letters, digits, '.', '_' or '-'")
            continue
        filled = _fill(copy.deepcopy(template), row)
        for column, text in row.items():
            if column in kinds and text:
                value = _typed(text, kinds[column])
                if value is None:
                    error(f"{where}, column {column}", f"expected {kinds[column].__name__}, got {text!r}")
                    continue
                _set(filled, column, value)
        expanded.append((name, f"{where} ({name})", filled))
    return expanded


def _read_rows(path: Path, where: str, error: Callable[[str, str], None]) -> list:
    """The header, then (line number, cells) for every non-blank row."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's "CSV UTF-8" starts with a BOM
    except FileNotFoundError:
        error(where, f"{path} not found")
        return []
    except (OSError, ValueError) as exc:  # ValueError: not UTF-8, or a NUL in the file name
        error(where, f"{path} cannot be read as UTF-8 text ({exc})")
        return []
    lines = text.splitlines()
    if not lines:
        error(where, f"{path} is empty")
        return []
    delimiter = max(",;\t", key=lines[0].count)  # Spanish spreadsheets save with ';'
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        rows = list(reader)
    except csv.Error as exc:  # a cell larger than the csv module's limit (128 KiB)
        error(f"{path.name}, line {reader.line_num}", f"cannot be read as CSV ({exc})")
        return []
    header = [cell.strip() for cell in rows[0]]
    body = [(number, [cell.strip() for cell in cells]) for number, cells in enumerate(rows[1:], start=2)
            if any(cell.strip() for cell in cells)]
    for number, cells in body:
        if len(cells) != len(header):  # a short row too: a lost separator would shift every cell after it
            error(f"{path.name}, line {number}", f"{_counted(len(cells), 'cell')}, but the header has "
                                                 f"{_counted(len(header), 'column')}" + (
                                                     " (to keep the template's value, leave a cell empty but write "
                                                     "its separator)" if len(cells) < len(header) else ""))
    return [header, *[(n, c) for n, c in body if len(c) == len(header)]]


def _counted(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _placeholders(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set().union(*map(_placeholders, value.values())) if value else set()
    if isinstance(value, str):
        return set(_PLACEHOLDER.findall(value))
    return set()


def _fill(value: Any, row: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {key: _fill(item, row) for key, item in value.items()}
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda match: row[match.group(1)], value)
    return value


def _typed(text: str, kind: type) -> Any:
    if kind is bool:
        return _BOOLEANS.get(text.lower())
    try:
        return kind(text)
    except ValueError:
        return None


def _set(table: dict, dotted: str, value: Any) -> None:
    *parents, key = dotted.split(".")
    for parent in parents:
        table = table.setdefault(parent, {})
        if not isinstance(table, dict):
            return  # the template's value is not a table: _parse_target reports it
    table[key] = value
