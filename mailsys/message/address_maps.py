"""address_maps - cleanup(8)'s envelope address rewriting, as Postfix does it.

SYNOPSIS
    from mailsys.message.address_maps import AddressMaps, AliasError

    maps = AddressMaps(virtual_alias=[table], recipient_canonical=[...], ...)
    maps.sender("root@host.example.com")          # canonical, then masquerade
    maps.recipient("info+x@example.com")          # ["alice+x@example.net", ...]
    maps.bcc_for_sender(sender) / maps.bcc_for_recipient(rcpt)   # "" or an address
    # AliasError(warning): the expansion went past its limits (451 4.6.0)

DESCRIPTION
    What Postfix's cleanup does to each envelope address before the message
    is queued (cleanup_addr.c, cleanup_map11.c, cleanup_map1n.c,
    cleanup_masq.c), in its order:

    sender      sender_canonical_maps, then canonical_maps (each when its
                *_canonical_classes names envelope_sender), then
                masquerade_domains (when masquerade_classes does)
    recipient   recipient_canonical_maps, canonical_maps, masquerading (with
                envelope_recipient, not in the default classes), then
                virtual_alias_maps, which may give many addresses

    A table lookup follows mail_addr_find(): user+ext@domain, then
    user@domain, then (for a domain of this host, or no domain) user+ext and
    user, then @domain. When the match did not include the address extension
    (recipient_delimiter) and propagate_unmatched_extensions names
    "canonical" or "virtual", the extension is put into each result. A
    result "@otherdomain" keeps the user. A result is a list of addresses
    (commas or spaces); an unqualified one gets @$myorigin.

    A canonical map is one to one: its first address counts (a warning
    names a multi-valued entry), applied until an address maps to itself or
    to nothing, at most 100 times. virtual_alias_maps expands each address
    in turn, results included, until none maps any further; an address
    that expands into itself (a list that keeps the original recipient) is
    not expanded again. More than virtual_alias_expansion_limit addresses,
    a nesting deeper than virtual_alias_recursion_limit or a result longer
    than virtual_alias_address_length_limit is Postfix's "4.6.0 Alias
    expansion error": the message is not accepted, try again later.

    masquerade_domains: an address in a subdomain of a listed domain is
    rewritten to that domain (the first match in the list decides; an
    exact match leaves it alone; "!domain" keeps that subdomain as it is),
    except for the user names in masquerade_exceptions.

    The BCC lookups use the same key order: sender_bcc_maps with the
    rewritten sender, recipient_bcc_maps with each rewritten recipient
    (before virtual alias expansion), as Postfix does.

    Everything here is pure: tables are objects with lookup(key) -> str |
    None, and is_local(domain) says whether a domain is this host's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from mailsys.frozen import frozen
from mailsys.message.address import lookup_keys
from mailsys.message.address_list import rewrite_addresses
from mailsys.message.envelope import Notify, Recipient

ALIAS_ERROR = ("4.6.0", "Alias expansion error")

# header_opts.c: the headers whose addresses are senders (HDR_OPT_SENDER)
# and recipients (HDR_OPT_RECIP, HDR_OPT_XRECIP) to the rewriting.
SENDER_HEADERS = frozenset((
    "disposition-notification-to", "errors-to", "from", "mail-followup-to", "reply-to",
    "resent-from", "resent-sender", "return-path", "return-receipt-to", "sender"))
RECIPIENT_HEADERS = frozenset((
    "apparently-to", "bcc", "cc", "resent-bcc", "resent-cc", "resent-reply-to", "resent-to",
    "to"))
CANONICAL_RECURSION = 100           # cleanup_map11.c MAX_RECURSION

# Characters that may make a header value more than one address.
_LIST_SYNTAX = frozenset(',;:"(')


class Table(Protocol):
    def lookup(self, key: str) -> str | None: ...


class AliasError(Exception):
    """A virtual alias expansion went past a limit; str() is Postfix's warning."""


