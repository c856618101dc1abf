"""mailsys.config - main.cf and master.cf in Postfix's syntax, typed.

    from mailsys.config import load, Config, ServiceSpec, parse_master_cf

load() reads main.cf into an immutable Config whose values are typed by the
one parameter table (params.py); parse_master_cf() reads master.cf into
ServiceSpec rows. Lookup tables are in mailsys.config.tables. Pure apart
from reading the files it is pointed at.
"""

from mailsys.config.loader import Config, load
from mailsys.config.mastercf import ServiceSpec, parse_master_cf

__all__ = ["load", "Config", "ServiceSpec", "parse_master_cf"]
