"""How numbers are said to people."""


def counted(number: float, singular: str, plural: str | None = None) -> str:
    """'1 session', '3 sessions'."""
    return f"{number:.0f} {singular if number == 1 else plural or singular + 's'}"
