"""client_program - the smtp_* parameters as the smtp or the lmtp program reads them.

SYNOPSIS
    cfg = client_config(load(config_dir), "lmtp")
    cfg.smtp_helo_name          # the value of lmtp_lhlo_name
    cfg.smtp_connect_timeout    # the value of lmtp_connect_timeout

DESCRIPTION
    Postfix builds smtp(8) and lmtp(8) from one source; the program name
    decides the protocol, and lmtp_params.c binds the same variables the
    smtp client uses (var_smtp_*) to lmtp_* parameter names. mailsys does
    the same with one Config: client_config(cfg, "lmtp") is cfg with every
    smtp client parameter that has an lmtp twin (params.LMTP_NAMES,
    params.lmtp_name) set to "$<its twin>", so the client code reads its
    usual names and gets the lmtp values, defaults and master.cf -o
    overrides included. Each twin is parsed first, so a bad lmtp value is
    reported under its own name, file and line. client_config(cfg, "smtp")
    is cfg itself.

    The per-transport queue manager limits (smtp_destination_*_limit) are
    not mapped: qmgr reads them by transport name, not by program.

    Pure.
"""

from __future__ import annotations

from mailsys.config.loader import Config
from mailsys.config.params import PARAMS, lmtp_name

__all__ = ["PROGRAMS", "client_config", "twins"]

PROGRAMS = ("smtp", "lmtp")


def twins() -> dict[str, str]:
    """smtp client parameter -> the lmtp parameter that stands for it."""
    return {name: lmtp_name(name) for name in PARAMS
            if name.startswith("smtp_") and "_destination_" not in name
            and lmtp_name(name) in PARAMS}


def client_config(cfg: Config, program: str) -> Config:
    """cfg as the smtp or lmtp client program reads it (ValueError for another)."""
    if program == "smtp":
        return cfg
    if program != "lmtp":
        raise ValueError(f"no client program {program!r} (one of {', '.join(PROGRAMS)})")
    overrides = {}
    for smtp, lmtp in twins().items():
        cfg[lmtp]                       # a bad value is a ConfigError naming lmtp_*
        overrides[smtp] = f"${lmtp}"
    return cfg.with_overrides(overrides)
