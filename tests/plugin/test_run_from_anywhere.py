"""Run from anywhere (mailconform/location.py): ``pytest --target=…`` collects the suites with the suite's
own settings, whatever the current directory and however ``--targets-file`` is written, from the
checkout and from an installed package.

Each run is a separate ``python -m pytest`` process with ``--collect-only``: nothing connects anywhere,
and the targets file (in a directory of its own, outside the checkout) names only loopback."""

import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from mailconform import location

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
TARGETS = """
[targets.lab]
host = "127.0.0.1"
[targets.lab.services]
smtp = 1
"""
#: Unrelated plugins of this environment kept out of the inner runs, as in test_plugin.py.
HERMETIC = ("-p", "no:hypothesispytest", "-p", "no:benchmark")
TREE_LINE = re.compile(r"^( *)<(Dir|Package|Module|Class|Function) (.+)>$")


def pytest_run(cwd, *args, pythonpath=None):
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS" and not k.startswith("PYTEST_XDIST")}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    done = subprocess.run([sys.executable, "-m", "pytest", *HERMETIC, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


def collected(output):
    """Node ids rebuilt from a ``--collect-only`` tree (directories/module::function), which, unlike ``-q``,
    leaves the header on."""
    stack, ids = [], []
    for line in output.splitlines():
        if match := TREE_LINE.match(line):
            del stack[len(match[1]) // 2:]
            stack.append((match[2], match[3]))
            if match[2] == "Function":
                path = "/".join(name for kind, name in stack if kind in ("Dir", "Package", "Module"))
                ids.append("::".join([path, *(name for kind, name in stack if kind in ("Class", "Function"))]))
    return ids


def in_suites(ids):
    """The ids from the protocol directory on: the same for the checkout's suites/ and mailconform/suites/."""
    found = [re.search(r"(?:^|/)suites/(.+)$", i) for i in ids]
    assert all(found), f"collected outside the suites: {[i for i, f in zip(ids, found) if not f]}"
    return sorted(f[1] for f in found)


def header(output, name):
    """The value of a ``name: value`` line of the session header."""
    match = re.search(rf"^{name}: (.+)$", output, re.MULTILINE)
    return match[1] if match else None


@pytest.fixture(scope="module")
def targets_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("targets") / "class.toml"
    path.write_text(TARGETS)
    return path


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory):
    """A grading folder: a directory outside the checkout, with nothing in it."""
    return tmp_path_factory.mktemp("grading")


@pytest.fixture(scope="module")
def reference(targets_file):
    """The checks collected by the form that always worked: ``--targets-file=PATH``, from the checkout."""
    code, output = pytest_run(REPO, "--collect-only", "--target=lab", f"--targets-file={targets_file}")
    assert code == pytest.ExitCode.OK, output
    ids = collected(output)
    suite_modules = {f"{p.parent.name}/{p.name}" for p in (REPO / "suites").glob("*/test_*.py")}
    assert {i.split("::")[0] for i in in_suites(ids)} == suite_modules, "not every suite module was collected"
    assert all(re.search(r"\[lab(-[a-z0-9.-]+)?\]$", i) for i in ids)  # a variant or endpoint after the name
    return ids


def assert_the_suites_run_as_in_the_checkout(output, targets_file, expected):
    assert collected(output) == expected
    assert header(output, "rootdir") == str(REPO)
    assert header(output, "configfile") == "pyproject.toml"
    assert header(output, "timeout") == f"{float(PYPROJECT['tool']['pytest']['ini_options']['timeout'])}s"
    assert "tests/" not in output  # the self-tests stay out
    assert not (targets_file.parent / ".pytest_cache").exists()


# --------------------------------------------------------------------------- the checkout

@pytest.mark.parametrize("where", ["checkout", "elsewhere"])
@pytest.mark.parametrize("form", ["space", "equals"])
def test_the_suites_run_with_the_checkouts_settings_from_anywhere(reference, targets_file, elsewhere, where, form):
    cwd = REPO if where == "checkout" else elsewhere
    option = ["--targets-file", str(targets_file)] if form == "space" else [f"--targets-file={targets_file}"]
    code, output = pytest_run(cwd, "--collect-only", "-v", "--target=lab", *option)
    assert code == pytest.ExitCode.OK, output
    assert_the_suites_run_as_in_the_checkout(output, targets_file, reference)
    assert header(output, "cachedir") == ".pytest_cache"  # relative to the rootdir: the checkout's cache
    assert not list(elsewhere.iterdir()), "the run left something in the grading folder"


def test_away_from_the_checkout_the_default_targets_file_is_the_current_directorys(elsewhere):
    code, output = pytest_run(elsewhere, "--collect-only", "--target=lab")
    assert code == pytest.ExitCode.USAGE_ERROR
    assert f"{elsewhere / 'targets.toml'}: 1 problem(s)" in output and "file not found" in output


def test_explicit_paths_keep_their_meaning_and_an_option_value_is_no_path(targets_file):
    code, output = pytest_run(REPO, "suites/smtp", "--collect-only", "-q", "--target=lab",
                              "--targets-file", str(targets_file))
    assert code == pytest.ExitCode.OK, output
    ids = [line for line in output.splitlines() if "::" in line]
    assert ids and all(i.startswith("suites/smtp/") for i in ids), output
    assert not (targets_file.parent / ".pytest_cache").exists()


