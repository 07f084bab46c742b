"""DNS checks: the MX step."""
