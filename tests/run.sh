#!/usr/bin/env bash
# Set up and run the whole test suite on a fresh machine (the README's test command).
# Extra arguments go to pytest, e.g. `bash tests/run.sh tests/nodes -x`.
set -euo pipefail
cd "$(dirname "$0")/.."

# The jobs tests run Ansible over real SSH to sshd instances on loopback.
if ! command -v sshd >/dev/null 2>&1 && [ ! -x /usr/sbin/sshd ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq openssh-server openssh-client >/dev/null
    else
        echo "tests/run.sh: the tests need sshd: sudo apt-get install openssh-server" >&2
        exit 1
    fi
fi

# The console's browser tests drive Debian's Chromium through Playwright (never a downloaded
# browser: no `playwright install`).
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq chromium >/dev/null
    else
        echo "tests/run.sh: the console tests need Debian's Chromium at /usr/bin/chromium:" \
            "sudo apt-get install chromium" >&2
        exit 1
    fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]'
exec .venv/bin/pytest "$@"
