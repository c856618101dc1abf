"""smtp_tls - the smtp client's TLS policy from main.cf (smtp_tls_security_level).

    policy = tls_policy(cfg)      # TlsPolicy(level, engine=..., wrap=...)

none (or empty) turns STARTTLS off; may, encrypt, verify and secure ask for
it (see mailsys.runtime.smtp_client_io for what each does on failure); dane
falls back to may, as Postfix does without DNSSEC.
"""

from __future__ import annotations

from mailsys.runtime.smtp_client_io import TlsPolicy

__all__ = ["tls_policy", "LEVELS"]

LEVELS = ("none", "may", "encrypt", "verify", "secure")


def tls_policy(cfg) -> TlsPolicy:
    level = (cfg.smtp_tls_security_level or "none").lower()
    if level == "dane":
        level = "may"
    if level not in LEVELS:
        level = "may"
    return TlsPolicy(level)
