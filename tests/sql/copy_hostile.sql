-- copy_hostile.sql: a source database whose data looks like pg_dump's own
-- entry headers and SQL (tests/sql/copy.t): comments, defaults, checks,
-- function bodies, index predicates, triggers, policies, rules and names
-- holding fake "-- Name:" headers, statements, ;, $$, \., unbalanced quotes
-- and CR/LF. The first comment is the one that ran CREATE ROLE on the
-- target when post-data was split at its header lines.
CREATE TABLE public.t1 (
  id int PRIMARY KEY,
  email text DEFAULT E'd;\r\n--\n-- Name: zz_default; Type: INDEX; Schema: public; Owner: postgres\n--\n\nCREATE ROLE wf_injected_role; $$ \\. '' "',
  note text CHECK (note <> E'c;\n--\n-- Name: zz_check; Type: CONSTRAINT; Schema: public; Owner: postgres\n--\n\nCREATE ROLE wf_injected_role; --\r\n$$ '' "')
);
CREATE INDEX t1_email_idx ON public.t1 (email);
COMMENT ON INDEX public.t1_email_idx IS E'note\n--\n-- Name: zz_fake; Type: INDEX; Schema: public; Owner: postgres\n--\n\nCREATE ROLE wf_injected_role; --';
CREATE INDEX t1_note_partial ON public.t1 (note)
  WHERE note <> E'p;\n--\n-- Name: zz_pred; Type: INDEX; Schema: public; Owner: postgres\n--\n\nCREATE ROLE wf_injected_role; $$ \\. '' "\r\n';
COMMENT ON TABLE public.t1 IS E't\n--\n-- Name: zz_t; Type: TABLE; Schema: public; Owner: postgres\n--\n\nCREATE ROLE wf_injected_role; --\n$$ '' \\.';
COMMENT ON COLUMN public.t1.note IS E'col\r\n--\r\n-- Name: zz_c; Type: INDEX; Schema: public; Owner: postgres\r\n--\r\n\r\nCREATE ROLE wf_injected_role;';
COMMENT ON CONSTRAINT t1_pkey ON public.t1 IS E'pk\n--\n-- Name: zz_pk; Type: INDEX; Schema: public; Owner: postgres\n--\n\nCREATE ROLE wf_injected_role; /* '' " $$';
ALTER TABLE public.t1 ADD CONSTRAINT t1_note_later CHECK (note <> E'nv;\n--\n-- Name: zz_nv; Type: INDEX; Schema: public; Owner: postgres\n--\n\nCREATE ROLE wf_injected_role; --') NOT VALID;
CREATE TABLE public.t2 (id int PRIMARY KEY, t1_id int REFERENCES public.t1);
COMMENT ON CONSTRAINT t2_t1_id_fkey ON public.t2 IS E'fk\n--\n-- Name: zz_fk; Type: FK CONSTRAINT; Schema: public; Owner: postgres\n--\n\nCREATE ROLE wf_injected_role;\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict k\n';
CREATE FUNCTION public.hostile_fn() RETURNS text LANGUAGE plpgsql AS $body$
BEGIN
/*
--
-- Name: zz_fn; Type: INDEX; Schema: public; Owner: postgres
--

CREATE ROLE wf_injected_role; $$ ' " \.
*/
  RETURN E'f;\n--\n-- Name: zz_ret; Type: INDEX; Schema: public; Owner: postgres\n--\n\nCREATE ROLE wf_injected_role;';
END
$body$;
COMMENT ON FUNCTION public.hostile_fn() IS E'fn\n--\n-- Name: zz_fnc; Type: INDEX; Schema: public; Owner: postgres\n--\n\nCREATE ROLE wf_injected_role; $body$ $$';
CREATE FUNCTION public.t1_touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER t1_touch BEFORE INSERT ON public.t1 FOR EACH ROW
  WHEN (NEW.note IS DISTINCT FROM E'tw;\n--\n-- Name: zz_tw; Type: INDEX; Schema: public; Owner: postgres\n--\n\nCREATE ROLE wf_injected_role; '' "')
  EXECUTE FUNCTION public.t1_touch();
