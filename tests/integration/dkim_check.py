"""dkim_check - verify one DKIM-Signature (RFC 6376) against a known public key.

    verify(message_bytes, public_key_pem) -> dict of the signature's tags
    (raises AssertionError naming what does not match)

For tests only: the key comes from the test, not from DNS, so OpenDKIM's
signature can be checked without a name server. rsa-sha256, simple and
relaxed canonicalization of header and body (RFC 6376 3.4), the l= tag
not supported (OpenDKIM does not write it unless told to).
"""

from __future__ import annotations

import base64
import hashlib
import re

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding


def _split(message: bytes) -> tuple[list[bytes], bytes]:
    head, _, body = message.partition(b"\r\n\r\n")
    fields: list[bytes] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        else:
            fields.append(line)
    return fields, body


def _relaxed_header(field: bytes) -> bytes:
    name, _, value = field.partition(b":")
    value = re.sub(rb"[ \t]+", b" ", value.replace(b"\r\n", b"")).strip(b" ")
    return name.strip().lower() + b":" + value


def _body(body: bytes, relaxed: bool) -> bytes:
    if relaxed:
        lines = [re.sub(rb"[ \t]+", b" ", line).rstrip(b" ") for line in body.split(b"\r\n")]
        body = b"\r\n".join(lines)
    body = body.rstrip(b"\r\n")
    if relaxed:
        return body + b"\r\n" if body else b""
    return body + b"\r\n"


def _tags(value: bytes) -> dict[str, str]:
    text = re.sub(r"\s+", "", value.decode())
    return dict(part.split("=", 1) for part in text.split(";") if part)


def verify(message: bytes, public_pem: bytes) -> dict[str, str]:
    fields, body = _split(message)
    [sig_field] = [f for f in fields if f.lower().startswith(b"dkim-signature:")]
    tags = _tags(sig_field.partition(b":")[2])
    assert tags["a"] == "rsa-sha256", tags
    head_c, _, body_c = tags.get("c", "simple/simple").partition("/")
    body_c = body_c or "simple"
    digest = base64.b64encode(hashlib.sha256(_body(body, body_c == "relaxed")).digest()).decode()
    assert digest == tags["bh"], f"body hash {digest} != bh={tags['bh']}"

    def canon(field: bytes) -> bytes:
        return _relaxed_header(field) if head_c == "relaxed" else field

    # Each name in h= takes the lowest not yet used field of that name.
    used: set[int] = set()
    signed = b""
    for name in tags["h"].split(":"):
        for i in range(len(fields) - 1, -1, -1):
            if i not in used and fields[i].partition(b":")[0].strip().lower() == name.lower().encode():
                used.add(i)
                signed += canon(fields[i]) + b"\r\n"
                break
    # b= itself emptied; "bh=" must stay: only the tag named exactly b.
    unsigned = re.sub(rb"([;:\s])b=[^;]*", rb"\1b=", sig_field)
    signed += canon(unsigned)
    key = serialization.load_pem_public_key(public_pem)
    key.verify(base64.b64decode(re.sub(r"\s", "", tags["b"])), signed, padding.PKCS1v15(),
               hashes.SHA256())          # raises InvalidSignature
    return tags
