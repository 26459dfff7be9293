"""The root of every outside-system error; each client module subclasses it."""


class ClientError(Exception):
    """An outside system failed or refused; the message names it and gives its reason."""
