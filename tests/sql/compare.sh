# compare.sh: sourced by copy.t. Compares two databases table by table with
# psql: row counts and md5 of all rows, indexes, constraints (and that they
# are validated), views, sequences, triggers, comments. Emits TAP through
# sql_ok (cluster.sh).
#   sql_compare SRC_PORT SRC_DB DST_PORT DST_DB
USER_SCHEMAS="n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'"

sql_same() { # sql_same NAME QUERY: the query gives the same output on both sides
  a=$(sql_psql "$CMP_SRC_PORT" -d "$CMP_SRC_DB" -c "$2" 2>&1)
  b=$(sql_psql "$CMP_DST_PORT" -d "$CMP_DST_DB" -c "$2" 2>&1)
  [ -n "$a" ] && [ "$a" = "$b" ]
  sql_ok $? "$1"
  if [ "$a" != "$b" ]; then
    diff <(echo "$a") <(echo "$b") | head -10 | sed 's/^/# /'
  fi
}

sql_compare() {
  CMP_SRC_PORT=$1 CMP_SRC_DB=$2 CMP_DST_PORT=$3 CMP_DST_DB=$4
  # names may hold newlines: one NUL-terminated name each
  while IFS= read -r -d '' t; do
    sql_same "rows of ${t//[$'\r\n']/ }" "SELECT count(*), md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) FROM $t x"
  done < <(sql_psql "$CMP_SRC_PORT" -d "$CMP_SRC_DB" -0 -c "SELECT format('%I.%I', n.nspname, c.relname)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'm') AND $USER_SCHEMAS ORDER BY 1")
  sql_same "same tables and columns" "SELECT table_schema, table_name, column_name, data_type, is_nullable, column_default, is_identity, identity_generation, is_generated, generation_expression FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2, ordinal_position"
  sql_same "same indexes" "SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes WHERE schemaname NOT IN ('pg_catalog') ORDER BY 1, 2, 3"
  sql_same "same index kinds and flags" "SELECT i.indrelid::regclass::text AS rel, i.indexrelid::regclass::text AS idx, i.indisunique, i.indisprimary, i.indimmediate, i.indisclustered, i.indisreplident, i.indnullsnotdistinct, pg_get_indexdef(i.indexrelid), c.reloptions FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE $USER_SCHEMAS ORDER BY 1, 2"
  sql_same "same replica identities" "SELECT c.oid::regclass::text, c.relreplident FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND $USER_SCHEMAS ORDER BY 1"
  sql_same "same constraint comments" "SELECT c.conname, d.description FROM pg_description d JOIN pg_constraint c ON c.oid = d.objoid WHERE d.classoid = 'pg_constraint'::regclass ORDER BY 1"
  sql_same "same constraints, all validated" "SELECT n.nspname, c.conrelid::regclass::text AS rel, c.conname, c.contype, pg_get_constraintdef(c.oid), c.convalidated, c.condeferrable, c.condeferred FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE $USER_SCHEMAS ORDER BY 1, 2, 3"
  sql_same "same views" "SELECT schemaname, viewname, definition FROM pg_views WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
  sql_same "same materialized views, populated" "SELECT schemaname, matviewname, ispopulated, definition FROM pg_matviews ORDER BY 1, 2"
  sql_same "same sequences and values" "SELECT schemaname, sequencename, start_value, increment_by, last_value FROM pg_sequences ORDER BY 1, 2"
  sql_same "same triggers" "SELECT tgrelid::regclass::text AS rel, tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2"
  sql_same "same functions" "SELECT n.nspname, p.proname, pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE $USER_SCHEMAS ORDER BY 1, 2"
  sql_same "same types" "SELECT n.nspname, t.typname, t.typtype FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE $USER_SCHEMAS ORDER BY 1, 2"
  sql_same "same comments" "SELECT d.objoid::regclass::text AS obj, d.description FROM pg_description d JOIN pg_class c ON c.oid = d.objoid WHERE d.classoid = 'pg_class'::regclass ORDER BY 1"
  sql_same "same partitions" "SELECT inhrelid::regclass::text AS child, inhparent::regclass::text FROM pg_inherits ORDER BY 1"
}