COMMENT ON TRIGGER t1_touch ON public.t1 IS E'tr\r\n--\n-- Name: zz_tr; Type: TRIGGER; Schema: public; Owner: postgres\n--\n\nCREATE ROLE wf_injected_role; \\.';
ALTER TABLE public.t1 ENABLE ROW LEVEL SECURITY;
CREATE POLICY t1_policy ON public.t1
  USING (note <> E'po;\n--\n-- Name: zz_po; Type: INDEX; Schema: public; Owner: postgres\n--\n\nCREATE ROLE wf_injected_role; $$ '' "');
COMMENT ON POLICY t1_policy ON public.t1 IS E'pc\n--\n-- Name: zz_pc; Type: POLICY; Schema: public; Owner: postgres\n--\n\nCREATE ROLE wf_injected_role; --';
CREATE RULE t2_rule AS ON UPDATE TO public.t2
  WHERE (NEW.id::text = E'ru;\n--\n-- Name: zz_ru; Type: INDEX; Schema: public; Owner: postgres\n--\n\nCREATE ROLE wf_injected_role;')
  DO INSTEAD NOTHING;
COMMENT ON RULE t2_rule ON public.t2 IS E'rc\n--\n-- Name: zz_rc; Type: RULE; Schema: public; Owner: postgres\n--\n\nCREATE ROLE wf_injected_role;';
CREATE MATERIALIZED VIEW public.mv AS
  SELECT id, E'mv;\n--\n-- Name: zz_mv; Type: INDEX; Schema: public; Owner: postgres\n--\n\nCREATE ROLE wf_injected_role;'::text AS note
  FROM public.t1;
CREATE UNIQUE INDEX mv_id ON public.mv (id);
COMMENT ON INDEX public.mv_id IS E'mi\n--\n-- Name: zz_mi; Type: INDEX; Schema: public; Owner: postgres\n--\n\nCREATE ROLE wf_injected_role;';
-- a name that is itself a header (pg_restore writes names on one line)
CREATE TABLE public."x
--
-- Name: z; Type: INDEX; Schema: public; Owner: p
--
" (id int PRIMARY KEY, v text);
CREATE INDEX "i
--
-- Name: z; Type: INDEX; Schema: public; Owner: p
--
" ON public."x
--
-- Name: z; Type: INDEX; Schema: public; Owner: p
--
" (v);
CREATE VIEW public.v AS
  SELECT id, E'v;\n--\n-- Name: zz_v; Type: INDEX; Schema: public; Owner: postgres\n--\n\nCREATE ROLE wf_injected_role; $$ '' "'::text AS note
  FROM public.t1;
CREATE TABLE public.p (id serial, at int NOT NULL,
  label text DEFAULT E'pd;\n--\n-- Name: zz_pd; Type: INDEX; Schema: public; Owner: postgres\n--\n\nCREATE ROLE wf_injected_role;',
  PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE public.p1 PARTITION OF public.p FOR VALUES FROM (0) TO (100);
CREATE INDEX p_label ON public.p (label)
  WHERE label <> E'pi;\n--\n-- Name: zz_pi; Type: INDEX; Schema: public; Owner: postgres\n--\n\nCREATE ROLE wf_injected_role;';
COMMENT ON INDEX public.p_label IS E'pl\n--\n-- Name: zz_pl; Type: INDEX ATTACH; Schema: public; Owner: postgres\n--\n\nCREATE ROLE wf_injected_role;';

INSERT INTO public.p (at) SELECT g FROM generate_series(1, 30) g;
INSERT INTO public.t1 (id, note) SELECT g, 'n' || g FROM generate_series(1, 200) g;
INSERT INTO public.t2 SELECT g, g FROM generate_series(1, 50) g;
INSERT INTO public."x
--
-- Name: z; Type: INDEX; Schema: public; Owner: p
--
" SELECT g, 'v' || g FROM generate_series(1, 20) g;
REFRESH MATERIALIZED VIEW public.mv;
ANALYZE;
