"""SMTP checks."""
