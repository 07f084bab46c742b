"""``mailconform``: what is done outside a pytest run.

``mailconform merge grades-1.json grades-2.json … --grade-json class.json --grade-csv class.csv``
combines the grade files of a class run in shards (``pytest --shard K/N``) into one, as one run
would have written it.  Exit status: 0, 6 when some target could not be judged (as the runs
themselves), 2 when the files cannot be merged (each file that is no grade file is named, with what
is wrong in it) or the merged ones cannot be written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mailconform import messages, report
from mailconform.grading import EXIT_NOT_JUDGED, MergeError, grade_file_problem, merge_documents, write_csv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mailconform", description="mailconform's tools beside pytest")
    commands = parser.add_subparsers(dest="command", required=True)
    merge = commands.add_parser("merge", help="merge the grade files of a sharded class run into one",
                                description="Merge the --grade-json files of a run split with --shard K/N.")
    merge.add_argument("files", nargs="+", type=Path, metavar="GRADES.json", help="the shards' --grade-json files")
    merge.add_argument("--grade-json", type=Path, metavar="PATH", help="write the merged grade JSON here")
    merge.add_argument("--grade-csv", type=Path, metavar="PATH", help="write the merged gradebook CSV here")
    merge.add_argument("--lang", choices=sorted(messages.LANGUAGES),
                       help="language of the CSV header and the table (default: the shards')")
    arguments = parser.parse_args(argv)
    return _merge(arguments)


def _merge(arguments: argparse.Namespace) -> int:
    documents, problems = {}, []
    for path in arguments.files:
        if str(path) in documents:
            problems.append(f"{path}: given twice")
            continue
        try:
            documents[str(path)] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # ValueError: not UTF-8, not JSON, a NUL in the name
            problems.append(f"{path}: cannot be read as JSON ({getattr(exc, 'strerror', None) or exc})")
        except RecursionError:
            problems.append(f"{path}: cannot be read as JSON (nested too deeply)")
        else:
            if problem := grade_file_problem(str(path), documents[str(path)]):
                problems.append(problem)
    try:
        if problems:
            raise MergeError("merge", problems)
        merged = merge_documents(documents)
    except MergeError as error:
        print(f"mailconform {error}", file=sys.stderr)
        return 2
    if arguments.lang:
        merged["run"]["lang"] = arguments.lang
    for path, write in ((arguments.grade_json, _write_json), (arguments.grade_csv, write_csv)):
        if not path:
            continue
        try:
            write(path, merged)
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
            print(f"mailconform merge: {path}: cannot be written ({getattr(exc, 'strerror', None) or exc})",
                  file=sys.stderr)
            return 2
    with messages.speaking(merged["run"]["lang"]):
        for target, grade in merged["targets"].items():
            print(report.score_line(target, grade))
    shards = len(documents)
    print(f"{len(merged['targets'])} target(s) from {shards} file(s)"
          + "".join(f"; {label} {path}" for label, path in (("JSON", arguments.grade_json),
                                                            ("CSV", arguments.grade_csv)) if path))
    return 0 if all(grade.get("judged", True) for grade in merged["targets"].values()) else EXIT_NOT_JUDGED


def _write_json(path: Path, document: dict) -> None:
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
