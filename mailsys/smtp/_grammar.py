"""_grammar - RFC 5321 / 6531 / 3461 / 4954 syntax as regular expressions.

Each regex has the ABNF it implements quoted above it. Where Postfix is more
lenient than the RFC (it accepts what real clients send), the regex follows
Postfix and says so. Everything works on str: command lines are decoded as
UTF-8 first (RFC 6531 allows UTF-8 in addresses and parameters).
"""

from __future__ import annotations

import re

# RFC 6531 3.3:  UTF8-non-ascii = UTF8-2 / UTF8-3 / UTF8-4
_U = "\u0080-\U0010ffff"

# RFC 5321 4.1.2:
#   atext (RFC 5322) = ALPHA / DIGIT / "!" / "#" / "$" / "%" / "&" / "'" / "*" /
#                      "+" / "-" / "/" / "=" / "?" / "^" / "_" / "`" / "{" / "|" / "}" / "~"
#   atext =/ UTF8-non-ascii                                   (RFC 6531)
#   Atom       = 1*atext
#   Dot-string = Atom *("." Atom)
ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~" + _U + "]"
DOT_STRING = rf"{ATEXT}+(?:\.{ATEXT}+)*"
DOT_STRING_RE = re.compile(rf"{DOT_STRING}\Z")

#   Quoted-string   = DQUOTE *QcontentSMTP DQUOTE
#   QcontentSMTP    = qtextSMTP / quoted-pairSMTP
#   quoted-pairSMTP = %d92 %d32-126
#   qtextSMTP       = %d32-33 / %d35-91 / %d93-126
#   qtextSMTP       =/ UTF8-non-ascii                          (RFC 6531)
QUOTED_STRING = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e' + _U + r']|\\[\x20-\x7e])*"'

#   Local-part = Dot-string / Quoted-string
# Postfix also takes local parts with empty atoms ("a..b", "a.", ".a") which
# broken clients send, so any run of atext and dots is accepted. Written as
# one character class on purpose: "atom *(1*"." *atext)" nests quantifiers
# and backtracks exponentially on "a.........@" (a slow-regex DoS).
LOCAL_PART = r'(?:' + QUOTED_STRING + r"|[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~." + _U + r"]+)"

#   Domain       = sub-domain *("." sub-domain)
#   sub-domain   = Let-dig [Ldh-str]
#   Ldh-str      = *( ALPHA / DIGIT / "-" ) Let-dig
#   sub-domain   =/ U-label                                   (RFC 6531)
# Underscores are allowed as Postfix allows them in envelope domains.
SUB_DOMAIN = r"[A-Za-z0-9_" + _U + r"](?:[A-Za-z0-9_\-" + _U + r"]*[A-Za-z0-9_" + _U + r"])?"
DOMAIN = rf"{SUB_DOMAIN}(?:\.{SUB_DOMAIN})*\.?"

#   address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
#                           General-address-literal ) "]"
#   General-address-literal = Standardized-tag ":" 1*dcontent
#   dcontent = %d33-90 / %d94-126
ADDRESS_LITERAL = r"\[[\x21-\x5a\x5e-\x7e]+\]"

#   Mailbox = Local-part "@" ( Domain / address-literal )
# RFC 5321 4.5.1 requires "Postmaster" without a domain to be accepted;
# Postfix accepts any bare local part and appends $myorigin later.
MAILBOX = rf"(?P<local>{LOCAL_PART})(?:@(?P<domain>{DOMAIN}|{ADDRESS_LITERAL}))?"
MAILBOX_RE = re.compile(rf"{MAILBOX}\Z")

#   A-d-l     = At-domain *( "," At-domain )
#   At-domain = "@" Domain
#   Path      = "<" [ A-d-l ":" ] Mailbox ">"
AT_DOMAIN = rf"@(?:{DOMAIN}|{ADDRESS_LITERAL})"
ADL = rf"{AT_DOMAIN}(?:,{AT_DOMAIN})*"
PATH_RE = re.compile(rf"<(?P<adl>{ADL}:)?(?P<mailbox>{MAILBOX})>\Z")

#   esmtp-param   = esmtp-keyword ["=" esmtp-value]
#   esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
# The value is left to each parameter's own check, as smtpd.c leaves it.
ESMTP_KEYWORD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]*\Z")

# xtext.c xtext_unquote(): a "+" must be followed by two hex digits, of
# either case; every other character stands for itself.
_XTEXT_BAD_PLUS = re.compile(r"\+(?![0-9A-Fa-f]{2})")
_XTEXT_PAIR = re.compile(r"\+([0-9A-Fa-f]{2})")


def xtext_unquote(value: str) -> str | None:
    """The value decoded as Postfix's xtext_unquote() decodes it; None for a bad "+"."""
    if "+" not in value:
        return value
    if _XTEXT_BAD_PLUS.search(value):
        return None
    return _XTEXT_PAIR.sub(lambda m: chr(int(m.group(1), 16)), value)


#   size-value = 1*20DIGIT                                    (RFC 1870)
SIZE_RE = re.compile(r"[0-9]{1,20}\Z")
#   notify-esmtp-value = "NEVER" / 1#notify-list-element       (RFC 3461 4.1)
#   notify-list-element = "SUCCESS" / "FAILURE" / "DELAY"
# (NEVER alone: Postfix's dsn_notify_mask() refuses NEVER with another keyword.)
NOTIFY_RE = re.compile(r"(?:NEVER|(?:SUCCESS|FAILURE|DELAY)(?:,(?:SUCCESS|FAILURE|DELAY))*)\Z", re.I)
#   ret-value = "FULL" / "HDRS"
RET_RE = re.compile(r"(?:FULL|HDRS)\Z", re.I)
#   envid-value = xtext  (at most 100 characters; Postfix does not enforce it)
#   bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] CRLF   (RFC 3030)
#   chunk-size = 1*DIGIT ; end-marker = "LAST"
BDAT_ARG_RE = re.compile(r"(?P<size>[0-9]{1,18})(?:\s+(?P<last>LAST))?\s*\Z", re.I)


# Postfix is_header(): a would-be header name, printable characters other
# than ":" followed by ":" (mail_params/is_header.c), e.g. "From:" "Subject:".
HEADER_LIKE_RE = re.compile(r"[\x21-\x39\x3b-\x7e]+:")

# RFC 4648 base64 as RFC 4954 uses it.
BASE64_RE = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\Z")
