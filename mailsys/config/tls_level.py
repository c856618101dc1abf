"""tls_level - the TLS security level smtpd and the smtp client work at.

SYNOPSIS
    from mailsys.config.tls_level import client_level, server_level
    server_level(cfg)      # "none", "may" or "encrypt"
    client_level(cfg)      # "none", "may", "encrypt", "verify", ...

DESCRIPTION
    smtpd_tls_security_level and smtp_tls_security_level are empty by
    default, and then the obsolete Boolean parameters decide, as in
    Postfix 3.7 ("this overrides the obsolete parameters"): main.cf files
    written for Postfix 2.2 still say smtpd_use_tls = yes.

    Pure: reads parameters only.
"""

from __future__ import annotations

__all__ = ["server_level", "client_level"]


def server_level(cfg, program: str = "smtpd") -> str:
    """server_level - $program_tls_security_level, or, when it is empty,
    what the obsolete $program_enforce_tls (encrypt) and $program_use_tls
    (may) say; program is smtpd or postscreen (whose three default to
    smtpd's)."""
    level = str(cfg[f"{program}_tls_security_level"]).lower()
    if level:
        return level
    if cfg[f"{program}_enforce_tls"]:
        return "encrypt"
    return "may" if cfg[f"{program}_use_tls"] else "none"


def client_level(cfg) -> str:
    """client_level - smtp_tls_security_level, or, when it is empty, what
    the obsolete smtp_enforce_tls (verify, or encrypt without
    smtp_tls_enforce_peername) and smtp_use_tls (may) say (Postfix
    smtp_tls_policy.c)."""
    level = str(cfg.smtp_tls_security_level).lower()
    if level:
        return level
    if cfg.smtp_enforce_tls:
        return "verify" if cfg.smtp_tls_enforce_peername else "encrypt"
    return "may" if cfg.smtp_use_tls else "none"
