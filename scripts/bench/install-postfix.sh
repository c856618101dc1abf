#!/bin/sh
# install-postfix.sh - install Debian's postfix package (smtp-source,
# smtp-sink and the private comparison instance) and tcpdump (the latency
# figure), and leave no system Postfix running.
#
# Debconf answers "No configuration", so the package writes no
# /etc/postfix/main.cf and its postinst has nothing to start; a
# policy-rc.d that exits 101 forbids invoke-rc.d to start the service
# anyway (an existing one is kept, as Docker images have; one this script
# writes is removed afterwards). Finally a master still running from the
# system configuration is stopped, so port 25 stays free.
#
# Needs root. Installs only what is missing. Set APT_UPDATE=1 to run
# apt-get update first (a fresh machine's package lists may be empty).
# Arguments name further packages to install the same way, each given as
# COMMAND=PACKAGE and installed when COMMAND is not on the PATH (.ci/run
# uses this for the test tools: swaks, pflogsumm, fail2ban).
set -eu

pkgs=
for want in "$@"; do
    command -v "${want%%=*}" >/dev/null 2>&1 || pkgs="$pkgs ${want#*=}"
done
command -v smtp-source >/dev/null 2>&1 && command -v smtp-sink >/dev/null 2>&1 || pkgs="$pkgs postfix"
command -v tcpdump >/dev/null 2>&1 || pkgs="$pkgs tcpdump"

if [ -n "$pkgs" ]; then
    export DEBIAN_FRONTEND=noninteractive
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    own_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    if [ "${APT_UPDATE:-0}" = 1 ]; then apt-get update -q; fi
    # shellcheck disable=SC2086  # word splitting of the package list is intended
    apt-get install -y -q --no-install-recommends $pkgs
    if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

# A system master (config /etc/postfix) must not hold port 25.
if postfix status >/dev/null 2>&1; then
    postfix stop >/dev/null 2>&1 || true
    sleep 1
fi
if postfix status >/dev/null 2>&1; then
    echo "install-postfix.sh: the system Postfix is still running" >&2
    exit 1
fi
exit 0
