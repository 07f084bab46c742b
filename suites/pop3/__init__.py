"""POP3 checks."""
