"""reply - an SMTP status as plain data, for code that decides but does not speak SMTP.

cleanup's header checks and anvil's limit checks decide that a message or a
client is refused; smtpd turns the decision into a wire reply. The decision
travels as a ``StatusReply``: the three-digit code, the RFC 3463 enhanced
status code and the text, with the same field names as
``mailsys.smtp.replies.Reply`` so the conversion is one call::

    Reply(status.code, status.enhanced, status.text)

It is a separate, dependency-free value so that pure packages (mailsys.message,
mailsys.policy) need not import the SMTP protocol package.
"""

from __future__ import annotations


from mailsys.frozen import frozen


@frozen
class StatusReply:
    """One SMTP status: ``StatusReply(554, "5.4.0", "Error: too many hops")``."""

    code: int
    enhanced: str
    text: str

    def __str__(self) -> str:
        """The reply as Postfix writes it in a log line: ``554 5.4.0 Error: too many hops``."""
        return f"{self.code} {self.enhanced} {self.text}"
