"""Run the suite from anywhere: the second ``pytest11`` plugin of mailconform.

``pytest --target=NAME`` should run the suite's checks wherever it is typed: in the checkout, in a
grading folder elsewhere, or with mailconform installed from a wheel.  Plain pytest cannot, for two
reasons:

* pytest chooses its rootdir and ini file in ``Config.parse`` from the paths on the command line
  *before* it loads plugins, so it cannot know that in ``--targets-file /dir/targets.toml`` the path
  is an option's value: it takes it for a test path, and the rootdir, the ini file (testpaths,
  timeout, addopts) and ``.pytest_cache`` follow it to ``/dir``;
* away from the checkout nothing tells pytest where the suites are: it collects the current
  directory and finds nothing.

So once the plugins are loaded and the command line can be read whole (``pytest_load_initial_conftests``),
this plugin decides the setup again for runs that name a ``--target`` or ask for ``--list-checks``
(any other run is left alone):

* test paths on the command line: the rootdir and ini file are decided again from those paths alone,
  which changes nothing unless an option's value had been taken for a path;
* no test path, inside the checkout or in a directory with test files of its own: what pytest does
  there, again without the mistaken paths;
* no test path anywhere else: the suites are collected (the ``mailconform.suites`` package, which in
  the checkout is the top-level ``suites/`` directory) with the checkout's pyproject.toml as the ini
  file and the checkout as rootdir.  An installed mailconform has no ini file: the rootdir is the
  current directory's, and this plugin gives the per-check timeout itself when nobody else did.
  Either way ``targets.toml`` is looked for where it would have been without the move (``--targets-file``
  picks another).
"""

from __future__ import annotations

import copy
import glob
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from typing import Any, NamedTuple

import pytest

SUITES_PACKAGE = "mailconform.suites"
#: Seconds one check may run before pytest-timeout stops it.  The checkout says so in pyproject.toml
#: (a self-test keeps the two equal); an installed mailconform, which has no ini file, gets it from here.
DEFAULT_TIMEOUT = 120
#: Top-level files that make a directory "a directory of tests" (pytest's default python_files).
OWN_TESTS = ("test_*.py", "*_test.py", "conftest.py")


def suites_dir() -> Path | None:
    """The directory of the ``mailconform.suites`` package: the checkout's ``suites/`` (an editable
    install maps it there, see pyproject.toml's package-dir) or the installed package's copy."""
    try:
        spec = importlib.util.find_spec(SUITES_PACKAGE)
    except ImportError:
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def checkout_ini(suites: Path) -> Path | None:
    """The checkout's pyproject.toml beside ``suites/``; an installed package has none."""
    ini = suites.parent / "pyproject.toml"
    return ini if ini.is_file() else None


def holds_tests(directory: Path) -> bool:
    """Does ``directory`` hold tests of its own at its top (as pytester's directories do)?"""
    return any(next(directory.glob(pattern), None) for pattern in OWN_TESTS)


def _same(a: Path | None, b: Path | None) -> bool:
    return a is not None and b is not None and a.resolve() == b.resolve()


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    config = early_config
    wanted = config.known_args_namespace
    if not (getattr(wanted, "target", None) or getattr(wanted, "list_checks", False)):
        return  # not a mailconform run: plain pytest, untouched
    problem = internals_problem(config)
    if problem is not None:
        config.issue_config_time_warning(pytest.PytestConfigWarning(
            f"mailconform: this pytest ({pytest.__version__}) changed what mailconform.location relies on "
            f"({problem}); the suite runs with the rootdir and ini file pytest chose: run it from the checkout, "
            f"and write --targets-file=PATH with an '='"), stacklevel=2)

    # The command line as the user wrote it (PYTEST_ADDOPTS included), without the ini file's addopts.
    ini_addopts = list(config.getini("addopts"))
    own = args[len(ini_addopts):] if ini_addopts and args[:len(ini_addopts)] == ini_addopts else list(args)
    user = parser.parse_known_args(own, namespace=copy.copy(config.option))
    invocation_dir = config.invocation_params.dir

    def setup(paths: list[str], inifile: str | None = None) -> Setup:
        return _determine_setup(inifile=inifile or user.inifilename, override_ini=user.override_ini, args=paths,
                                rootdir=user.rootdir or None, invocation_dir=invocation_dir)

    suites = suites_dir()
    ini = checkout_ini(suites) if suites is not None else None
    # Collect the suites?  Not when the user named test paths, nor in a directory of tests of its own.
    run_suites = not user.file_or_dir and suites is not None and not holds_tests(invocation_dir)
    chosen = moved_from = None
    if problem is not None:
        run_suites = run_suites and not _same(config.inipath, ini)
    elif user.file_or_dir:
        chosen = setup(user.file_or_dir)
    else:
        here = setup([])  # what pytest does in this directory
        run_suites = run_suites and not _same(here.inipath, ini)  # inside the checkout: as pytest does there
        if run_suites and ini is not None and user.inifilename is None:
            chosen, moved_from = setup([str(suites)], inifile=str(ini)), here.rootpath
        else:  # an installed mailconform, or the user's own -c FILE: this directory's setup
            chosen = here
    adopt = chosen is not None and (chosen.rootpath, chosen.inipath) != (config.rootpath, config.inipath)
    if adopt:
        _adopt_setup(config, parser, args, chosen)

    extra: list[str] = []
    if run_suites:
        # In the checkout, what its testpaths name (the suites), as pytest collects there.
        extra += (_testpaths(config) if _same(config.inipath, ini) else []) or [str(suites)]
        given = parser.parse_known_args(args, namespace=copy.copy(config.option))
        if moved_from is not None and getattr(given, "targets_file", None) is None:
            extra.append(f"--targets-file={moved_from / 'targets.toml'}")  # where it was before the move
        if _needs_timeout(config, given):
            extra.append(f"--timeout={DEFAULT_TIMEOUT}")
        args.extend(extra)
    if adopt or extra:
        # What Config.parse did before calling this hook, again with the final arguments.
        config.known_args_namespace = parser.parse_known_args(args, namespace=copy.copy(config.option))
        if config.known_args_namespace.confcutdir is None:
            config.known_args_namespace.confcutdir = str(config.inipath.parent if config.inipath else config.rootpath)


