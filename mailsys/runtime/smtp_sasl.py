"""smtp_sasl - SASL authentication of the smtp and lmtp clients (Postfix smtp_sasl_glue.c).

SYNOPSIS
    sasl = SaslSettings.from_config(cfg)              # None: smtp_sasl_auth_enable = no
    login = sasl.request(sender="alice@example.com", dest="[smtp.example.com]:587")
    session = await connect(target, timeouts, helo_name=..., sasl=login)

DESCRIPTION
    The usual smarthost setup:

        relayhost = [smtp.example.com]:587
        smtp_sasl_auth_enable = yes
        smtp_sasl_password_maps = hash:/etc/postfix/sasl_passwd
        smtp_tls_security_level = encrypt

    with ``[smtp.example.com]:587 user:password`` in the table.

    After EHLO (the one inside TLS when STARTTLS was used), a server that
    offers AUTH gets a login when smtp_sasl_password_maps has an entry for
    this delivery. The keys tried, in Postfix's order: the sender address
    and then its @domain, only with smtp_sender_dependent_authentication
    (never for lmtp); the server's host name (the MX host, or the host of
    a [bracketed] next hop); the next-hop destination exactly as written,
    brackets and port included. The value is ``user:password``. No entry:
    the client sends as a stranger, without AUTH, as Postfix does. A
    server that offers no AUTH at all gets no login either.

    The server's mechanisms go through smtp_sasl_mechanism_filter (a
    filter that leaves nothing logs Postfix's warning "host[addr]:port
    offered no supported AUTH mechanisms: 'LIST'"), then the security
    options choose among PLAIN, LOGIN and CRAM-MD5
    (mailsys.smtp.client_auth): smtp_sasl_security_options in plaintext,
    smtp_sasl_tls_security_options inside TLS,
    smtp_sasl_tls_verified_security_options inside TLS with a verified,
    matched certificate (levels verify and secure).

    Failures end the session (SessionError, connected: the next MX host is
    tried, else the recipients get the text), with Postfix's words:

      SASL authentication failed; server mx[192.0.2.1] said: 535 5.7.8 ...
          the server refused; a 5xx becomes 4xx with
          smtp_sasl_auth_soft_bounce = yes (the default)
      SASL authentication failed; cannot authenticate to server mx[192.0.2.1]: no mechanism available
          4.7.0, after the warning "SASL authentication failure: No worthy
          mechs found" (nothing the security options allow was offered)
      SASL authentication failed: server mx[192.0.2.1] offered no compatible
          authentication mechanisms for this type of connection security
          4.7.0, the filter left nothing

    With smtp_sender_dependent_authentication the connection cache is not
    used (Postfix: mail of another sender must not ride on this login).
    smtp_send_dummy_mail_auth adds AUTH=<> to MAIL FROM after a login.

    With smtp_sasl_auth_cache_name, a 535 answer is remembered for the
    server, user and password, and later deliveries fail without AUTH
    (mailsys.runtime.smtp_sasl_cache: "SASL [CACHED] authentication
    failed; server HOST said: ...").

BUGS
    Only the three mechanisms above; no Cyrus or Dovecot library behind them
    (smtp_sasl_type and smtp_sasl_path are not read). A table lookup that
    fails (an unreadable lmdb file) is an error of the delivery, not
    Postfix's "lookup error" deferral with its warning. The sender is
    looked up as given and as @domain; Postfix's mail_addr_find() also
    tries it without its address extension and, for a local domain, the
    bare local part.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

from mailsys.config.tables import Table, open_table
from mailsys.errors import ConfigError
from mailsys.frozen import frozen
from mailsys.runtime.sasl_filter import MechanismFilter
from mailsys.runtime.smtp_sasl_cache import SaslAuthCache
from mailsys.smtp.client import AuthAborted, AuthDone, ConnectionLost
from mailsys.smtp.client_auth import choose_mechanism, client_mechanism

__all__ = ["SaslSettings", "SaslRequest"]

log = structlog.get_logger()


@frozen
class SaslSettings:
    """The smtp_sasl_* (or lmtp_sasl_*) parameters, tables open."""

    password_maps: tuple[Table, ...]
    mechanism_filter: MechanismFilter = MechanismFilter()
    security_options: tuple[str, ...] = ("noplaintext", "noanonymous")
    tls_security_options: tuple[str, ...] = ("noplaintext", "noanonymous")
    tls_verified_security_options: tuple[str, ...] = ("noplaintext", "noanonymous")
    soft_bounce: bool = True
    sender_dependent: bool = False
    dummy_mail_auth: bool = False
    auth_cache: SaslAuthCache | None = None      # smtp_sasl_auth_cache_name

    @classmethod
    def from_config(cls, cfg, program: str = "smtp",
                    opener: Callable[[str], Table] | None = None) -> SaslSettings | None:
        """None unless smtp_sasl_auth_enable; cfg is the program's view
        (client_program.client_config: lmtp values under smtp_* names)."""
        if not cfg.smtp_sasl_auth_enable:
            return None
        if opener is None:
            opener = lambda spec: open_table(spec, cfg)      # noqa: E731
        maps = tuple(cfg.smtp_sasl_password_maps)
        if not maps:
            # Postfix smtp_sasl_initialize(): a fatal error.
            name = "lmtp_sasl_password_maps" if program == "lmtp" else "smtp_sasl_password_maps"
            raise ConfigError(f"specify a password table via the `{name}' configuration parameter",
                              param=name)
        return cls(password_maps=tuple(opener(spec) for spec in maps),
                   mechanism_filter=MechanismFilter.from_config(
                       cfg, "smtp_sasl_mechanism_filter", opener),
                   security_options=tuple(cfg.smtp_sasl_security_options),
                   tls_security_options=tuple(cfg.smtp_sasl_tls_security_options),
                   tls_verified_security_options=tuple(cfg.smtp_sasl_tls_verified_security_options),
                   soft_bounce=bool(cfg.smtp_sasl_auth_soft_bounce),
                   sender_dependent=program == "smtp"
                   and bool(cfg.smtp_sender_dependent_authentication),
                   dummy_mail_auth=bool(cfg.smtp_send_dummy_mail_auth),
                   auth_cache=SaslAuthCache.from_config(cfg, program))

    def request(self, sender: str, dest: str) -> SaslRequest:
        """The login of one delivery (the sender's and the next hop's).

        An LMTP next hop is looked up without its "inet:" or "unix:"
        prefix, as Postfix's smtp_connect() strips it before the session
        gets its destination."""
        for prefix in ("inet:", "unix:"):
            if dest.startswith(prefix):
                dest = dest[len(prefix):]
                break
        return SaslRequest(self, sender, dest)

    def lookup(self, key: str) -> str | None:
        for table in self.password_maps:
            value = table.lookup(key)
            if value is not None:
                return value
        return None

    def mechanisms(self, offered: Sequence[str]) -> list[str]:
        """The offered mechanisms that smtp_sasl_mechanism_filter keeps."""
        return self.mechanism_filter(offered)


@frozen
class SaslRequest:
    """One delivery's login: settings, the envelope sender and the next hop as written."""

    settings: SaslSettings
    sender: str
    dest: str

    @property
    def dummy_mail_auth(self) -> bool:
        return self.settings.dummy_mail_auth

    def credentials(self, host: str) -> tuple[str, str] | None:
        """(user, password) for a server called host, or None (Postfix smtp_sasl_passwd_lookup)."""
        s = self.settings
        keys: list[str] = []
        if s.sender_dependent and self.sender:
            keys.append(self.sender)
            if "@" in self.sender:
                keys.append("@" + self.sender.rpartition("@")[2])
        keys += [host, self.dest]
        for key in keys:
            value = s.lookup(key)
            if value is not None:
                user, _, password = value.partition(":")
                return user, password
        return None

    def _soft(self, dsn: str) -> str:
        """smtp_sasl_auth_soft_bounce: a 5xx refusal defers."""
        return "4" + dsn[1:] if self.settings.soft_bounce and dsn.startswith("5") else dsn

    async def login(self, session) -> None:
        """Authenticate an SmtpSession past EHLO, when the server and the table say so.

        Raises SessionError (from mailsys.runtime.smtp_client_io) with
        Postfix's text when the login fails."""
        from mailsys.runtime.smtp_client_io import SessionError
        cc, target = session.cc, session.target
        if cc.closed:
            return                  # a 421 to STARTTLS: the caller finds out
        offers = [words for key, words in cc.capabilities.keywords
                  if key == "AUTH" or key.startswith("AUTH=")]
        if not offers:
            return
        mechanisms = self.settings.mechanisms(cc.capabilities.auth)
        if not mechanisms:
            listed = " ".join(cc.capabilities.auth)
            log.warning(f"{target.relay} offered no supported AUTH mechanisms: '{listed}'"
                        if listed else f"{target.relay} offered null AUTH mechanism list")
        found = self.credentials(target.host)
        if found is None:
            return                  # "talk to each other like strangers"
        if not mechanisms:
            raise SessionError("4.7.0", f"SASL authentication failed: server {target.peer} "
                               "offered no compatible authentication mechanisms for this type "
                               "of connection security", connected=True, suspends=False)
        cache = self.settings.auth_cache
        if cache is not None:
            # smtp_sasl_authenticate(): no AUTH after a recent 535 for this
            # server, user and password.
            refused = await cache.find(target.host, *found)
            if refused is not None:
                raise SessionError(self._soft(refused.dsn),
                                   f"SASL [CACHED] authentication failed; server {target.host} "
                                   f"said: {refused.text}", connected=True, suspends=False,
                                   remote=(target.host, refused.text))
        tls = session.tls
        if tls is None:
            options = self.settings.security_options
        elif tls.name_checked and tls.peer_trusted:
            options = self.settings.tls_verified_security_options
        else:
            options = self.settings.tls_security_options
        name = choose_mechanism(mechanisms, options)
        if name is None:
            # The Cyrus library's words, then smtp_sasl_glue.c's.
            log.warning("SASL authentication failure: No worthy mechs found")
            raise SessionError("4.7.0", f"SASL authentication failed; cannot authenticate to "
                               f"server {target.peer}: no mechanism available",
                               connected=True, suspends=False)
        session.send(cc.auth(client_mechanism(name, *found)))
        event = await session.next_event()
        if isinstance(event, ConnectionLost):
            raise session.lost(event)
        if isinstance(event, AuthAborted):
            session.broken = True
            dsn = "4.3.0" if event.reason == "authentication protocol loop" else "4.7.0"
            if dsn == "4.3.0":
                text = f"SASL authentication failed; authentication protocol loop with server {target.peer}"
            else:
                text = (f"SASL authentication failed; cannot authenticate to server "
                        f"{target.peer}: {event.reason}")
            raise SessionError(dsn, text, connected=True, suspends=False)
        assert isinstance(event, AuthDone), event
        if event.ok:
            return
        # The session ends here (Postfix: "Session reuse is disabled"),
        # with a QUIT: the server is still in a sane state.
        dsn = event.response.dsn
        if cache is not None and event.response.code == 535:
            await cache.store(target.host, *found, dsn, event.response.text)
        dsn = self._soft(dsn)
        # Postfix records the reply for the bounce: Remote-MTA and
        # Diagnostic-Code "smtp; 535 ...".
        raise SessionError(dsn, f"SASL authentication failed; server {target.peer} said: "
                           f"{event.response.text}", connected=True, suspends=False,
                           remote=(target.host, event.response.text))
