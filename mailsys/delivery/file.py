"""file - deliver a message to a /file/name of an alias (Postfix local(8) file.c).

SYNOPSIS
    text = deliver_file("/var/log/mail.copy", entry, header, content, privs=(65534, 65534),
                        policy=LockPolicy(), limit=0)   # "delivered to file: /var/log/mail.copy"
    # or raises DeliveryError(dsn, text)

DESCRIPTION
    A path ending in ``/`` is a Maildir (``delivered to maildir: PATH``);
    any other is an mbox file the entry (mailsys.delivery.mbox_format) is
    appended to under $mailbox_delivery_lock's locks, as for a mailbox
    (mailsys.delivery.mbox), and the answer is ``delivered to file: PATH``.
    A failure reads ``cannot append message to file PATH: REASON``.

    The write is done with the rights of the alias (uid, gid, no other
    groups), as Postfix does it. A thread cannot change the rights of its
    process alone, so when mailsys runs as root the write happens in a
    forked child that drops to those ids first and reports back over a
    pipe (``DSN<tab>TEXT``, or the success text; ``warning: TEXT`` lines
    before it). The child touches nothing but the file system: it takes no
    lock another thread may hold (the parent holds this process's turn for
    the path while it waits, so the child skips it), never uses the
    inherited queue store, and ends with os._exit(). As in Postfix, a
    dot-lock that cannot be made because the directory is not writable for
    that user is skipped with a warning, the kernel locks still taken.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from mailsys.delivery import maildir, mbox
from mailsys.delivery.errors import DeliveryError
from mailsys.delivery.mbox_lock import LockPolicy, dotlock_path, in_process

__all__ = ["deliver_file"]


def _write(path: str, entry: bytes, header: bytes, content: bytes, policy: LockPolicy,
           limit: int, warn: Callable[[str], None], take_turns: bool = True) -> str:
    if path.endswith("/"):
        maildir.deliver(Path(path), header, content, limit=limit)
        return f"delivered to maildir: {path}"
    if "dotlock" in policy.styles and not os.access(Path(path).parent, os.W_OK):
        warn(f"unable to create lock file {dotlock_path(Path(path))}: {os.strerror(13)}")
        policy = replace(policy, styles=tuple(s for s in policy.styles if s != "dotlock"))
    mbox.append(Path(path), entry, policy=policy, limit=limit, take_turns=take_turns)
    return f"delivered to file: {path}"


def deliver_file(path: str, entry: bytes, header: bytes, content: bytes, *,
                 privs: tuple[int, int] | None, policy: LockPolicy = LockPolicy(),
                 limit: int = 0, warn: Callable[[str], None] = lambda text: None) -> str:
    """Append or deliver into path with the rights of privs (uid, gid); see DESCRIPTION."""
    try:
        if os.geteuid() != 0 or privs is None:
            return _write(path, entry, header, content, policy, limit, warn)
        if 0 in privs:
            raise DeliveryError("4.3.5", "mail system configuration error")
        with in_process(Path(path), policy):
            return _as_user(path, entry, header, content, privs, policy, limit, warn)
    except DeliveryError as e:
        raise DeliveryError(e.dsn, f"cannot append message to file {path}: {e.text}") from None


def _as_user(path: str, entry: bytes, header: bytes, content: bytes, privs: tuple[int, int],
             policy: LockPolicy, limit: int, warn: Callable[[str], None]) -> str:
    uid, gid = privs
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                    # the child: see DESCRIPTION
        code = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            try:
                answer = _write(path, entry, header, content, policy, limit,
                                lambda text: os.write(w, f"warning: {text}\n".encode()),
                                take_turns=False)
                code = 0
            except DeliveryError as e:
                answer = f"{e.dsn}\t{e.text}"
            except OSError as e:
                answer = f"4.3.0\terror writing message: {os.strerror(e.errno or 0)}"
            os.write(w, f"{answer}\n".encode("utf-8", "surrogateescape"))
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    with os.fdopen(r, "rb") as reader:
        while chunk := reader.read(65536):
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    answer = ""
    for line in b"".join(chunks).decode("utf-8", "replace").splitlines():
        if line.startswith("warning: "):
            warn(line[len("warning: "):])
        else:
            answer = line
    if os.waitstatus_to_exitcode(status) == 0 and answer:
        return answer
    dsn, _, text = answer.partition("\t")
    if not text:
        raise DeliveryError("4.3.0", f"error writing message: child status {status}")
    raise DeliveryError(dsn, text)