def _testpaths(config: pytest.Config) -> list[str]:
    found = []
    for pattern in config.getini("testpaths"):
        found += sorted(glob.glob(os.path.join(config.rootpath, pattern), recursive=True))
    return found


def _needs_timeout(config: pytest.Config, namespace: Any) -> bool:
    """No per-check timeout from the command line, PYTEST_TIMEOUT or the ini file (and pytest-timeout loaded)."""
    if not config.pluginmanager.hasplugin("timeout"):
        return False
    return getattr(namespace, "timeout", None) is None and not os.environ.get("PYTEST_TIMEOUT") \
        and not config.getini("timeout")


# --------------------------------------------------------------------------- pytest internals
# Everything below uses private pytest API, checked against pytest 9.1 and 9.2.  internals_problem()
# says what is missing; tests/plugin/test_run_from_anywhere.py fails loudly when an upgrade breaks it, and at
# run time the hook then falls back to collecting the suites with the setup pytest chose (and a warning).

class Setup(NamedTuple):
    rootpath: Path
    inipath: Path | None
    inicfg: dict
    ignored: Any  # config files found beside the ini file and ignored


_CONFIG_NEEDS = ("_rootpath", "_inipath", "_inicfg", "_ignored_config_files", "_inicache", "_checkversion",
                 "_configure_python_path")
_SETUP_PARAMETERS = {"inifile", "override_ini", "args", "rootdir_cmd_arg", "invocation_dir"}


def internals_problem(config: pytest.Config) -> str | None:
    """What :func:`_determine_setup` and :func:`_adopt_setup` need and this pytest lacks, or None."""
    try:
        from _pytest.config.findpaths import determine_setup, parse_override_ini  # noqa: F401
    except ImportError as error:
        return f"_pytest.config.findpaths: {error}"
    if set(inspect.signature(determine_setup).parameters) != _SETUP_PARAMETERS:
        return f"determine_setup{inspect.signature(determine_setup)}"
    missing = [name for name in _CONFIG_NEEDS if not hasattr(config, name)]
    return f"Config has no {', '.join(missing)}" if missing else None


def _determine_setup(*, inifile: str | None, override_ini: list[str] | None, args: list[str], rootdir: str | None,
                     invocation_dir: Path) -> Setup:
    """pytest's own choice of rootdir and ini file for these paths and options."""
    from _pytest.config.findpaths import determine_setup

    return Setup(*determine_setup(inifile=inifile, override_ini=override_ini, args=args, rootdir_cmd_arg=rootdir,
                                  invocation_dir=invocation_dir))


def _adopt_setup(config: pytest.Config, parser: pytest.Parser, args: list[str], setup: Setup) -> None:
    """Make ``setup`` pytest's rootdir and ini file, redoing what ``Config.parse`` did with the ones it had
    chosen from the command line it could not read yet: the ini file's addopts (in front of ``args``) and
    pythonpath are swapped, ``-o`` given through addopts applied, minversion checked."""
    from _pytest.config.findpaths import parse_override_ini

    old_addopts = config.getini("addopts")
    # Config.parse put the ini file's addopts in front of the arguments, unless called with addopts=False.
    with_addopts = not old_addopts or args[:len(old_addopts)] == old_addopts
    if old_addopts and with_addopts:
        del args[:len(old_addopts)]
    for path in map(str, config.getini("pythonpath")):
        if path in sys.path:
            sys.path.remove(path)
    config._rootpath, config._inipath, config._inicfg = setup.rootpath, setup.inipath, setup.inicfg
    config._ignored_config_files = setup.ignored
    config._inicache.clear()
    parser.extra_info.update(rootdir=str(setup.rootpath), inifile=str(setup.inipath))
    if with_addopts:
        addopts = config.getini("addopts")
        args[:0] = addopts
        config.pluginmanager.consider_preparse(addopts, exclude_only=False)  # -p NAME in addopts
        namespace = parser.parse_known_args(args, namespace=copy.copy(config.option))
        if overrides := parse_override_ini(namespace.override_ini):
            config._inicfg.update(overrides)
            config._inicache.clear()
    config._checkversion()
    config._configure_python_path()
