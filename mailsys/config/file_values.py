"""file_values - table values that name files whose contents are wanted.

SYNOPSIS
    from mailsys.config.file_values import read_files
    pem = read_files("/etc/postfix/rsa.pem, /etc/postfix/ecdsa.pem")

DESCRIPTION
    postmap -F stores the contents of the files a value names (base64),
    and tls_server_sni_maps reads them from tables that are not built by
    postmap (texthash, inline, regexp, ...). The names are separated by
    commas and/or whitespace; the contents are joined with a newline
    between two files, as Postfix's postmap -F joins them.
"""

from __future__ import annotations

import re

__all__ = ["FILE_SEPARATORS", "file_names", "read_files"]

FILE_SEPARATORS = ", \t\r\n"


def file_names(value: str) -> list[str]:
    return [n for n in re.split(f"[{re.escape(FILE_SEPARATORS)}]+", value) if n]


def read_files(value: str) -> bytes:
    """The contents of the files value names; OSError for one that cannot be read."""
    parts = []
    for name in file_names(value):
        with open(name, "rb") as f:
            parts.append(f.read())
    return b"\n".join(parts)
