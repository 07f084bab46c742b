"""The mailconform plugin is registered through its ``pytest11`` entry point (see pyproject.toml),
so that its options (--target, --targets-file, --step, --results-json) are known before pytest
parses the command line.  Loading it here as well would register it twice."""
