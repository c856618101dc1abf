"""postscreen_access - postscreen_access_list: the permanent allow and deny list.

SYNOPSIS
    acl = AccessList.compile(cfg.postscreen_access_list, mynetworks, opener)
    acl.verdict("192.0.2.7")        # PERMIT, REJECT or DUNNO

DESCRIPTION
    Postfix's psc_acl.c. The list is read left to right; the first element
    that decides ends the evaluation:

      permit_mynetworks   PERMIT when the client address is in $mynetworks
      permit / reject / dunno   that verdict, unconditionally
      type:table          the client address looked up in the table
                          (cidr:, hash:, ...); the result's first word is
                          permit, reject or dunno (case does not matter);
                          dunno from a table, or no match, goes on with
                          the next element (postconf(5))

    Nothing deciding means DUNNO. A table result that is none of the three
    words is a configuration error: Postfix logs a warning and treats it as
    DUNNO, and so does this module (warnings lists the text).

    Pure: tables come from the opener the caller passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from mailsys.errors import ConfigError
from mailsys.frozen import frozen
from mailsys.policy.netmatch import ClientMatcher

PERMIT = "permit"
REJECT = "reject"
DUNNO = "dunno"
_VERDICTS = (PERMIT, REJECT, DUNNO)


@frozen
class _Rule:
    word: str = ""               # permit_mynetworks / permit / reject / dunno
    table: Any = None            # a table with lookup(key) -> str | None
    spec: str = ""


@frozen
class AccessList:
    rules: tuple[_Rule, ...]
    mynetworks: ClientMatcher

    @classmethod
    def compile(cls, items: Iterable[str], mynetworks: ClientMatcher,
                opener: Callable[[str], Any]) -> "AccessList":
        rules = []
        for item in items:
            word = item.lower()
            if word == "permit_mynetworks" or word in _VERDICTS:
                rules.append(_Rule(word=word))
            elif ":" in item:
                rules.append(_Rule(table=opener(item), spec=item))
            else:
                raise ConfigError(f"unknown postscreen_access_list element: {item}",
                                  param="postscreen_access_list")
        return cls(tuple(rules), mynetworks)

    def verdict(self, addr: str, warnings: list[str] | None = None) -> str:
        """PERMIT, REJECT or DUNNO for a client address."""
        for rule in self.rules:
            if rule.word == "permit_mynetworks":
                if self.mynetworks.match("unknown", addr):
                    return PERMIT
                continue
            if rule.word:
                return rule.word
            found = rule.table.lookup(addr)
            if found is None:
                continue
            word = (found.split() or [""])[0].lower()
            if word not in _VERDICTS:
                if warnings is not None:
                    warnings.append(f"{rule.spec}: unknown action for {addr}: {found}")
                continue
            if word != DUNNO:
                return word
        return DUNNO
