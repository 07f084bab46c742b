"""The conformance checks, one subpackage per protocol; installed as ``mailconform.suites``."""
