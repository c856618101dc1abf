"""tls - TLS contexts from main.cf, and a TLS engine that works on bytes.

SYNOPSIS
    from mailsys.tls import server_context, client_context, TlsEngine, TlsError
    from mailsys.tls import describe, peer_status, summary, established_text

    ctx = server_context(cfg)                 # None: no certificate configured
    engine = TlsEngine(ctx, server_side=True)
    out, done = engine.handshake_step(incoming_bytes)   # send `out`; feed more until done
    wire = engine.encrypt(b"250 ok\\r\\n")
    plain, out = engine.decrypt(wire_bytes)    # send `out` too (alerts, key updates)
    wire = engine.close_notify()

    ctx = client_context(cfg, "secure")
    engine = TlsEngine(ctx, server_side=False, server_hostname="mx.example.com")
    info = describe(engine)                   # mailsys.message.received.TlsInfo
    log.info(established_text(engine, "mx.example.com[192.0.2.1]:25"))
    later = TlsEngine(ctx, server_side=False, server_hostname=..., session=engine.session)

DESCRIPTION
    The TLS layer of smtpd (STARTTLS and wrapper mode) and of the smtp
    client, in the sans-IO style of mailsys.smtp: a TlsEngine owns a
    pyOpenSSL Connection on memory BIOs and never touches a socket. Bytes
    from the network go in, bytes for the network come out; the caller
    (mailsys.runtime.tls_stream) moves them. The engine starts with empty
    buffers: whatever the peer sent before TLS began is not its business
    (smtpd discards plaintext pipelined after STARTTLS, CVE-2011-0411).

    Every pyOpenSSL call is followed by draining the outgoing BIO, because
    "many Connection methods will add bytes which must be read in this
    manner or the buffer will eventually fill up" (pyOpenSSL,
    Connection.bio_read). WantReadError means "feed me more", never failure.
    Every other failure is one TlsError carrying a readable reason, a kind
    (handshake, verify, timeout, eof) and any alert bytes for the peer.

    Contexts follow Postfix's parameters:

    server_context   smtpd_tls_cert_file / smtpd_tls_key_file, or
                     smtpd_tls_chain_files (key then certificates per file);
                     smtpd_tls_protocols or, with security level encrypt,
                     smtpd_tls_mandatory_protocols (">=TLSv1", "!SSLv2, !SSLv3",
                     "TLSv1.2 TLSv1.3", "<=TLSv1.2"); cipher grades from
                     smtpd_tls_ciphers / smtpd_tls_mandatory_ciphers with
                     Postfix's grade lists; smtpd_tls_ask_ccert asks for a
                     client certificate (trust anchors smtpd_tls_CAfile) and
                     records, never enforces, its verification. Build it once
                     per process, at start-up: a bad file is a ConfigError
                     naming the parameter, and session tickets and the
                     session cache live in the context.
    client_context   smtp_tls_security_level semantics. none, may, encrypt:
                     the server certificate is checked only to say Trusted or
                     Untrusted in the log (Postfix: encrypt does not verify).
                     verify, secure: the chain must verify against
                     smtp_tls_CAfile / smtp_tls_CApath (else the system store)
                     and the certificate must carry server_hostname (or,
                     when the engine is given match_names, one of those,
                     and the first IP address among them: the rules are
                     mailsys.tls_match's). As in Postfix, a failure does not stop
                     the handshake: the peer is then Untrusted, and
                     verify_failure() gives Postfix's log line saying why,
                     for the caller that refuses to go on. dane has no
                     DNSSEC to stand on and falls back to may, as Postfix
                     does for insecure TLSA lookups.

    describe() gives the facts Postfix writes into the Received: header and
    its "TLS connection established" log lines; peer_status() gives the
    word in front (Anonymous, Untrusted, Trusted, Verified).

    compile_version(), run_version() and public_key_algorithms() say what
    OpenSSL the layer has, for postconf -T.

BUGS
    pyOpenSSL does not expose hostname matching, the verification error
    strings or a cipher's algorithm bits; the few native calls that do are in
    the "native" section below, each with what it stands for. Protocol lists
    with holes ("TLSv1 TLSv1.2") become the enclosing range, because
    pyOpenSSL sets only a minimum and a maximum version. The signature
    algorithm in describe()'s details is derived from the certificate key
    (exact for TLSv1.3), and the signature digest is not reported.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.backends.openssl.backend import backend as _backend
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import (Encoding, PublicFormat,
                                                          load_pem_private_key)
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from OpenSSL._util import ffi as _ffi, lib as _lib

from mailsys.config.tls_level import server_level
from mailsys.errors import ConfigError
from mailsys.frozen import frozen
from mailsys.message.received import TlsInfo
from mailsys.policy.hostnames import valid_hostname
from mailsys.tls_match import NameCheck

__all__ = ["TlsError", "TlsEngine", "server_context", "client_context", "describe",
           "fingerprints", "peer_status", "summary", "established_text", "ssl_options",
           "unknown_ssl_option", "verify_failure", "sni_note_text", "DANE_NO_MATCH",
           "CLIENT_LEVELS", "compile_version", "run_version", "public_key_algorithms"]

# One BIO read or plaintext read at a time; 64 KiB is four full TLS records.
CHUNK = 65536

# Postfix's tls_{export,low,medium,high,null}_cipherlist defaults (postconf(5)).
# RC4, EXPORT and LOW ciphers no longer exist in OpenSSL 3; naming them is harmless.
CIPHER_GRADES = {
    "export": "aNULL:-aNULL:HIGH:MEDIUM:LOW:EXPORT:+RC4:@STRENGTH",
    "low": "aNULL:-aNULL:HIGH:MEDIUM:LOW:+RC4:@STRENGTH",
    "medium": "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH",
    "high": "aNULL:-aNULL:HIGH:@STRENGTH",
    "null": "aNULL:-aNULL:eNULL:!aNULL",
}

# Protocol names in Postfix's lists, oldest first, with OpenSSL's version numbers.
PROTOCOLS = {
    "SSLv2": 0x0200,
    "SSLv3": SSL.SSL3_VERSION,
    "TLSv1": SSL.TLS1_VERSION,
    "TLSv1.1": SSL.TLS1_1_VERSION,
    "TLSv1.2": SSL.TLS1_2_VERSION,
    "TLSv1.3": SSL.TLS1_3_VERSION,
}

# OpenSSL 3 builds no longer speak these (SSLv3 is compiled out by default),
# so a list that allows them still starts at TLSv1.
_OBSOLETE = ("SSLv2", "SSLv3")

# smtp_tls_security_level values client_context accepts ("" means none).
CLIENT_LEVELS = ("", "none", "may", "encrypt", "dane", "verify", "secure")
_VERIFYING_LEVELS = ("verify", "secure")
_MANDATORY_LEVELS = ("encrypt", "verify", "secure")

# Session-ID context for the server's session cache; OpenSSL refuses to
# resume sessions without one once client certificates are asked for.
_SESSION_ID_CONTEXT = b"mailsys-smtpd"


class TlsError(Exception):
    """A TLS failure, with a reason a person can read.

    ``kind`` is "handshake" (protocol or alert), "verify" (the peer's
    certificate failed a required check), "timeout" or "eof" (the peer went
    away); ``outgoing`` holds bytes (usually an alert) to send the peer
    before closing, b"" when there are none.
    """

    def __init__(self, reason: str, *, kind: str = "handshake", outgoing: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.outgoing = outgoing


@frozen
class _Policy:
    """What a context asks of its connections; kept as the context's app data."""

    server_side: bool
    enforce: bool = False       # client verify/secure: fail the handshake on a bad peer
    ask_ccert: bool = False     # server: a client certificate is requested