@frozen
class AddressMaps:
    """The rewriting settings of one cleanup; see the module description."""

    myorigin: str = "localhost"
    delimiter: str = ""                       # recipient_delimiter
    propagate: frozenset[str] = frozenset(("canonical", "virtual"))
    is_local: Callable[[str], bool] = lambda domain: False
    sender_canonical: Sequence[Table] = ()    # already filtered by the classes
    recipient_canonical: Sequence[Table] = ()
    canonical_sender: Sequence[Table] = ()    # canonical_maps, when it applies to senders
    canonical_recipient: Sequence[Table] = ()
    masquerade_domains: tuple[str, ...] = ()
    masquerade_exceptions: frozenset[str] = frozenset()
    masquerade_sender: bool = True
    masquerade_recipient: bool = False
    header_sender_canonical: Sequence[Table] = ()      # the header_* classes
    header_canonical_sender: Sequence[Table] = ()
    header_recipient_canonical: Sequence[Table] = ()
    header_canonical_recipient: Sequence[Table] = ()
    masquerade_header_sender: bool = True
    masquerade_header_recipient: bool = True
    virtual_alias: Sequence[Table] = ()
    recursion_limit: int = 1000
    expansion_limit: int = 1000
    length_limit: int = 1000
    always_bcc: str = ""
    sender_bcc: Sequence[Table] = ()
    recipient_bcc: Sequence[Table] = ()
    # header_address_token_limit: cleanup parses so many tokens of an address
    # header, and a header it rewrites keeps no more (0: no limit).
    token_limit: int = 10240

    @classmethod
    def from_config(cls, cfg, open_table: Callable[[str], Table],
                    is_local: Callable[[str], bool]) -> AddressMaps:
        """The settings of a mailsys.config.Config; open_table opens one table spec."""
        def tables(name: str, classes: str | None = None,
                   wanted: str = "") -> tuple[Table, ...]:
            if classes is not None and wanted not in cfg[classes]:
                return ()
            return tuple(open_table(spec) for spec in cfg[name])

        masq_classes = cfg.masquerade_classes
        return cls(
            myorigin=cfg.myorigin, delimiter=cfg.recipient_delimiter,
            propagate=frozenset(cfg.propagate_unmatched_extensions), is_local=is_local,
            sender_canonical=tables("sender_canonical_maps", "sender_canonical_classes",
                                    "envelope_sender"),
            recipient_canonical=tables("recipient_canonical_maps",
                                       "recipient_canonical_classes", "envelope_recipient"),
            canonical_sender=tables("canonical_maps", "canonical_classes", "envelope_sender"),
            canonical_recipient=tables("canonical_maps", "canonical_classes",
                                       "envelope_recipient"),
            masquerade_domains=tuple(cfg.masquerade_domains),
            masquerade_exceptions=frozenset(u.lower() for u in cfg.masquerade_exceptions),
            masquerade_sender="envelope_sender" in masq_classes,
            masquerade_recipient="envelope_recipient" in masq_classes,
            header_sender_canonical=tables("sender_canonical_maps", "sender_canonical_classes",
                                           "header_sender"),
            header_canonical_sender=tables("canonical_maps", "canonical_classes",
                                           "header_sender"),
            header_recipient_canonical=tables("recipient_canonical_maps",
                                              "recipient_canonical_classes",
                                              "header_recipient"),
            header_canonical_recipient=tables("canonical_maps", "canonical_classes",
                                              "header_recipient"),
            masquerade_header_sender="header_sender" in masq_classes,
            masquerade_header_recipient="header_recipient" in masq_classes,
            virtual_alias=tables("virtual_alias_maps"),
            recursion_limit=cfg.virtual_alias_recursion_limit,
            expansion_limit=cfg.virtual_alias_expansion_limit,
            length_limit=cfg.virtual_alias_address_length_limit,
            always_bcc=cfg.always_bcc.strip(), sender_bcc=tables("sender_bcc_maps"),
            recipient_bcc=tables("recipient_bcc_maps"),
            token_limit=cfg.header_address_token_limit)

    @property
    def active(self) -> bool:
        """Whether any rewriting or BCC is configured at all."""
        return bool(self.sender_canonical or self.recipient_canonical or self.canonical_sender
                    or self.canonical_recipient or self.masquerade_domains or self.virtual_alias
                    or self.always_bcc or self.sender_bcc or self.recipient_bcc)

    # -- the envelope ----------------------------------------------------------

    def envelope(self, sender: str, recipients: Iterable[Recipient],
                 warn: Callable[[str], None],
                 orcpt_of: Callable[[str], str] | None = None
                 ) -> tuple[str, tuple[Recipient, ...]]:
        """The sender and recipients as cleanup queues them: each recipient
        rewritten and expanded (orig= the address as received when that
        changed it), then the BCC addresses (NOTIFY=NEVER), without
        duplicates. orcpt_of: the DSN original recipient of a recipient
        that has none, from its address after the one-to-one rewriting
        (none for the BCC addresses). AliasError when an expansion went
        past a limit."""
        sender = self.sender(sender, warn)
        out: list[Recipient] = []
        seen: set[str] = set()

        def add(rcpt: Recipient) -> None:
            key = rcpt.address.lower()
            if key not in seen:
                seen.add(key)
                out.append(rcpt)

        bccs = [self.always_bcc, self.bcc_for_sender(sender)]
        for r in recipients:
            address = self.canonical_recipient_of(r.address, warn)
            bccs.append(self.bcc_for_recipient(address))
            orcpt = r.orcpt or (orcpt_of(address) if orcpt_of is not None else "")
            for final in self.expand(address):
                orig = r.orig or (r.address if final != r.address else "")
                add(Recipient(final, orig=orig, orcpt=orcpt, notify=r.notify))
        for bcc in bccs:
            for final in self.expand(bcc) if bcc else ():
                add(Recipient(final, notify=(Notify.NEVER,)))
        return sender, tuple(out)

    def sender(self, address: str, warn: Callable[[str], None]) -> str:
        """The rewritten envelope sender ("" stays "")."""
        if not address:
            return address
        address = self._canonical(address, self.sender_canonical, "sender_canonical_maps", warn)
        address = self._canonical(address, self.canonical_sender, "canonical_maps", warn)
        if self.masquerade_sender:
            address = masquerade(address, self.masquerade_domains, self.masquerade_exceptions)
        return address

    def canonical_recipient_of(self, address: str, warn: Callable[[str], None]) -> str:
        """A recipient after the one-to-one steps (canonical maps, masquerading)."""
        address = self._canonical(address, self.recipient_canonical, "recipient_canonical_maps",
                                  warn)
        address = self._canonical(address, self.canonical_recipient, "canonical_maps", warn)
        if self.masquerade_recipient:
            address = masquerade(address, self.masquerade_domains, self.masquerade_exceptions)
        return address

    def header_rewriter(self, domain: str, mappings: bool,
                        warn: Callable[[str], None]) -> Callable[[str, str], str | None]:
        """rewrite(name, header) for cleanup's header pass: the header with
        its addresses rewritten, or None when nothing changed. An address
        without a domain gets @domain ("" leaves it); with mappings, the
        canonical maps and masquerading of the header_sender and
        header_recipient classes apply, as to the envelope."""
        masq = self.masquerade_domains if mappings else ()

        def one(address: str, own: Sequence[Table], own_title: str,
                common: Sequence[Table], masquerading: bool) -> str:
            if domain and "@" not in address:
                address = f"{address}@{domain}"
            if mappings:
                address = self._canonical(address, own, own_title, warn)
                address = self._canonical(address, common, "canonical_maps", warn)
            if masq and masquerading:
                address = masquerade(address, masq, self.masquerade_exceptions)
            return address

        def sender(address: str) -> str:
            return one(address, self.header_sender_canonical, "sender_canonical_maps",
                       self.header_canonical_sender, self.masquerade_header_sender)

        def recipient(address: str) -> str:
            return one(address, self.header_recipient_canonical, "recipient_canonical_maps",
                       self.header_canonical_recipient, self.masquerade_header_recipient)

        # Without maps to apply only unqualified addresses change, and a
        # value that is one qualified address (the usual From: and To:)
        # has none: it is not even parsed.
        qualify_only = not (mappings and (
            self.header_sender_canonical or self.header_canonical_sender
            or self.header_recipient_canonical or self.header_canonical_recipient or masq))

        def rewrite(name: str, header: str) -> str | None:
            colon = header.index(":") + 1
            value = header[colon:]
            if qualify_only and "@" in value and not _LIST_SYNTAX.intersection(value):
                return None
            one = sender if name in SENDER_HEADERS else recipient
            new = rewrite_addresses(value, one, self.token_limit)
            return None if new == value else header[:colon] + new
        return rewrite

    def expand(self, address: str) -> list[str]:
        """virtual_alias_maps expansion of one address (AliasError past a limit)."""
        if not self.virtual_alias:
            return [address]
        title = "virtual_alias_maps"
        found = [address]
        expanded_to_self: set[str] = set()
        i = 0
        while i < len(found):
            if len(found) > self.expansion_limit:
                raise AliasError(f"unreasonable {title} map expansion size for {address} -- "
                                 "message not accepted, try again later")
            count = 0
            while found[i].lower() not in expanded_to_self:
                if count >= self.recursion_limit:
                    raise AliasError(f"unreasonable {title} map nesting for {address} -- "
                                     "message not accepted, try again later")
                current = found[i]
                results = self._map(self.virtual_alias, current, "virtual", title)
                if results is None:
                    break
                for n, result in enumerate(results):
                    if len(result) > self.length_limit:
                        raise AliasError(f"unreasonable {title} result {result[:300]}... -- "
                                         "message not accepted, try again later")
                    if n == 0:
                        found[i] = result
                    else:
                        found.append(result)
                    if result.lower() == current.lower():
                        expanded_to_self.add(current.lower())
                count += 1
            i += 1
        return found

    def bcc_for_sender(self, sender: str) -> str:
        return self._bcc(self.sender_bcc, sender) if sender else ""

    def bcc_for_recipient(self, recipient: str) -> str:
        return self._bcc(self.recipient_bcc, recipient)

    # -- lookups ---------------------------------------------------------------

    def _bcc(self, tables: Sequence[Table], address: str) -> str:
        if not tables:
            return ""
        found = self.find(tables, address)
        if found is None:
            return ""
        results = _addresses(found[0])
        return self._qualify(results[0]) if results else ""

    def _canonical(self, address: str, tables: Sequence[Table], title: str,
                   warn: Callable[[str], None]) -> str:
        if not tables or not address:
            return address
        for _ in range(CANONICAL_RECURSION):
            results = self._map(tables, address, "canonical", title)
            if results is None:
                return address
            if len(results) > 1:
                warn(f"multi-valued {title} entry for {address}")
            new = results[0]
            if new.lower() == address.lower():
                return new
            address = new
        warn(f"unreasonable {title} map nesting for {address} -- "
             "message not accepted, try again later")
        return address

    def map11(self, tables: Sequence[Table], address: str, kind: str, title: str,
              warn: Callable[[str], None]) -> str | None:
        """One lookup, no recursion (Postfix smtp_map11_external(), the
        smtp client's generic mapping): the first address the tables give,
        or None; a list warns "multi-valued <title> result for <address>".
        ``kind`` names the propagate_unmatched_extensions class ("generic").
        AliasError for a result that is no address."""
        if not tables:
            return None
        results = self._map(tables, address, kind, title)
        if results is None:
            return None
        if len(results) > 1:
            warn(f"multi-valued {title} result for {address}")
        return results[0]

    def _map(self, tables: Sequence[Table], address: str, kind: str,
             title: str) -> list[str] | None:
        """mail_addr_map(): the addresses address maps to, or None."""
        found = self.find(tables, address)
        if found is None:
            return None
        value, extension = found
        local, at, domain = address.rpartition("@")
        if not at:
            local = address
        if value.startswith("@"):
            # "@otherdomain": the user, without the extension, in that domain.
            base = local[:len(local) - len(extension)] if extension else local
            value = base + value
        results = _addresses(value)
        if not results:
            raise AliasError(f"{title} lookup of {address} returns non-address result "
                             f'"{value}"')
        if extension and kind in self.propagate:
            results = [_with_extension(r, extension) for r in results]
        return [self._qualify(r) for r in results]

    def find(self, tables: Sequence[Table], address: str) -> tuple[str, str] | None:
        """mail_addr_find(): (the value, the extension the matching key left
        out, or "") for the first key some table knows."""
        keys = lookup_keys(address, self.delimiter, self.is_local)
        for key, unmatched in keys:
            for table in tables:
                value = table.lookup(key)
                if value is not None:
                    return value, unmatched
        return None

    def _qualify(self, address: str) -> str:
        return address if "@" in address else f"{address}@{self.myorigin}"


