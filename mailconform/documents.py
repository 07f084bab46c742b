"""The documents ``--report-dir`` writes per target, each in every language: the IMAP security
report and the TLS report.  Each module gives ``should_write(run)``, ``render(run, lang)``, its
``FILE_NAME``, and the lab ``STEP`` and row (``ATTACHED_TO``) whose allure result carries it."""

from __future__ import annotations

from pathlib import Path

from mailconform import imap_report, messages, tls_report
from mailconform.targetrun import TargetRun

DOCUMENTS = (imap_report, tls_report)


def write(run: TargetRun, directory: Path, stem: str) -> list[tuple[object, list[Path]]]:
    """Write every document that applies to ``run``'s target into ``directory/stem/``; returns each
    document module with the files written for it."""
    written = []
    for document in DOCUMENTS:
        if not document.should_write(run):
            continue
        folder = directory / stem
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for lang in messages.LANGUAGES:
            path = folder / document.FILE_NAME.format(lang=lang)
            path.write_text(document.render(run, lang), encoding="utf-8")
            paths.append(path)
        written.append((document, paths))
    return written
