"""getopt_errors - the line GNU getopt prints for a bad command line.

SYNOPSIS
    except getopt.GetoptError as e:
        print(f"postsuper: {complaint(e)}", file=sys.stderr)   # then the usage line

DESCRIPTION
    Postfix's tools parse their options with the C library's getopt(),
    which on Linux (glibc) prints its own line before the tool's fatal
    usage line:

        postsuper: invalid option -- 'x'
        postsuper: option requires an argument -- 'd'

    Python's getopt raises GetoptError with its own wording instead;
    complaint() gives glibc's, or None for an error the tool raised itself
    (no option at fault, e.g. two modes at once), where getopt() says
    nothing.
"""

from __future__ import annotations

import getopt


def complaint(err: getopt.GetoptError) -> str | None:
    """glibc getopt()'s message for err, without the program name."""
    if not err.opt:
        return None
    if "requires argument" in err.msg:
        return f"option requires an argument -- '{err.opt}'"
    return f"invalid option -- '{err.opt}'"
