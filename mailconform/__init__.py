"""mailconform: a pytest conformance and grading suite for mail servers."""


def suite_version() -> str:
    """The installed version, as grade files and reports state it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mailconform")
    except PackageNotFoundError:
        return "unknown"
