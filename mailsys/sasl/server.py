"""server - one SMTP AUTH exchange (PLAIN, LOGIN, CRAM-MD5), without I/O.

DESCRIPTION
    smtpd asks SaslServer.mechanisms() what to advertise, and for each AUTH
    command makes an exchange and feeds it the client's lines:

        ex = server.begin("LOGIN")
        result = ex.start(initial_response)   # None when AUTH had no argument
        while isinstance(result, Challenge):
            send(result.reply)                 # "334 VXNlcm5hbWU6"
            result = ex.respond(read_line())
        send(result.reply)                     # Success or Failure
        if isinstance(result, Failure):
            log.warning(result.log_text(namaddr))

    Replies and log text are Postfix's (smtpd_sasl_proto.c,
    smtpd_sasl_glue.c): "235 2.7.0 Authentication successful",
    "535 5.7.8 Error: authentication failed: <reason>",
    "501 5.7.0 Authentication aborted" (client sent "*"), and the warnings
    "unknown[192.0.2.1]: SASL LOGIN authentication failed: UGFzc3dvcmQ6,
    sasl_username=info" that fail2ban's postfix-sasl filter matches and
    "... SASL LOGIN authentication aborted" that it does not (the caller's
    logger adds "warning: "). As with Postfix over Cyrus or Dovecot, a failed
    LOGIN gives the last challenge sent as the reason, PLAIN and CRAM-MD5
    give "authentication failure", undecodable data "Invalid base64 data in
    continued response" (counted as a failure: garbage is no excuse).

    With a realm (smtpd_sasl_local_domain), a login name without "@" is
    name@realm, as Cyrus SASL makes it from Postfix's user_realm: the
    users file is asked about that name, and a success names it (the
    sasl_username of the log, permit_sasl_authenticated's
    smtpd_sender_login_maps and check_sasl_access keys). A failure logs
    the name as the client sent it. (Over Dovecot Postfix 3.7 ignores the
    realm: with smtpd_sasl_local_domain = example.net "alice" logged in as
    alice, seen live.)

    PLAIN accepts an authorization identity only when it equals the
    authentication identity (no proxy logins). CRAM-MD5 is offered and
    accepted only for users whose entry holds a CRAM-MD5 key (Dovecot's
    {CRAM-MD5} HMAC states; the response is checked by continuing MD5 from
    them, see passwords.py and md5state.py). Secrets are
    compared in constant time, and an unknown user costs one scrypt like a
    known one.

SEE ALSO
    RFC 4954 (SMTP AUTH), RFC 4616 (PLAIN), RFC 2195 (CRAM-MD5),
    draft-murchison-sasl-login (LOGIN).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import time

from mailsys.frozen import frozen
from mailsys.sasl.users import MECH_CRAM_MD5, MECH_PLAIN, UserDatabase

LOGIN_USERNAME = "VXNlcm5hbWU6"    # base64 "Username:"
LOGIN_PASSWORD = "UGFzc3dvcmQ6"    # base64 "Password:"
FAILURE_REASON = "authentication failure"
BAD_MECHANISM = "Invalid authentication mechanism"

# RFC 4954 4: a reply line, base64 included, fits 12288 octets; refuse more.
MAX_RESPONSE = 12288


@frozen
class Challenge:
    """Send "334 <data>" and wait for the client's next line."""
    data: str

    @property
    def reply(self) -> str:
        return f"334 {self.data}"


@frozen
class Success:
    mechanism: str
    username: str

    reply = "235 2.7.0 Authentication successful"


@frozen
class Failure:
    """The exchange failed (aborted: the client sent "*"; temporary: the
    auth server could not be reached or went away, Postfix's XSASL_AUTH_TEMP)."""
    mechanism: str
    reason: str
    username: str | None = None
    aborted: bool = False
    temporary: bool = False

    @property
    def reply(self) -> str:
        if self.aborted:
            return "501 5.7.0 Authentication aborted"
        if self.temporary:
            return f"454 4.7.0 Temporary authentication failure: {self.reason}"
        return f"535 5.7.8 Error: authentication failed: {self.reason}"

    def log_text(self, namaddr: str) -> str:
        """The warning smtpd logs (its logger adds "warning: ")."""
        if self.aborted:
            return f"{namaddr}: SASL {self.mechanism} authentication aborted"
        return auth_failed_log_text(namaddr, self.mechanism, self.reason, self.username)


Result = Challenge | Success | Failure


def auth_failed_log_text(namaddr: str, mechanism: str, reason: str, username: str | None = None) -> str:
    """'unknown[1.2.3.4]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=info'.

    Logged at warning level, which renders it after "warning: ". As
    Postfix 3.7's smtpd_sasl_glue.c has it, the sasl_username part is
    always there: "(unavailable)" when the client named no user, and the
    reason "(reason unavailable)" when there is none (checked with
    Postfix 3.7.11 over Dovecot: "SASL CRAM-MD5 authentication failed:
    (reason unavailable), sasl_username=(unavailable)").
    """
    # "%s: SASL %.100s authentication failed: %s, sasl_username=%.100s"
    return (f"{namaddr}: SASL {mechanism[:100]} authentication failed: "
            f"{reason or '(reason unavailable)'}, sasl_username={(username or '(unavailable)')[:100]}")


def sasl_log_fields(mechanism: str, username: str) -> str:
    """', sasl_method=PLAIN, sasl_username=bob' for the 'QID: client=...' line."""
    return f", sasl_method={mechanism}, sasl_username={username}"


