"""milter - the Sendmail milter protocol, sans-IO (Postfix MILTER_README).

protocol      the wire: packets, commands, replies, SMFIF_/SMFIP_ flags
conversation  one milter's state across an SMTP session: which step goes,
              with which macros, which reply is awaited, what it may change
edits         a message as milters see it, and their changes applied
              (with milter_header_checks on the headers they add)
macros        macro values, some worked out only when a milter asks

Pure: imports no trio, socket, ssl or lmdb. mailsys.runtime.milter does the
I/O and mailsys.runtime.smtpd_milters the smtpd side.
"""