def masquerade(address: str, domains: Iterable[str], exceptions: frozenset[str]) -> str:
    """address with its domain masqueraded (cleanup_masquerade_internal)."""
    local, at, domain = address.rpartition("@")
    if not at or not domain or domain.startswith("[") or local.lower() in exceptions:
        return address
    lower = domain.lower()
    for item in domains:
        excluded = item.startswith("!")
        masq = item[1:].lower() if excluded else item.lower()
        if not masq:
            continue
        if masq == lower:
            break                       # the domain itself: nothing to hide
        if lower.endswith("." + masq):
            return address if excluded else f"{local}@{masq}"
    return address


def _with_extension(address: str, extension: str) -> str:
    local, at, domain = address.rpartition("@")
    return f"{local}{extension}@{domain}" if at else address + extension


def _addresses(value: str) -> list[str]:
    """The addresses of a table result: separated by commas or white space,
    <angle brackets> removed; a "quoted local part" stays one address."""
    out: list[str] = []
    current: list[str] = []
    quoted = False
    for c in value:
        if c == '"':
            quoted = not quoted
        if not quoted and (c == "," or c.isspace()):
            if current:
                out.append("".join(current))
                current = []
            continue
        current.append(c)
    if current:
        out.append("".join(current))
    return [a[1:-1] if a.startswith("<") and a.endswith(">") else a for a in out if a != "<>"]


__all__ = ["ALIAS_ERROR", "AddressMaps", "AliasError", "RECIPIENT_HEADERS", "SENDER_HEADERS",
           "masquerade"]
