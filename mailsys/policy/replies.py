"""replies - SMTP reply texts and status codes as smtpd_check.c builds them.

DESCRIPTION
    The reply classes ("Client host", "Helo command", "Sender address",
    "Recipient address", "Data command") name what a restriction judged; a
    reply reads "<name>: <class> rejected: <why>". dsn_fix() forces the DSN
    class of an enhanced status code to the reply class (a 5xx reply never
    carries 4.x.x) and maps address detail codes between sender and
    recipient like Postfix smtpd_dsn_fix. split_dsn() takes the optional
    enhanced code off the front of an access(5) reply text. CODE_DEFAULTS
    are Postfix's defaults of the *_reject_code / *_defer_code parameters.

    soft_bounce (every 5xx becomes 4xx) and the defer/warn modifiers are
    applied where a reject is made, in Restrictions._reject.

SEE ALSO
    Postfix src/smtpd/smtpd_check.c, src/smtpd/smtpd_dsn_fix.c, postconf(5).
"""

from __future__ import annotations

import re

# Reply names (Postfix SMTPD_NAME_*): the second part of "<x>: %s rejected: ...".
CLIENT = "Client host"
REVERSE_CLIENT = "Unverified Client host"
HELO = "Helo command"
SENDER = "Sender address"
RECIPIENT = "Recipient address"
DATA = "Data command"
EOD = "End-of-data"
ETRN = "Etrn command"
CCERT = "Client certificate"
SASL_USER = "SASL login name"

CONFIG_ERROR_TEXT = "Server configuration error"


# Postfix defaults of the reply-code parameters (mail_params.h DEF_*_CODE),
# used when the configuration does not define them.
CODE_DEFAULTS: dict[str, int] = {
    "reject_code": 554,
    "defer_code": 450,
    "relay_domains_reject_code": 554,
    "access_map_reject_code": 554,
    "access_map_defer_code": 450,
    "unknown_address_reject_code": 450,
    "unknown_hostname_reject_code": 450,
    "non_fqdn_reject_code": 504,
    "invalid_hostname_reject_code": 501,
    "unknown_local_recipient_reject_code": 550,
    "unknown_virtual_mailbox_reject_code": 550,
    "unknown_virtual_alias_reject_code": 550,
    "unknown_relay_recipient_reject_code": 550,
    "unknown_client_reject_code": 450,
    "plaintext_reject_code": 450,
    "maps_rbl_reject_code": 554,
    "multi_recipient_bounce_reject_code": 550,
}


# smtpd_dsn_fix.c: an address detail code reported for the other kind of
# address, or for something that is not an address at all, is translated.
_TO_SENDER = {"1.1": "1.7", "1.2": "1.8", "1.3": "1.7", "1.6": "1.7"}
_TO_RECIPIENT = {"1.7": "1.1", "1.8": "1.2"}


def dsn_fix(enhanced: str, code: int, reply_class: str) -> str:
    """Postfix smtpd_dsn_fix plus the class rule: the DSN class follows the code."""
    parts = enhanced.split(".", 1)
    if len(parts) != 2 or not parts[0].isdigit():
        parts = ["5", "0.0"]
    detail = parts[1]
    if detail.startswith("1."):
        if reply_class == SENDER:
            detail = _TO_SENDER.get(detail, detail)
        elif reply_class == RECIPIENT:
            detail = _TO_RECIPIENT.get(detail, detail)
        else:
            detail = "0.0"
    return f"{code // 100}.{detail}"


_DSN_RE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)")


def split_dsn(text: str, default: str) -> tuple[str, str]:
    """'5.7.2 go away' -> ('5.7.2', 'go away'); a text without a code keeps default."""
    m = _DSN_RE.match(text)
    if m:
        return f"{m.group(1)}.{m.group(2)}.{m.group(3)}", text[m.end():]
    return default, text


__all__ = ["CLIENT", "CODE_DEFAULTS", "CONFIG_ERROR_TEXT", "DATA", "EOD", "ETRN", "HELO", "RECIPIENT",
           "REVERSE_CLIENT", "SENDER", "dsn_fix", "split_dsn"]
