#!/bin/bash
# sql.copy_database{ rewrite = ... }: every text-bearing type rewritten in
# the binary COPY stream (tests/sql/rewrite_schema.sql), the fit rule, the
# masking operations, OIDs of user types mapped to the target's; and the
# property test: VALUES values (the 1M generated set of tests/bench/email.sh,
# whole-value ones holding several addresses, plus the edge cases of
# tests/sql/sandbox_address.lua) compared value by value between the C
# transform (through the stream), mail.sandbox_address (then the free-text
# rule when a value holds several addresses), a Lua reference of the
# free-text rule and step 13's SQL expressions.
#   VALUES: how many generated values; default 200,000 (~15 s), and the
#   whole 1,000,000 under make test-full (WF_TEST_FULL, ~70 s on 2 cores)
cd "$(dirname "$0")/../.." || exit 1
. tests/sql/cluster.sh
sql_setup 26172 26173
if [ -n "${WF_TEST_FULL:-}" ]; then VALUES=${VALUES:-1000000}; else VALUES=${VALUES:-200000}; fi
sql_psql 26172 -d postgres -c "CREATE DATABASE src"
sql_psql 26173 -d postgres -c "CREATE DATABASE dst" -c "CREATE DATABASE dst_dry"
sql_psql 26172 -d src -v ON_ERROR_STOP=1 -f tests/sql/rewrite_schema.sql >/dev/null
sql_ok $? "the source schema loads"
sql_psql 26172 -d src -v ON_ERROR_STOP=1 -v n="$VALUES" >/dev/null <<'SQL'
WITH p AS (SELECT ARRAY['a', 'Z', 'q.r', '+tag', '@', '@', '@mailinator.com', '@MAILINATOR.com',
  '@sbx.example.org', 'mailinator.com', ' ', E'\t', E'\n', E'\v', E'\f', E'\r', 'é', 'Å', '_', 'x@X'] AS a)
INSERT INTO crm.vals SELECT g, x, x, x, x, ARRAY[x], jsonb_build_object('to', x)
FROM p, LATERAL (SELECT g, CASE
    WHEN g % 97 = 0 THEN NULL
    WHEN g % 89 = 0 THEN 'no address ' || g
    WHEN g % 83 = 0 THEN 'Already.' || g || '@Mailinator.com'
    WHEN g % 11 = 0 THEN 'a' || g || '@X' || (g % 50) || '.no, B' || g || '@y.NO'
    WHEN g % 13 = 0 THEN 'p' || g || '@firma.no b' || g || '@Mailinator.com'
    WHEN g % 17 = 0 THEN ' x' || g || E'@mailinator.com;Y' || g || E'@Kunde.no\t'
    WHEN g % 19 = 0 THEN 'a' || g || '_x.no@mailinator.com, b_y.no@mailinator.com'
    WHEN g % 7 = 0 THEN ' First.Last+' || g || '@C' || (g % 5000) || '.Example.COM '
    WHEN g % 3 = 0 THEN (SELECT string_agg(p.a[1 + abs(hashint4(g * 31 + k)) % 20], '')
      FROM generate_series(1, g % 7) k)
    WHEN g % 5 = 0 THEN 'Mail Ole.Hansen' || g || '@Acme.NO; or ' || g || '@x.no, b@c..d, e@f.g.'
    ELSE 'person' || g || '@c' || (g % 5000) || '.example.com' END AS x
  FROM generate_series(1, :n) g) s;
SQL
sql_ok $? "$VALUES generated values"
sql_run tests/sql/rewrite.lua -p source_port=26172 -p target_port=26173 >"$SQL_TMP/rewrite.tap"
sql_ok $? "the rewrite workflow succeeds"
sql_tap_merge <"$SQL_TMP/rewrite.tap"
sql_tap_done