# -- contexts -------------------------------------------------------------------


SniLookup = Callable[[str], "bytes | None"]


def server_context(cfg, sni: SniLookup | None = None) -> SSL.Context | None:
    """server_context - smtpd's TLS context, or None when no certificate is configured.

    sni: $tls_server_sni_maps as a function from a lookup key (the SNI
    name, then ".parent.domain" forms) to PEM keys and certificate chains,
    or None; see _SniSelector."""
    chain_files = tuple(cfg.smtpd_tls_chain_files)
    if not chain_files and not cfg.smtpd_tls_cert_file and not cfg.smtpd_tls_eccert_file:
        return None
    mandatory = server_level(cfg) == "encrypt"
    which = "smtpd_tls_mandatory_" if mandatory else "smtpd_tls_"
    ctx = _base_context(SSL.TLS_SERVER_METHOD, cfg, protocols_param=which + "protocols",
                        grade_param=which + "ciphers",
                        extra=_excluded(cfg, "smtpd_tls_", mandatory))
    if chain_files:
        _load_chain_files(ctx, cfg, chain_files, "smtpd_tls_chain_files")
    else:
        # An RSA and an ECDSA certificate may sit side by side; OpenSSL
        # offers the one the client's signature algorithms ask for.
        if cfg.smtpd_tls_cert_file:
            _load_cert_and_key(ctx, cfg, "smtpd_tls_cert_file", "smtpd_tls_key_file")
        if cfg.smtpd_tls_eccert_file:
            _load_cert_and_key(ctx, cfg, "smtpd_tls_eccert_file", "smtpd_tls_eckey_file")
    if cfg.smtpd_tls_dh1024_param_file:
        dh = _readable(cfg.path("smtpd_tls_dh1024_param_file"), "smtpd_tls_dh1024_param_file")
        _ssl_call(lambda: ctx.load_tmp_dh(str(dh).encode()), "smtpd_tls_dh1024_param_file",
                  f"no usable DH parameters in {dh}")
    if cfg.tls_preempt_cipherlist:
        ctx.set_options(SSL.OP_CIPHER_SERVER_PREFERENCE)
    ctx.set_verify_depth(int(cfg.smtpd_tls_ccert_verifydepth) + 1)
    if sni is not None:
        ctx.set_tlsext_servername_callback(_SniSelector(sni))
    ctx.set_session_id(_SESSION_ID_CONTEXT)
    ctx.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
    timeout = int(cfg.smtpd_tls_session_cache_timeout)
    if timeout > 0:
        ctx.set_timeout(timeout)
    ask = bool(cfg.smtpd_tls_ask_ccert or cfg.smtpd_tls_req_ccert)
    if ask:
        # The certificate is recorded, never enforced here: smtpd decides
        # (smtpd_tls_req_ccert: "421 4.7.1 ... No client certificate presented").
        if cfg.smtpd_tls_CAfile:
            cafile = _readable(cfg.path("smtpd_tls_CAfile"), "smtpd_tls_CAfile")
            _ssl_call(lambda: ctx.load_verify_locations(str(cafile)), "smtpd_tls_CAfile",
                      f"no CA certificates in {cafile}")
            ctx.load_client_ca(str(cafile).encode())
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_CLIENT_ONCE, _verify_callback)
    else:
        ctx.set_verify(SSL.VERIFY_NONE)
    ctx.set_app_data(_Policy(server_side=True, ask_ccert=ask))
    return ctx


