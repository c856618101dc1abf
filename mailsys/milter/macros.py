"""macros - the values of Sendmail macros for milters, some worked out only when asked for.

SYNOPSIS
    values = MacroValues({"j": "mx.example", "mail_host": lambda: route(sender).nexthop})
    values.get("mail_host")        # computed now, once; None: no value, not sent

DESCRIPTION
    Postfix's smtpd_milter_eval() works a macro out when a milter's macro
    list names it: {mail_host}, {mail_mailer}, {rcpt_host} and
    {rcpt_mailer} ask the address resolver, which costs a table lookup or
    two, and most macro lists never name them. A MacroValues holds plain
    values and zero-argument callables; a callable runs the first time its
    name is looked up and its answer is kept. Names are bare ("mail_host",
    not "{mail_host}"). None means the macro has no value, and is not sent
    (unless milter_macro_defaults gives one: mailsys.milter.conversation).

    Pure: no I/O of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

Value = str | None | Callable[[], str | None]


class MacroValues(Mapping[str, str | None]):
    """Macro values by bare name (see the module description)."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Value] | None = None) -> None:
        self._values: dict[str, Value] = dict(values or {})

    def __getitem__(self, name: str) -> str | None:
        value = self._values[name]
        if callable(value):
            value = value()
            self._values[name] = value
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def updated(self, values: Mapping[str, Value]) -> "MacroValues":
        """A copy with values added or replaced."""
        new = MacroValues(self._values)
        new._values.update(values)
        return new


__all__ = ["MacroValues"]
