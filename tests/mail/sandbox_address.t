#!/usr/bin/env bash
# mail.sandbox_address from Lua (no servers needed).
set -u
export WFENGINE_PATH="$PWD/tests/lib"
state=$(mktemp -d)
trap 'rm -rf "$state"' EXIT
"${WFENGINE:-./wfengine}" run -q --state "$state" tests/mail/sandbox_address.lua
