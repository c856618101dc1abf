"""smtpd_auth: the SMTP replies of SASL results (Postfix smtpd_sasl_glue.c)."""

from __future__ import annotations

import trio

from mailsys.runtime.dovecot_auth import CONNECTION_LOST, DovecotExchange
from mailsys.runtime.smtpd_auth import sasl_reply
from mailsys.sasl.server import Failure


def test_an_unreachable_auth_server_is_a_temporary_failure():
    # xsasl_dovecot_server.c: "Connection lost to authentication server" and
    # "Can't connect to authentication server" are XSASL_AUTH_TEMP, which
    # smtpd_sasl_glue.c answers "454 4.7.0 Temporary authentication failure: %s".
    exchange = DovecotExchange(None, "PLAIN", "127.0.0.1", "192.0.2.1", False)  # type: ignore[arg-type]
    result = trio.run(exchange.respond, "AGE=")
    assert result == Failure("PLAIN", CONNECTION_LOST, temporary=True)
    assert str(sasl_reply(result)) == ("454 4.7.0 Temporary authentication failure: "
                                       "Connection lost to authentication server")
    assert str(sasl_reply(Failure("PLAIN", "bad password"))) == \
        "535 5.7.8 Error: authentication failed: bad password"
