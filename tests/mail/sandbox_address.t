#!/usr/bin/env bash
# mail.sandbox_address from Lua (no servers needed).
set -u
export LUA_PATH_5_4="tests/lib/?.lua;;"
state=$(mktemp -d)
trap 'rm -rf "$state"' EXIT
"${WFENGINE:-./wfengine}" run -q --state "$state" tests/mail/sandbox_address.lua