def client_context(cfg, level: str, exclude: Iterable[str] = ()) -> SSL.Context:
    """client_context - the smtp client's TLS context for one smtp_tls_security_level.

    exclude: cipher names or types never to use (a smtp_tls_policy_maps
    "exclude=" attribute)."""
    if level not in CLIENT_LEVELS:
        raise ConfigError(f"unsupported TLS security level: {level!r}", param="smtp_tls_security_level")
    mandatory = level in _MANDATORY_LEVELS
    which = "smtp_tls_mandatory_" if mandatory else "smtp_tls_"
    # Anonymous suites would hide the certificate that says Trusted or
    # Verified, and no server needs them: the client never offers them.
    ctx = _base_context(SSL.TLS_CLIENT_METHOD, cfg, protocols_param=which + "protocols",
                        grade_param=which + "ciphers",
                        extra=":!aNULL" + _excluded(cfg, "smtp_tls_", mandatory)
                        + "".join(f":!{x}" for x in exclude if x))
    cafile, capath = _optional(cfg, "smtp_tls_CAfile"), _optional(cfg, "smtp_tls_CApath")
    if cafile or capath:
        ca = _readable(cfg.path("smtp_tls_CAfile"), "smtp_tls_CAfile") if cafile else None
        cap = cfg.path("smtp_tls_CApath") if capath else None
        _ssl_call(lambda: ctx.load_verify_locations(str(ca) if ca else None, str(cap) if cap else None),
                  "smtp_tls_CAfile" if cafile else "smtp_tls_CApath", "cannot load CA certificates")
    else:
        ctx.set_default_verify_paths()
    if cfg.smtp_tls_chain_files:
        _load_chain_files(ctx, cfg, tuple(cfg.smtp_tls_chain_files), "smtp_tls_chain_files")
    elif cfg.smtp_tls_cert_file:
        _load_cert_and_key(ctx, cfg, "smtp_tls_cert_file", "smtp_tls_key_file")
    # Always VERIFY_PEER: the callback records the outcome, and only fails the
    # handshake when the level demands it (see _verify_callback).
    ctx.set_verify(SSL.VERIFY_PEER, _verify_callback)
    ctx.set_verify_depth(int(cfg.smtp_tls_scert_verifydepth) + 1)
    ctx.set_app_data(_Policy(server_side=False, enforce=level in _VERIFYING_LEVELS))
    return ctx


def _excluded(cfg, prefix: str, mandatory: bool) -> str:
    """The cipher-list suffix of $prefix{,mandatory_}exclude_ciphers: ":!X" each."""
    names = list(cfg[prefix + "exclude_ciphers"])
    if mandatory:
        names += cfg[prefix + "mandatory_exclude_ciphers"]
    return "".join(f":!{x}" for x in names)


def _base_context(method: int, cfg, *, protocols_param: str, grade_param: str,
                  extra: str = "") -> SSL.Context:
    ctx = SSL.Context(method)
    low, high = parse_protocols(cfg[protocols_param], protocols_param)
    ctx.set_min_proto_version(low)
    ctx.set_max_proto_version(high)
    grade = _optional(cfg, grade_param) or "medium"
    if grade not in CIPHER_GRADES:
        raise ConfigError(f"unknown cipher grade: {grade}", param=grade_param)
    _ssl_call(lambda: ctx.set_cipher_list((CIPHER_GRADES[grade] + extra).encode()), grade_param,
              f"no usable ciphers in grade {grade}")
    # Compression invites CRIME; renegotiation is a CPU lever for abusers.
    ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION | ssl_options(cfg)[0])
    # Idle connections keep no record buffers: smtpd holds many of them.
    ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
    return ctx


def ssl_options(cfg) -> tuple[int, tuple[str, ...]]:
    """ssl_options - the OpenSSL option mask of tls_ssl_options (SSL_OP_*
    names without the prefix, NO_TICKET, PRIORITIZE_CHACHA, ..., or
    0x-numbers), and the words OpenSSL does not know, which are left out:
    the caller logs Postfix's warning for each (unknown_ssl_option)."""
    mask, unknown = 0, []
    for word in cfg.tls_ssl_options:
        for token in word.replace(",", " ").split():
            if token.lower().startswith("0x"):
                try:
                    mask |= int(token, 16)
                    continue
                except ValueError:
                    pass
            value = getattr(_lib, "SSL_OP_" + token.upper(), None)
            if isinstance(value, int):
                mask |= value
            else:
                unknown.append(token)
    return mask, tuple(unknown)


def unknown_ssl_option(cfg, token: str) -> str:
    """Postfix's warning (name_mask.c) for a tls_ssl_options word left out."""
    return f'unknown tls_ssl_options value "{token}" in "{" ".join(cfg.tls_ssl_options)}"'


