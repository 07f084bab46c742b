"""POP3 checks."""


def listed(capabilities: dict[str, str]) -> str:
    """A CAPA list as the messages show it: ``USER, SASL PLAIN, STLS``."""
    return ", ".join(f"{name} {args}".strip() for name, args in capabilities.items()) or "(nothing)"