def _decode(data: str) -> bytes | None:
    data = data.strip()
    if data == "=":
        return b""
    if len(data) > MAX_RESPONSE:
        return None
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


def _encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class SaslServer:
    """The mechanisms of one users file, for one smtpd process."""

    def __init__(self, users: UserDatabase, hostname: str, realm: str = "") -> None:
        self.users = users
        self.hostname = hostname
        self.realm = realm

    @classmethod
    def from_config(cls, cfg) -> "SaslServer":
        """The users of smtpd_sasl_users_file; CRAM-MD5 challenges name
        $myhostname; $smtpd_sasl_local_domain is the realm."""
        return cls(UserDatabase(cfg.path("smtpd_sasl_users_file")), cfg["myhostname"],
                   str(cfg["smtpd_sasl_local_domain"]))

    def canonical(self, name: str) -> str:
        """The login name as the users file knows it: name@realm without an "@"."""
        return f"{name}@{self.realm}" if self.realm and "@" not in name else name

    def mechanisms(self) -> tuple[str, ...]:
        return self.users.mechanisms()

    def begin(self, mechanism: str) -> "Exchange":
        return Exchange(self, mechanism.upper())


class Exchange:
    """One AUTH command's conversation; see the module docstring."""

    def __init__(self, server: SaslServer, mechanism: str) -> None:
        self._server = server
        self.mechanism = mechanism
        self._stage = "start"
        self._username: str | None = None
        self._challenge = ""

    def start(self, initial: str | None) -> Result:
        if self._stage != "start":
            raise RuntimeError("exchange already started")
        if self.mechanism not in self._server.mechanisms():
            self._stage = "done"
            return Failure(self.mechanism, BAD_MECHANISM)
        if self.mechanism == MECH_CRAM_MD5:
            # A CRAM-MD5 client cannot send an initial response (RFC 2195).
            if initial is not None:
                return self._fail("Invalid initial response")
            self._challenge = (f"<{secrets.randbelow(1 << 62)}.{int(time.time())}"
                               f"@{self._server.hostname}>")
            self._stage = "cram"
            return Challenge(_encode(self._challenge.encode("ascii")))
        if initial is None:
            if self.mechanism == MECH_PLAIN:
                self._stage = "plain"
                return Challenge("")
            self._stage = "login-user"
            return Challenge(LOGIN_USERNAME)
        if initial.strip() == "*":
            return self._aborted()
        decoded = _decode(initial)
        if decoded is None:
            return self._fail("Invalid base64 data in initial response")
        if self.mechanism == MECH_PLAIN:
            return self._plain(decoded)
        return self._login_user(decoded)

    def respond(self, line: str) -> Result:
        if self._stage in ("start", "done"):
            raise RuntimeError("no challenge outstanding")
        if line.strip() == "*":
            return self._aborted()
        decoded = _decode(line)
        if decoded is None:
            return self._fail("Invalid base64 data in continued response")
        if self._stage == "plain":
            return self._plain(decoded)
        if self._stage == "login-user":
            return self._login_user(decoded)
        if self._stage == "login-pass":
            return self._login_password(decoded)
        return self._cram(decoded)

    # -- mechanisms ----------------------------------------------------------

    def _done(self, result: Result) -> Result:
        self._stage = "done"
        return result

    def _aborted(self) -> Result:
        return self._done(Failure(self.mechanism, "Authentication aborted", self._username,
                                  aborted=True))

    def _fail(self, reason: str = FAILURE_REASON) -> Result:
        return self._done(Failure(self.mechanism, reason, self._username))

    def _plain(self, data: bytes) -> Result:
        parts = data.split(b"\0")
        if len(parts) != 3:
            return self._fail()
        try:
            authzid, authcid, password = (p.decode("utf-8") for p in parts)
        except UnicodeDecodeError:
            return self._fail()
        if not authcid:
            return self._fail()
        self._username = authcid
        canonical = self._server.canonical
        name = canonical(authcid)
        ok = self._server.users.check_password(name, password)
        if not ok or (authzid and canonical(authzid) != name):
            return self._fail()
        return self._done(Success(self.mechanism, name))

    def _login_user(self, data: bytes) -> Result:
        try:
            self._username = data.decode("utf-8")
        except UnicodeDecodeError:
            return self._fail(LOGIN_USERNAME)
        self._stage = "login-pass"
        return Challenge(LOGIN_PASSWORD)

    def _login_password(self, data: bytes) -> Result:
        try:
            password = data.decode("utf-8")
        except UnicodeDecodeError:
            return self._fail(LOGIN_PASSWORD)
        name = self._server.canonical(self._username or "")
        if self._username and self._server.users.check_password(name, password):
            return self._done(Success(self.mechanism, name))
        return self._fail(LOGIN_PASSWORD)

    def _cram(self, data: bytes) -> Result:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return self._fail()
        name, sep, digest = text.rpartition(" ")
        if not sep or not name:
            return self._fail()
        self._username = name
        name = self._server.canonical(name)
        user = self._server.users.get(name)
        if user is None or user.cram is None:
            return self._fail()
        expected = user.cram.digest(self._challenge)
        if not hmac.compare_digest(expected.encode("ascii"), digest.lower().encode("utf-8")):
            return self._fail()
        return self._done(Success(self.mechanism, name))