def parse_protocols(words: Iterable[str], param: str = "") -> tuple[int, int]:
    """parse_protocols - a Postfix protocol list -> (min version, max version) for OpenSSL.

    Accepts ">=TLSv1", "<=TLSv1.2", "!SSLv3" and plain names, separated by
    whitespace, commas or colons. Plain names make an inclusion list; "!"
    removes; bounds limit. The answer is the range spanning what is left.
    """
    names = list(PROTOCOLS)
    include: set[str] = set()
    exclude: set[str] = set()
    low, high = 0, len(names) - 1
    for word in words:
        for token in word.replace(":", " ").replace(",", " ").split():
            for prefix in (">=", "<=", "!", ""):
                if token.startswith(prefix):
                    name = token[len(prefix):]
                    break
            if name not in PROTOCOLS:
                raise ConfigError(f"unknown TLS protocol: {token}", param=param or None)
            index = names.index(name)
            if prefix == ">=":
                low = max(low, index)
            elif prefix == "<=":
                high = min(high, index)
            elif prefix == "!":
                exclude.add(name)
            else:
                include.add(name)
    allowed = [i for i, n in enumerate(names)
               if (not include or n in include) and n not in exclude and low <= i <= high
               and n not in _OBSOLETE]
    if not allowed:
        raise ConfigError("no TLS protocol left in the list", param=param or None)
    return PROTOCOLS[names[min(allowed)]], PROTOCOLS[names[max(allowed)]]


def _optional(cfg, name: str) -> str:
    """A parameter that the table may not (yet) know: its value, or "" when unset."""
    try:
        return str(cfg[name])
    except KeyError:
        return ""


def _resolve(cfg, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else cfg.config_dir.absolute().parent / path


def _readable(path: Path, param: str) -> Path:
    """The path, after proving it can be read: a clear error beats OpenSSL's."""
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}", param=param) from None
    return path


def _ssl_call(fn, param: str, message: str) -> None:
    try:
        fn()
    except SSL.Error as e:
        raise ConfigError(f"{message}: {_openssl_reason(e)}", param=param) from None


def _load_cert_and_key(ctx: SSL.Context, cfg, cert_param: str, key_param: str) -> None:
    cert = _readable(cfg.path(cert_param), cert_param)
    key = _readable(cfg.path(key_param), key_param) if cfg[key_param] else cert
    _ssl_call(lambda: ctx.use_certificate_chain_file(str(cert)), cert_param,
              f"no usable certificate in {cert}")
    _ssl_call(lambda: ctx.use_privatekey_file(str(key)), key_param, f"no usable private key in {key}")
    _ssl_call(ctx.check_privatekey, key_param, f"private key in {key} does not match certificate {cert}")


def _load_chain_files(ctx: SSL.Context, cfg, names: tuple[str, ...], param: str) -> None:
    """smtpd_tls_chain_files / smtp_tls_chain_files: the files are read as
    one concatenation (postconf(5)), so a key may sit in the file before
    its certificate's."""
    paths = [_resolve(cfg, name) for name in names]
    data = b"\n".join(_readable(path, param).read_bytes() for path in paths)
    _load_chains(ctx, data, ", ".join(str(p) for p in paths), param)


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)


def _load_chains(ctx: SSL.Context, data: bytes, where: str, param: str) -> None:
    """PEM data of one or more chains, each a private key followed by its
    certificate chain, leaf first (smtpd_tls_chain_files, tls_server_sni_maps).

    XXX OpenSSL keeps one certificate per key type but one list of extra
    chain certificates per context, so the intermediates of every chain
    are sent with every leaf. Harmless for peers, but a few bytes more.
    """
    chains: list[tuple[bytes, list[bytes]]] = []
    for block in _PEM_BLOCK.finditer(data):
        if block.group(1).endswith(b"PRIVATE KEY"):
            chains.append((block.group(0), []))
        elif block.group(1) == b"CERTIFICATE" and chains:
            chains[-1][1].append(block.group(0))
    if not chains or not all(certs for _, certs in chains):
        raise ConfigError(f"no private key and certificate in {where}", param=param)
    for key_pem, cert_pems in chains:
        try:
            key = load_pem_private_key(key_pem, password=None)
            certs = [x509.load_pem_x509_certificate(c) for c in cert_pems]
        except (ValueError, TypeError) as e:
            raise ConfigError(f"no private key and certificate in {where}: {e}", param=param) from None
        _ssl_call(lambda: ctx.use_privatekey(key), param, f"unusable private key in {where}")
        _ssl_call(lambda: ctx.use_certificate(certs[0]), param, f"unusable certificate in {where}")
        _ssl_call(ctx.check_privatekey, param,
                  f"private key in {where} does not match its certificate")
        for cert in certs[1:]:
            _ssl_call(lambda c=cert: ctx.add_extra_chain_cert(c), param,
                      f"unusable chain certificate in {where}")


