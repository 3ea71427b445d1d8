#!/usr/bin/env bash
# Debian's haproxy for `make cluster` and its test (the sticky proxy in front of the replicas).
# Installs the package only: the cluster runs its own haproxy with its own config, so the
# package's system service is not started by the install (see policy-rc.d below).
set -euo pipefail
if command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
# policy-rc.d exit code 101 tells the package scripts not to start services during this install
# (Debian's invoke-rc.d convention); only created here if there is none already.
POLICY=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    made_policy=1
fi
trap 'if [ "$made_policy" -eq 1 ]; then $SUDO rm -f "$POLICY"; fi' EXIT
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq haproxy >/dev/null
"$(command -v haproxy || echo /usr/sbin/haproxy)" -v | head -1
