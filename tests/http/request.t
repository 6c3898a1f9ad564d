#!/usr/bin/env bash
# wf.http: methods, query encoding, JSON both ways, headers, auth, redirects,
# connection reuse, against the test server.
set -u
. tests/http/lib.sh
http_server_start 26201
"$WFENGINE" run -q --state "$(mktemp -d)" tests/http/request.lua -p url="$HTTP_URL"
