"""sni_maps - tls_server_sni_maps: an SNI name's keys and certificate chains.

SYNOPSIS
    from mailsys.runtime.sni_maps import SniMaps
    ctx = server_context(cfg, sni=SniMaps.from_config(cfg))   # None when unset

DESCRIPTION
    A lookup key (an SNI name, or a ".parent.domain" form: mailsys.tls
    decides which) found in the first table that has it gives PEM private
    keys and certificate chains, as Postfix 3.4+ reads them (postconf(5)
    tls_server_sni_maps):

      hash, btree, lmdb   tables built by postmap -F: the value is the
                          base64 of the files' contents;
      any other type      (texthash, inline, regexp, pcre, static, ...) the
                          value names the files, comma or space separated,
                          read once and kept.

    A value that cannot be used (bad base64, a file that cannot be read) is
    a warning, and the name is then treated as not matched.
"""

from __future__ import annotations

import base64
import binascii
import os

import structlog

from mailsys.config.file_values import read_files
from mailsys.config.tables import COMPILED_TYPES, open_table

__all__ = ["SniMaps"]

log = structlog.get_logger()


class SniMaps:
    """lookup key -> PEM bytes, or None (see the module description)."""

    def __init__(self, tables: list[tuple[str, object]]) -> None:
        self._tables = tables
        self._files: dict[str, bytes] = {}

    @classmethod
    def from_config(cls, cfg) -> "SniMaps | None":
        specs = tuple(cfg.tls_server_sni_maps)
        if not specs:
            return None
        return cls([(spec.partition(":")[0], open_table(spec, cfg)) for spec in specs])

    def __call__(self, key: str) -> bytes | None:
        for kind, table in self._tables:
            value = table.lookup(key)
            if value is None:
                continue
            if kind in COMPILED_TYPES:
                try:
                    return base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    log.warning(f"tls_server_sni_maps: the {kind} entry for {key} is not"
                                " base64 (was the table built with postmap -F?)")
                    return None
            pem = self._files.get(value)
            if pem is None:
                try:
                    pem = self._files[value] = read_files(value)
                except OSError as e:
                    log.warning(f"tls_server_sni_maps: cannot read {e.filename}:"
                                f" {e.strerror or os.strerror(e.errno or 0)}")
                    return None
            return pem
        return None
