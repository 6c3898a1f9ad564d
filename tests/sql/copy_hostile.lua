-- copy_hostile.lua: copy_database of sources whose data looks like pg_dump's
-- own script (run by copy.t, which then checks the target's statements and
-- compares the databases). Step "hostile": the fixed schema of
-- copy_hostile.sql. Step "generated": a property test, `rounds` sources
-- whose comments, index predicate and check constraint hold random mixes of
-- fake entry headers, statements, quotes, $$, \., CR/LF and pg_restore's own
-- trailer; each copy must be exact and create no role.
local sql = require "wf.sql"
local tap = require "tap"

local function dsn(port, db)
  return string.format("host=127.0.0.1 port=%s user=postgres dbname=%s", port, db)
end

local FRAGMENTS = {
  "\n--\n-- Name: zz; Type: INDEX; Schema: public; Owner: postgres\n--\n\n",
  "\r\n--\r\n-- Name: zz; Type: CONSTRAINT; Schema: public; Owner: postgres\r\n--\r\n\r\n",
  "\n--\n-- Name: t t_pkey; Type: FK CONSTRAINT; Schema: public; Owner: postgres\n--\n\n",
  "CREATE ROLE wf_fuzz_role%d;", "CREATE ROLE wf_fuzz_role%d; --", ";", "'", '"', "$$", "$body$",
  "\\.", "\\", "\n", "\r", "\r\n", "--", "/*", "*/", "E'", "\\restrict k\n", "\\! touch x\n",
  "\n--\n-- PostgreSQL database dump complete\n--\n\n", "SET default_tablespace = '';\n\n",
  "COMMENT ON TABLE public.t IS 'x';", "\t", "ü", "note", " ",
}

local function generated(round, random)
  local parts = {}
  for i = 1, random(1, 12) do
    parts[i] = FRAGMENTS[random(#FRAGMENTS)]:gsub("%%d", tostring(round))
  end
  return table.concat(parts)
end

-- The objects of a generated source, each commented with generated text.
local SCHEMA = [[
CREATE TABLE public.t (id int PRIMARY KEY, note text);
CREATE TABLE public.u (id int PRIMARY KEY, t_id int REFERENCES public.t);
CREATE INDEX t_note ON public.t (note);
CREATE FUNCTION public.f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER t_trg BEFORE INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION public.f();
ALTER TABLE public.t ENABLE ROW LEVEL SECURITY;
CREATE POLICY t_pol ON public.t USING (id > 0);
INSERT INTO public.t SELECT g, 'n' || g FROM generate_series(1, 20) g;
INSERT INTO public.u SELECT g, g FROM generate_series(1, 10) g]]

local COMMENTED = {
  "TABLE public.t", "COLUMN public.t.note", "INDEX public.t_note", "CONSTRAINT t_pkey ON public.t",
  "CONSTRAINT u_t_id_fkey ON public.u", "TRIGGER t_trg ON public.t", "POLICY t_pol ON public.t",
  "FUNCTION public.f()", "INDEX public.u_pkey",
}

local DESCRIBED = [[SELECT pg_describe_object(classoid, objoid, objsubid) AS object, description
  FROM pg_description WHERE objoid >= 16384 ORDER BY 1]]
local DEFINED = [[SELECT string_agg(def, E'\n---\n' ORDER BY def) FROM (
  SELECT pg_get_indexdef(indexrelid) AS def FROM pg_index WHERE indrelid = 'public.t'::regclass
  UNION ALL SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'public.t'::regclass) d]]

local function same_rows(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do
    if a[i].object ~= b[i].object or a[i].description ~= b[i].description then return false end
  end
  return true
end

local function generated_round(p, round, random)
  local name = "gen" .. round
  sql.exec(dsn(p.source_port, "postgres"), "CREATE DATABASE " .. name)
  sql.exec(dsn(p.target_port, "postgres"), "CREATE DATABASE " .. name)
  sql.with(dsn(p.source_port, name), function(db)
    db:exec(SCHEMA)
    db:exec("CREATE INDEX t_pred ON public.t (id) WHERE note <> " .. sql.literal(generated(round, random)))
    db:exec("ALTER TABLE public.t ADD CONSTRAINT t_later CHECK (note <> "
      .. sql.literal(generated(round, random)) .. ") NOT VALID")
    for _, object in ipairs(COMMENTED) do
      db:exec("COMMENT ON " .. object .. " IS " .. sql.literal(generated(round, random)))
    end
  end)
  local ok, err = pcall(sql.copy_database, { from = dsn(p.source_port, name),
    to = dsn(p.target_port, name), jobs = 2 })
  local source_rows = sql.query(dsn(p.source_port, name), DESCRIBED)
  local same = ok and same_rows(source_rows, sql.query(dsn(p.target_port, name), DESCRIBED))
      and sql.scalar(dsn(p.source_port, name), DEFINED) == sql.scalar(dsn(p.target_port, name), DEFINED)
  local roles = sql.scalar(dsn(p.target_port, "postgres"),
    "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'wf\\_fuzz\\_%'")
  if not ok then tap.diag("round " .. round .. ": " .. tostring(err)) end
  return ok and same and roles == 0
end

return workflow {
  name = "sql_copy_hostile",
  params = { source_port = { required = true }, target_port = { required = true },
    seed = { default = "" }, rounds = { default = "8" } },
  steps = {
    step "hostile" {
      run = function(ctx)
        local p = ctx.params
        -- the issue's own case first: one fake header in an index's comment
        for _, case in ipairs { { "repro", 1 }, { "hostile", 4 } } do
          local db, tables = case[1], case[2]
          local ok, stats = pcall(sql.copy_database, { from = dsn(p.source_port, db),
            to = dsn(p.target_port, db .. "_dst"), jobs = 2 })
          if not ok then tap.diag(db .. ": " .. tostring(stats)) end
          tap.ok(ok and stats.tables == tables, "the " .. db .. " source is copied")
        end
      end,
    },
    step "generated" {
      run = function(ctx)
        local p = ctx.params
        local seed = tonumber(p.seed) or (os.time() % 100000)
        tap.diag("generated comments: seed " .. seed .. " (seed=" .. seed .. " to replay)")
        local random = math.random
        math.randomseed(seed)
        local failed = 0
        for round = 1, tonumber(p.rounds) do
          if not generated_round(p, round, random) then
            failed = failed + 1
            tap.diag("round " .. round .. " of seed " .. seed .. " differs or created a role")
          end
        end
        tap.is(failed, 0, "generated comments: every copy exact, no role created")
      end,
    },
    step "done" { run = function() assert(tap.done(), "some tests failed") end },
  },
}