class _SniSelector:
    """The servername callback of a context with tls_server_sni_maps
    (Postfix tls_server.c server_sni_callback): the client's SNI name, if a
    valid hostname, is looked up as is, then as ".parent" domains; a match
    switches the session to a context holding that entry's chains (built
    once per entry). What happened is left on the engine (sni, sni_note)
    for the server to log with the client's name."""

    def __init__(self, lookup: SniLookup) -> None:
        self._lookup = lookup
        self._contexts: dict[bytes, SSL.Context] = {}

    def __call__(self, conn: SSL.Connection) -> None:
        engine = conn.get_app_data()
        raw = conn.get_servername()
        if not raw:
            return
        name = raw.decode("ascii", "replace")
        if not valid_hostname(name):
            engine.sni_note = ("invalid", name)
            return
        key, pem = name.lower(), None
        while pem is None:
            pem = self._lookup(key)
            dot = key.find(".", 1)
            if pem is not None or dot < 0:
                break
            key = key[dot:]
        if pem is None:
            engine.sni_note = ("unmatched", name)
            return
        ctx = self._contexts.get(pem)
        if ctx is None:
            ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
            try:
                _load_chains(ctx, pem, f"the tls_server_sni_maps entry for {key}",
                             "tls_server_sni_maps")
            except ConfigError as e:
                engine.sni_note = ("bad", f"{name}: {e}")
                return
            ctx.set_session_id(_SESSION_ID_CONTEXT)
            self._contexts[pem] = ctx
        conn.set_context(ctx)
        engine.sni = name


def sni_note_text(engine: TlsEngine, namaddr: str) -> tuple[str, str] | None:
    """sni_note_text - (log level, line) for what the SNI lookup of a
    server session found amiss, as Postfix's smtpd logs it; None if nothing."""
    if engine.sni_note is None:
        return None
    kind, name = engine.sni_note
    if kind == "invalid":
        return "warning", f"TLS SNI from {namaddr} is invalid: {name}"
    if kind == "unmatched":
        return "info", f"TLS SNI {name} from {namaddr} not matched, using default chain"
    return "warning", f"TLS SNI {name}"


def _verify_callback(conn: SSL.Connection, cert, errnum: int, depth: int, ok: int) -> bool:
    """Record each verification failure and let the handshake go on: as in
    Postfix, the level decides afterwards (verify_failure)."""
    if not ok:
        issuer = ""
        if errnum in _UNTRUSTED_ISSUER:
            buf = _ffi.new("char[]", 256)
            _lib.X509_NAME_oneline(_lib.X509_get_issuer_name(cert._x509), buf, 256)
            issuer = _ffi.string(buf).decode("latin-1")
        conn.get_app_data()._verify_errors.append((depth, errnum, issuer))
    return True


# X509_V_ERR_* codes that Postfix's tls_log_verify_error() words specially.
_UNTRUSTED_ISSUER = (_lib.X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
                     _lib.X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN)
_NOT_YET_VALID = (_lib.X509_V_ERR_CERT_NOT_YET_VALID, _lib.X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD)
_EXPIRED = (_lib.X509_V_ERR_CERT_HAS_EXPIRED, _lib.X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD)
# The name checks' failures, and the later checks (internal_verify) whose
# failures OpenSSL reports after them.
_NAME_ERRORS = {"hostname": _lib.X509_V_ERR_HOSTNAME_MISMATCH, "ip": _lib.X509_V_ERR_IP_ADDRESS_MISMATCH}
_LATER_CHECKS = frozenset((_lib.X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE,
                           _lib.X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY,
                           _lib.X509_V_ERR_CERT_SIGNATURE_FAILURE) + _NOT_YET_VALID + _EXPIRED)
# X509_V_ERR_DANE_NO_MATCH: Postfix checks fingerprints as DANE-EE records,
# so a fingerprint that matches none fails with this code.
DANE_NO_MATCH = 65


def verify_failure(engine: TlsEngine, namaddr: str) -> str | None:
    """verify_failure - Postfix's log line for the reason the peer's
    certificate did not verify, or None when it did (tls_verify.c
    tls_log_verify_error: the failure nearest the leaf, the first of equals).

    namaddr: "mx.example.com[192.0.2.1]:25"."""
    if not engine._verify_errors:
        return None
    depth, err, issuer = min(engine._verify_errors, key=lambda e: e[0])
    purpose = "CA" if depth > 0 else "client" if engine.server_side else "server"
    failed = f"certificate verification failed for {namaddr}"
    if err == _lib.X509_V_ERR_CERT_UNTRUSTED:
        return f"{failed}: not trusted by local or TLSA policy"
    if err == _lib.X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        return f"{failed}: self-signed certificate"
    if err in _UNTRUSTED_ISSUER:
        return f"{failed}: untrusted issuer {_printable(issuer or '<unknown>')}"
    if err in _NOT_YET_VALID:
        return f"{purpose} {failed}: certificate not yet valid"
    if err in _EXPIRED:
        return f"{purpose} {failed}: certificate has expired"
    if err == _lib.X509_V_ERR_INVALID_PURPOSE:
        return f"{failed}: not designated for use as a {purpose} certificate"
    if err == _lib.X509_V_ERR_CERT_CHAIN_TOO_LONG:
        return f"{failed}: certificate chain longer than limit({depth - 1})"
    text = "no matching DANE TLSA records" if err == DANE_NO_MATCH else _verify_error_string(err)
    return f"{purpose} {failed}: num={err}:{text}"


