#!/usr/bin/env bash
# wf.http: statuses, Retry-After, transport errors, request timeouts that
# close the connection, the response size limit.
set -u
. tests/http/lib.sh
http_server_start 26202
"$WFENGINE" run -q --state "$(mktemp -d)" tests/http/errors.lua -p url="$HTTP_URL" -p closed_port=26298
