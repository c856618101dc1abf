"""mailsys - a mail transfer agent built the way Postfix is built."""

__version__ = "0.1.0"
