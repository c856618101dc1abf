"""tls_context - the server TLS context of smtpd and postscreen, or None with Postfix's warning.

SYNOPSIS
    ctx = server_tls_context(cfg)      # an OpenSSL.SSL.Context, or None

DESCRIPTION
    mailsys.tls.server_context() from the smtpd_tls_* parameters (and
    tls_server_sni_maps, mailsys.runtime.sni_maps); when no
    certificate is configured, or the library refuses them, the warning
    Postfix's tls_server.c logs ("No server certs available. TLS won't be
    enabled", "TLS library problem: ...") and None: the server then offers
    no STARTTLS. pyOpenSSL and cryptography (~4 MB per process) load only
    here, in a server that offers TLS.
"""

from __future__ import annotations

from typing import Any

import structlog

from mailsys.errors import ConfigError

log = structlog.get_logger()


def server_tls_context(cfg: Any) -> Any:
    """The TLS server context, or None (warned) when there is none to be had."""
    from mailsys.runtime.sni_maps import SniMaps
    from mailsys.tls import server_context, ssl_options, unknown_ssl_option
    try:
        ctx = server_context(cfg, sni=SniMaps.from_config(cfg))
    except ConfigError as e:
        log.warning(f"TLS library problem: {e}")
        return None
    for token in ssl_options(cfg)[1]:
        log.warning(unknown_ssl_option(cfg, token))
    if ctx is None:
        # Postfix tls_server.c, word for word.
        log.warning("No server certs available. TLS won't be enabled")
    return ctx