def test_the_self_tests_still_collect_by_path():
    code, output = pytest_run(REPO, "tests/unit", "--collect-only", "-q")
    assert code == pytest.ExitCode.OK, output
    ids = [line for line in output.splitlines() if "::" in line]
    assert ids and all(i.startswith("tests/unit/") for i in ids), output


def test_without_a_target_pytest_is_left_alone(elsewhere):
    code, output = pytest_run(elsewhere, "--collect-only", "-q")
    assert code == pytest.ExitCode.NO_TESTS_COLLECTED, output


def test_list_checks_lists_the_suites_from_anywhere(elsewhere):
    code, here = pytest_run(REPO, "--list-checks")
    code_elsewhere, there = pytest_run(elsewhere, "--list-checks")
    assert code == code_elsewhere == pytest.ExitCode.OK
    rows = [line for line in here.splitlines() if line.startswith(("smtp.", "pop3.", "dns."))]
    assert rows and rows == [line for line in there.splitlines() if line.startswith(("smtp.", "pop3.", "dns."))]


def test_a_directory_with_tests_of_its_own_is_collected_as_usual(tmp_path, targets_file):
    (tmp_path / "test_own.py").write_text("def test_own():\n    pass\n")
    code, output = pytest_run(tmp_path, "--collect-only", "-q", "--target=lab", "--targets-file", str(targets_file))
    assert code == pytest.ExitCode.OK, output
    assert [line for line in output.splitlines() if "::" in line] == ["test_own.py::test_own"]


def test_xdist_workers_run_the_same_suites(reference, targets_file, elsewhere):
    """Workers parse the original command line again, in the same directory: they must land where the
    controller did (a real run, against the loopback port nobody listens on)."""
    code, output = pytest_run(elsewhere, "-n", "2", "-p", "no:cacheprovider", "--target=lab",
                              "--targets-file", str(targets_file))
    assert code in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), output
    summary = output.strip().splitlines()[-1]
    counts = re.findall(r"(\d+) (passed|failed|skipped|xfailed|xpassed|error)", summary)
    assert sum(int(n) for n, _ in counts) == len(reference), summary
    assert not list(elsewhere.iterdir())


# --------------------------------------------------------------------------- an installed package

@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """mailconform installed (not editable) into a directory of its own, offline: a copy of the sources is
    built, so that pip's in-tree build leaves nothing in the checkout."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source)
    for name in ("mailconform", "suites"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    target = tmp_path_factory.mktemp("site")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "--no-deps", "--no-build-isolation", "--no-index", "--target", str(target), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, ("pip could not build mailconform offline: the environment needs the build "
                                  "backend (pip install -e '.[test]' brings setuptools and wheel)\n"
                                  + done.stdout + done.stderr)
    print(f"pip install --target took {time.monotonic() - started:.1f} s")
    return target


def test_every_package_directory_is_packaged():
    """pyproject.toml lists the packages by hand (suites/ ships renamed as mailconform.suites)."""
    setuptools = PYPROJECT["tool"]["setuptools"]
    renamed = {Path(directory): package for package, directory in setuptools["package-dir"].items()}
    renamed[Path("mailconform")] = "mailconform"
    on_disk = set()
    for top, package in renamed.items():
        for init in (REPO / top).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / top)
            on_disk.add(".".join([package, *relative.parts]))
    assert set(setuptools["packages"]) == on_disk


def test_the_installed_package_carries_the_suites_and_runs_them_from_anywhere(installed, reference, targets_file,
                                                                               elsewhere):
    assert (installed / "mailconform" / "suites" / "__init__.py").is_file()
    assert (installed / "mailconform" / "messages" / "en.toml").is_file()
    code, output = pytest_run(elsewhere, "--collect-only", "-v", "--target=lab", "--targets-file", str(targets_file),
                              pythonpath=installed)
    assert code == pytest.ExitCode.OK, output
    ids = collected(output)
    assert all("mailconform/suites/" in i for i in ids), "collected something else than the installed suites"
    assert in_suites(ids) == in_suites(reference)
    # No ini file: the rootdir is the current directory, the per-check timeout comes from the plugin.
    assert header(output, "rootdir") == str(elsewhere)
    assert header(output, "configfile") is None
    assert header(output, "timeout") == f"{float(location.DEFAULT_TIMEOUT)}s"
    assert not (targets_file.parent / ".pytest_cache").exists()


def test_the_installed_packages_timeout_is_the_checkouts():
    assert location.DEFAULT_TIMEOUT == PYPROJECT["tool"]["pytest"]["ini_options"]["timeout"]


# --------------------------------------------------------------------------- pytest internals

def test_the_pytest_internals_location_relies_on_are_still_there(pytestconfig):
    """location.py changes pytest's rootdir and ini file through private pytest API; if a pytest upgrade
    moved it, the suite falls back to pytest's own choice (and the runs above fail): fix _adopt_setup."""
    problem = location.internals_problem(pytestconfig)
    assert problem is None, f"pytest {pytest.__version__} broke mailconform/location.py: {problem}"
