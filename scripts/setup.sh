#!/usr/bin/env bash
# The one set-up command (README, "Set up, run, test"): everything the README's
# run and test commands need on a fresh Debian machine with Python 3.11+.
#
#   1. system packages the tests drive (apt-get update once, only when one is missing)
#   2. the virtualenv .venv with agy_trio, the real SDK and the dev, benchmark and
#      Temporal extras
#   3. Node packages of the JavaScript client tests
#
# Safe to run again: each step skips what is already there. Needs root or sudo
# only when a system package is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }

# --- 1. System packages ------------------------------------------------------
# chromium: tests/serve/test_page.py drives the web page in Debian's chromium
#           through Playwright (which then downloads no browser of its own).
# python3-venv: Debian's python3 has no ensurepip without it.
# nodejs, npm: the AG-UI client tests and docs example run @ag-ui/client in Node.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if [ "${#missing[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        say "missing ${missing[*]}, and this is not a Debian-like system: install them, then run me again" >&2
        exit 1
    fi
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { say "installing ${missing[*]} needs root or sudo" >&2; exit 1; }
        sudo=(sudo)
    fi
    say "installing ${missing[*]} (apt-get)"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- 2. The virtualenv -------------------------------------------------------
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { say "agy_trio needs Python 3.11 or newer; python3 is $(python3 -V 2>&1)" >&2; exit 1; }
[ -x .venv/bin/python ] || python3 -m venv .venv
say "installing agy_trio and its extras into .venv"
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev,antigravity,bench,temporal]'

# --- 3. Node packages --------------------------------------------------------
# The JavaScript client tests (Node 20) install their packages from a lockfile.
say "installing the Node client packages (npm ci in tests/node)"
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

say "done: .venv/bin/agy-trio run, .venv/bin/python -m pytest"