def _printable(text: str) -> str:
    """Postfix printable(): what is not printable ASCII becomes "?"."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)


# -- the engine -----------------------------------------------------------------


class TlsEngine:
    """One TLS session as bytes in, bytes out (pyOpenSSL on memory BIOs).

    Not safe for use by two threads; under trio a reader task and a writer
    task may share it, since every method runs without awaiting.
    """

    __slots__ = ("_conn", "_policy", "_verify_errors", "server_side", "server_hostname",
                 "handshake_done", "peer_closed", "close_sent", "_names", "sni", "sni_note",
                 "__weakref__")

    def __init__(self, ctx: SSL.Context, *, server_side: bool, server_hostname: str | None = None,
                 session: SSL.Session | None = None, match_names: tuple[str, ...] = (),
                 sni: str | None = None) -> None:
        policy = ctx.get_app_data()
        if not isinstance(policy, _Policy):
            raise TypeError("TlsEngine needs a context from server_context() or client_context()")
        if policy.server_side != server_side:
            raise ValueError("server_side does not match the context")
        self._policy = policy
        # (depth, X509_V_ERR_*, issuer of the failing certificate for the
        # "untrusted issuer" codes) of every verification failure.
        self._verify_errors: list[tuple[int, int, str]] = []
        self.server_side = server_side
        self.server_hostname = server_hostname
        self.handshake_done = False
        self.sni: str | None = None                    # server: the SNI name an entry matched
        self.sni_note: tuple[str, str] | None = None   # server: what the SNI lookup found amiss
        self.peer_closed = False     # the peer sent close_notify
        self.close_sent = False
        # verify, secure: the names the certificate must carry (tls_match);
        # server_hostname alone when none are given.
        self._names: NameCheck | None = None
        if policy.enforce and not server_side:
            if not match_names and not server_hostname:
                raise ValueError("verify and secure levels need the server hostname to match")
            self._names = NameCheck.of(match_names or (server_hostname.strip("[]"),))
        self._conn = SSL.Connection(ctx, None)
        self._conn.set_app_data(self)
        if server_side:
            self._conn.set_accept_state()
            return
        self._conn.set_connect_state()
        if session is not None:
            # Offered for resumption; the caller keys its cache by next hop
            # and security level, since a resumed session is not re-verified.
            self._conn.set_session(session)
        if sni:
            # Postfix sends no SNI unless smtp_tls_servername (or a policy
            # entry's servername=) asks for it, even an address literal.
            self._conn.set_tlsext_host_name(sni.encode("idna"))

    # The four operations.

    def handshake_step(self, incoming: bytes) -> tuple[bytes, bool]:
        """Feed handshake bytes from the peer; return (bytes for the peer, handshake done)."""
        if incoming:
            self._conn.bio_write(incoming)
        if self.handshake_done:
            return self._drain(), True
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            return self._drain(), False
        except SSL.Error as e:
            raise self._error(e, "handshake") from None
        if self._names is not None:
            self._check_names()
        self.handshake_done = True
        return self._drain(), True

    def encrypt(self, plain: bytes) -> bytes:
        """Plaintext -> TLS records for the peer."""
        if not self.handshake_done:
            raise TlsError("TLS handshake not done", kind="handshake")
        out = []
        view = memoryview(plain)
        try:
            while view:
                sent = self._conn.send(view[:CHUNK])
                view = view[sent:]
                out.append(self._drain())
        except SSL.Error as e:
            raise self._error(e, "handshake") from None
        return b"".join(out)

    def decrypt(self, cipher: bytes) -> tuple[bytes, bytes]:
        """TLS records from the peer -> (plaintext, bytes for the peer).

        Plaintext b"" means "nothing yet" unless ``peer_closed`` became true
        (the peer's close_notify). Call with b"" to collect plaintext that
        arrived together with the end of the handshake.
        """
        if cipher:
            self._conn.bio_write(cipher)
        plain = []
        try:
            while True:
                plain.append(self._conn.recv(CHUNK))
        except SSL.WantReadError:
            pass
        except SSL.ZeroReturnError:
            self.peer_closed = True
        except SSL.Error as e:
            raise self._error(e, "handshake") from None
        return b"".join(plain), self._drain()

    def close_notify(self) -> bytes:
        """Our close_notify alert; after it nothing more can be encrypted."""
        if self.close_sent:
            return b""
        self.close_sent = True
        try:
            self._conn.shutdown()
        except SSL.Error:
            pass   # a broken session cannot say goodbye; the transport closes anyway
        return self._drain()

    # Facts.

    @property
    def session(self) -> SSL.Session | None:
        """The session to offer next time (client); TLSv1.3 has it only after the first decrypt()."""
        return self._conn.get_session()

    @property
    def session_reused(self) -> bool:
        return bool(_lib.SSL_session_reused(self._conn._ssl))   # native: SSL_session_reused

    @property
    def peer_certificate(self) -> x509.Certificate | None:
        return self._conn.get_peer_certificate(as_cryptography=True)

    @property
    def peer_trusted(self) -> bool:
        """The peer presented a certificate and every check on it passed."""
        return self.peer_certificate is not None and not self._verify_errors

    @property
    def name_checked(self) -> bool:
        """The certificate was matched to server_hostname (client verify/secure)."""
        return self._policy.enforce

    @property
    def asked_for_certificate(self) -> bool:
        return self._policy.ask_ccert

    @property
    def connection(self) -> SSL.Connection:
        """The pyOpenSSL Connection, for facts this class does not offer."""
        return self._conn

    @property
    def refused_names(self) -> tuple[str, ...]:
        """Match names left out: IP addresses after the first (Postfix warns of each)."""
        return self._names.refused if self._names is not None else ()

    # Internals.

    def _check_names(self) -> None:
        """The certificate's names, checked where OpenSSL's check_id()
        would: after the chain was built, before its signatures and dates
        (internal_verify), so verify_failure() names the same failure as
        Postfix. OpenSSL takes one name through pyOpenSSL; these are many."""
        failed = [(0, _NAME_ERRORS[kind], "") for kind in self._names.failures(self.peer_certificate)]
        errors = self._verify_errors
        at = next((i for i, e in enumerate(errors) if e[1] in _LATER_CHECKS), len(errors))
        errors[at:at] = failed

    def _drain(self) -> bytes:
        out = []
        try:
            while True:
                out.append(self._conn.bio_read(CHUNK))
        except SSL.WantReadError:
            pass
        return b"".join(out)

    def _error(self, e: SSL.Error, kind: str) -> TlsError:
        if isinstance(e, SSL.SysCallError):
            kind = "eof"
        return TlsError(_openssl_reason(e), kind=kind, outgoing=self._drain())


def _openssl_reason(e: Exception) -> str:
    """OpenSSL's error queue as text: "ssl3_read_bytes: sslv3 alert bad certificate"."""
    args = e.args[0] if e.args else None
    if isinstance(args, list) and args:
        parts = []
        for entry in args:
            if isinstance(entry, tuple) and len(entry) == 3:
                parts.append(entry[2] if not entry[1] else f"{entry[1]}: {entry[2]}")
            else:
                parts.append(str(entry))
        return "; ".join(parts)
    if isinstance(e, SSL.SysCallError):
        return "unexpected end of TLS stream"
    text = " ".join(str(a) for a in e.args)
    return text or type(e).__name__


# -- native: what pyOpenSSL does not expose ---------------------------------------
# These go through the cffi binding pyOpenSSL itself uses (OpenSSL._util),
# the same calls CPython's ssl module makes for check_hostname.


def _verify_error_string(errnum: int) -> str:
    """X509_verify_cert_error_string: "unable to get local issuer certificate"."""
    text = _lib.X509_verify_cert_error_string(errnum)
    return _ffi.string(text).decode("ascii", "replace") if text != _ffi.NULL else f"error {errnum}"


def _cipher_bits(conn: SSL.Connection) -> tuple[int, int]:
    """SSL_CIPHER_get_bits: (secret bits used, bits of the algorithm)."""
    cipher = _lib.SSL_get_current_cipher(conn._ssl)
    if cipher == _ffi.NULL:
        return 0, 0
    alg = _ffi.new("int *")
    use = _lib.SSL_CIPHER_get_bits(cipher, alg)
    return int(use), int(alg[0])


# -- the library, as postconf -T reports it ---------------------------------------------

def compile_version() -> str:
    """The OpenSSL version the TLS layer was built against, as "openssl
    version" prints it: OPENSSL_VERSION_TEXT, as Postfix's
    tls_compile_version() gives it. pyOpenSSL runs on cryptography's
    OpenSSL, which is built into its wheel, not the system's."""
    return _ffi.string(_lib.OPENSSL_VERSION_TEXT).decode("ascii", "replace")   # native


def run_version() -> str:
    """The OpenSSL version in use (Postfix's tls_run_version())."""
    return SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode("ascii", "replace")


def public_key_algorithms() -> tuple[str, ...]:
    """The certificate key algorithms of Postfix's tls_pkey_algorithms()
    that this OpenSSL supports, in its order: dsa, ecdsa, rsa. Postfix 3.7
    names no others, although it takes Ed25519 and Ed448 keys in
    smtpd_tls_chain_files, as mailsys does; so neither names them."""
    ecdsa = ec.ECDSA(hashes.SHA256())
    supported = {"dsa": _backend.dsa_supported(),
                 "ecdsa": _backend.elliptic_curve_signature_algorithm_supported(ecdsa, ec.SECP256R1()),
                 "rsa": _backend.rsa_padding_supported(padding.PKCS1v15())}
    return tuple(name for name, ok in supported.items() if ok)


# -- describing a session -------------------------------------------------------------


def fingerprints(cert: x509.Certificate, digest: str) -> tuple[str, str]:
    """fingerprints - the digests of a certificate (DER) and of its public
    key (DER SubjectPublicKeyInfo), as Postfix's tls_fprint.c writes them:
    upper-case hex bytes joined by ":"."""
    der = cert.public_bytes(Encoding.DER)
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return tuple(":".join(f"{b:02X}" for b in hashlib.new(digest, blob).digest())
                 for blob in (der, spki))


def describe(engine: TlsEngine, *, digest: str = "") -> TlsInfo:
    """describe - the session's facts as the Received: header and the log
    want them; with a digest, the peer certificate's fingerprints too."""
    if not engine.handshake_done:
        raise TlsError("TLS handshake not done", kind="handshake")
    conn = engine.connection
    usebits, algbits = _cipher_bits(conn)
    peer = engine.peer_certificate
    cert_print, pkey_print = fingerprints(peer, digest) if peer is not None and digest \
        else ("", "")
    return TlsInfo(
        protocol=conn.get_protocol_version_name(),
        cipher=conn.get_cipher_name() or "",
        usebits=usebits,
        algbits=algbits,
        details=_details(engine),
        peer_cn=_name_cn(peer.subject) if peer is not None else "",
        issuer_cn=_issuer_cn(peer.issuer) if peer is not None else "",
        peer_verified=engine.peer_trusted,
        ask_ccert=engine.asked_for_certificate,
        cert_fingerprint=cert_print,
        pkey_fingerprint=pkey_print,
    )


def peer_status(engine: TlsEngine) -> str:
    """peer_status - Postfix's word for the peer: Anonymous, Untrusted, Trusted or Verified."""
    if engine.peer_certificate is None:
        return "Anonymous"
    if not engine.peer_trusted:
        return "Untrusted"
    return "Verified" if engine.name_checked else "Trusted"


def summary(info: TlsInfo) -> str:
    """summary - "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" plus any details."""
    text = f"{info.protocol} with cipher {info.cipher} ({info.usebits}/{info.algbits} bits)"
    return f"{text} {info.details}" if info.details else text


def established_text(engine: TlsEngine, peer: str) -> str:
    """established_text - Postfix's log line after a handshake.

    smtpd: "Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.3 ...",
           with " to <SNI name>" after the client when a tls_server_sni_maps entry matched;
    smtp:  "Untrusted TLS connection established to mx.example.com[192.0.2.1]:25: TLSv1.3 ...".
    """
    how = "reused" if engine.session_reused else "established"
    direction = "from" if engine.server_side else "to"
    sni = f" to {engine.sni}" if engine.sni else ""
    return (f"{peer_status(engine)} TLS connection {how} {direction} {peer}{sni}: "
            f"{summary(describe(engine))}")


def _name_cn(name: x509.Name) -> str:
    return _name_attribute(name, NameOID.COMMON_NAME)


def _issuer_cn(name: x509.Name) -> str:
    # Postfix's tls_issuer_CN: the CN, else the organisation (many CAs have no CN).
    return _name_attribute(name, NameOID.COMMON_NAME) or _name_attribute(name, NameOID.ORGANIZATION_NAME)


def _name_attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = name.get_attributes_for_oid(oid)
    if not values:
        return ""
    value = values[0].value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _details(engine: TlsEngine) -> str:
    """ "key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest
    SHA256", as Postfix 3.7 (with OpenSSL 3) logs it: TLSv1.3 only
    (tls_misc.c tls_get_signature_params()); a client certificate adds
    "client-signature ... client-digest ..." on the server side."""
    conn = engine.connection
    if conn.get_protocol_version_name() != "TLSv1.3":
        return ""
    parts = []
    group = conn.get_group_name()
    if group:
        parts.append(f"key-exchange {_key_exchange(group)}")
    own = conn.get_certificate(as_cryptography=True)
    server_cert, client_cert = ((own, engine.peer_certificate) if engine.server_side
                                else (engine.peer_certificate, None))
    for side, cert in (("server", server_cert), ("client", client_cert)):
        if cert is not None:
            name, digest = _signature_of(cert.public_key())
            if name:
                parts.append(f"{side}-signature {name}")
                if digest:
                    parts.append(f"{side}-digest {digest}")
    return " ".join(parts)


# OpenSSL's TLS group names -> what Postfix logs: the key type's short name
# (OBJ_nid2sn), or ECDHE / DHE with the curve's OpenSSL 3 group name or the
# size. A group not listed (a hybrid one) is logged as OpenSSL names it.
_KEY_EXCHANGES = {"x25519": "X25519", "x448": "X448",
                  "secp256r1": "ECDHE (prime256v1)", "secp384r1": "ECDHE (secp384r1)",
                  "secp521r1": "ECDHE (secp521r1)"}
# cryptography's curve names -> OpenSSL 3's EVP_PKEY_get_group_name(), and the
# digest TLSv1.3 ties to each curve (RFC 8446 4.2.3: ecdsa_secp256r1_sha256 ...).
_EC_GROUPS = {"secp256r1": ("prime256v1", "SHA256"), "secp384r1": ("secp384r1", "SHA384"),
              "secp521r1": ("secp521r1", "SHA512")}


def _key_exchange(group: str) -> str:
    if group.startswith("ffdhe") and group[5:].isdigit():
        return f"DHE ({group[5:]} bits)"
    return _KEY_EXCHANGES.get(group, group)


def _signature_of(key) -> tuple[str, str]:
    """The signature algorithm of a TLSv1.3 certificate key and its digest,
    as Postfix names them. pyOpenSSL does not expose the negotiated scheme
    (SSL_get_peer_signature_nid): an ECDSA key's curve fixes its digest; an
    RSA key signs with RSA-PSS (RFC 8446 4.2.3) and SHA256, the first
    RSA-PSS scheme OpenSSL offers and the one it agrees on with its peers;
    Ed25519 and Ed448 have no separate digest."""
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA-PSS ({key.key_size} bits)", "SHA256"
    if isinstance(key, ec.EllipticCurvePublicKey):
        group, digest = _EC_GROUPS.get(key.curve.name, (key.curve.name, ""))
        return f"ECDSA ({group})", digest
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ED25519", ""
    if isinstance(key, ed448.Ed448PublicKey):
        return "ED448", ""
    return "", ""
