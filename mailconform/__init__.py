"""mailconform: a pytest conformance and grading suite for mail servers."""
