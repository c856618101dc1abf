"""sasl_filter - smtpd_sasl_mechanism_filter and smtp_sasl_mechanism_filter.

SYNOPSIS
    keep = MechanismFilter.from_config(cfg, "smtpd_sasl_mechanism_filter")
    keep(("PLAIN", "LOGIN", "EXTERNAL"))      # -> ("PLAIN", "LOGIN") by default

DESCRIPTION
    A Postfix mechanism filter: mechanism names, "/file/name" (the names in
    that file), "type:table" (a mechanism that is a key of the table) and
    "!pattern" to exclude; each mechanism takes the verdict of the first
    pattern that matches it, and one that no pattern matches is left out.
    Names match without regard to case. An empty filter keeps everything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import field

from mailsys.config.tables import Table, open_table, table_path
from mailsys.errors import ConfigError
from mailsys.frozen import frozen
from mailsys.smtp.client_auth import filter_mechanisms

__all__ = ["MechanismFilter"]

# Distinct offers remembered per filter (a bound, should a server vary them).
_ANSWERS_KEPT = 64


@frozen
class MechanismFilter:
    words: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()
    # The answers so far, by the mechanisms offered: smtpd asks at every
    # session, and the offers are one or two lists for a process's life.
    _answers: dict[tuple[str, ...], tuple[str, ...]] = field(
        default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_config(cls, cfg, param: str,
                    opener: Callable[[str], Table] | None = None) -> MechanismFilter:
        if opener is None:
            opener = lambda spec: open_table(spec, cfg)      # noqa: E731
        words: list[str] = []
        tables: list[Table] = []
        for word in cfg[param]:
            bare = word.lstrip("!")
            if bare.startswith("/"):
                # A "/file/name" pattern stands for the words in that file.
                neg = "!" if word.startswith("!") else ""
                words += [neg + w for w in _file_words(table_path(bare, cfg), param)]
            elif ":" in bare:
                tables.append(opener(bare))
                words.append(word)
            else:
                words.append(word)
        return cls(tuple(words), tuple(tables))

    def __call__(self, offered: Sequence[str]) -> list[str]:
        """The offered mechanisms the filter keeps, in their order."""
        key = tuple(offered)
        kept = self._answers.get(key)
        if kept is None:
            tables = {t.spec: t for t in self.tables}

            def in_table(spec: str, mech: str) -> bool:
                table = tables.get(spec)
                return table is not None and table.lookup(mech) is not None
            kept = tuple(filter_mechanisms(offered, self.words, in_table))
            if len(self._answers) < _ANSWERS_KEPT:
                self._answers[key] = kept
        return list(kept)


def _file_words(path, param: str) -> list[str]:
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"open {path}: {e.strerror}", param=param) from None
    return [w for line in text.splitlines() if not line.lstrip().startswith("#")
            for w in line.replace(",", " ").split()]
