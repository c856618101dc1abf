"""flush protocol - what smtpd asks the fast flush service for ETRN (Postfix flush(8)).

smtpd sends FlushSite(site) for "ETRN site" and gets FlushStatus(status):
OK when the site's deferred mail is on its way, DENY when the site is not
one of $fast_flush_domains, BAD for a site that is no domain name. The
values are Postfix's FLUSH_STAT_* (src/global/flush_clnt.h).
"""

from __future__ import annotations


from mailsys.frozen import frozen
from mailsys.ipc.codec import message

PROTOCOL = "flush"

# Postfix FLUSH_STAT_*.
OK, FAIL, BAD, DENY = 0, -1, 3, 4


@message("flush_site", version=1)
@frozen
class FlushSite:
    site: str


@message("flush_status", version=1)
@frozen
class FlushStatus:
    status: int
