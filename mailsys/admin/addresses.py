"""addresses - envelope addresses as Postfix's queue tools print them.

Postfix's showq prints each address RFC 5321-quoted (quote_821_local: a
local part that is not a dot-atom is put in double quotes, with backslash
before quote and backslash) and with non-printable characters replaced by
"?" (printable(): with smtputf8_enable = no every non-ASCII byte too, as
Postfix 3.7's mailq and postqueue -j show them). The null sender prints as
MAILER-DAEMON, Postfix's empty_address_recipient. Pure; used by showq.py
and qshape.py.
"""

from __future__ import annotations

import re

from mailsys.maillog.postfix import printable
from mailsys.message.address import QUOTED_STRING

NULL_SENDER = "MAILER-DAEMON"

# RFC 5321 4.1.2: Dot-string = Atom *("." Atom), atext per RFC 5322 3.2.3.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\x80-\U0010ffff-]+"
                       r"(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\x80-\U0010ffff-]+)*")


def quote_local(address: str) -> str:
    """address with its local part quoted when it is not a dot-atom."""
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    # The queue holds the external form: a local part quoted already stays.
    if local and not _DOT_ATOM.fullmatch(local) and not QUOTED_STRING.fullmatch(local):
        local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{local}{at}{domain}"


def shown(address: str, utf8: bool = True) -> str:
    """An envelope address as mailq and postqueue -j show it.
    utf8: smtputf8_enable."""
    if not address:
        return NULL_SENDER
    return printable(quote_local(address), utf8)
