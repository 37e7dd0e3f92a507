-- pgwarden runtime catalog, version 5: reveal, export, export approvals and alerts.
--
-- PostgreSQL has no autonomous transactions: an error rolls back everything the statement did,
-- including a record of the refusal and its NOTIFY. So reveal and export work in two steps:
--   1. pgwarden.reveal(...) / pgwarden.export(...) decide, record (audit, quota, alert) and
--      return a decision as jsonb, refusals included, without raising; the caller commits it;
--   2. pgwarden.revealed(id) / pgwarden.export_rows(id) return the data, and only for a
--      decision committed in an earlier transaction: rolling back cannot erase the record or
--      the quota that the data was obtained under.
-- pgwarden's runtime helpers and CLI run both steps and turn a refusal into an error.

CREATE TABLE pgwarden.reveal_rules (
  key text PRIMARY KEY,
  table_name text NOT NULL REFERENCES pgwarden.tables (name) ON DELETE CASCADE,
  column_name text NOT NULL,
  relations text[] NOT NULL,
  helpers text[] NOT NULL,
  per_day integer NOT NULL CHECK (per_day > 0)
);
COMMENT ON TABLE pgwarden.reveal_rules IS 'Who may reveal which column (relations to the row, checked with the key helpers), per-person daily quota. Written by apply.';

CREATE TABLE pgwarden.export_rules (
  key text PRIMARY KEY,
  table_name text NOT NULL REFERENCES pgwarden.tables (name) ON DELETE CASCADE,
  job text NOT NULL,
  columns text[] NOT NULL,
  per_day integer NOT NULL CHECK (per_day > 0),
  approval_columns text[] NOT NULL DEFAULT '{}',
  approvers integer NOT NULL DEFAULT 1 CHECK (approvers IN (1, 2))
);
COMMENT ON TABLE pgwarden.export_rules IS 'Which job may export which columns of a table, how many rows a day, and which columns need approval. Written by apply.';

CREATE TABLE pgwarden.reveals (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  person text NOT NULL,
  table_name text NOT NULL,
  row_key text NOT NULL,
  column_name text NOT NULL,
  at timestamptz NOT NULL DEFAULT now(),
  granted boolean NOT NULL,
  reason text,
  read_at timestamptz
);
CREATE INDEX reveals_person_day ON pgwarden.reveals (person, at);

CREATE TABLE pgwarden.export_requests (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  person text NOT NULL,
  table_name text NOT NULL REFERENCES pgwarden.tables (name),
  columns text[] NOT NULL,
  filter jsonb NOT NULL DEFAULT '{}',
  reason text NOT NULL CHECK (btrim(reason) <> ''),
  row_estimate integer,
  requested_at timestamptz NOT NULL DEFAULT now(),
  valid_until timestamptz NOT NULL,
  approvals_needed integer NOT NULL DEFAULT 1,
  approvals jsonb NOT NULL DEFAULT '[]',
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected', 'used')),
  decided_reason text,
  used_by_export bigint
);
COMMENT ON TABLE pgwarden.export_requests IS 'Requests to export columns that need approval; approved by other people with an approver job; usable once.';

CREATE TABLE pgwarden.exports (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  person text NOT NULL,
  table_name text NOT NULL,
  columns text[] NOT NULL,
  filter jsonb NOT NULL DEFAULT '{}',
  rows integer NOT NULL DEFAULT 0,
  request_id bigint REFERENCES pgwarden.export_requests (id),
  at timestamptz NOT NULL DEFAULT now(),
  allowed boolean NOT NULL,
  reason text,
  fetched_at timestamptz
);
CREATE INDEX exports_person_day ON pgwarden.exports (person, table_name, at);

CREATE TABLE pgwarden.alerts (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  kind text NOT NULL,
  person text,
  table_name text,
  detail jsonb NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE pgwarden.alerts IS 'Refused reveals and exports, quota breaches, large exports. Payloads carry ids and counts, never customer values.';

-- ------------------------------------------------------------------ helpers

CREATE FUNCTION pgwarden._alert(kind text, person text, tbl text, detail jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  new_id bigint;
BEGIN
  INSERT INTO pgwarden.alerts (kind, person, table_name, detail) VALUES (kind, person, tbl, COALESCE(detail, '{}'))
  RETURNING alerts.id INTO new_id;
  PERFORM pg_catalog.pg_notify('pgwarden_alerts', pg_catalog.jsonb_build_object(
    'id', new_id, 'kind', kind, 'person', person, 'table', tbl, 'detail', COALESCE(detail, '{}'),
    'at', pg_catalog.to_char(pg_catalog.now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))::text);
END
$$;

-- The start of the current day, UTC: quotas count from here.
CREATE FUNCTION pgwarden._today() RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_catalog.date_trunc('day', pg_catalog.now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' $$;

-- The row was written by an earlier, committed transaction (not the current one).
CREATE FUNCTION pgwarden._committed_before(row_xmin xid) RETURNS boolean
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT row_xmin::text <> (pg_catalog.pg_current_xact_id()::text::numeric % 4294967296)::text $$;

-- A filter {"column": ["value", ...]} as SQL over alias v; columns must be in allowed.
CREATE FUNCTION pgwarden._filter_sql(filter jsonb, allowed text[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  k text;
  v jsonb;
  parts text[] := '{}';
BEGIN
  IF filter IS NULL OR filter = '{}' THEN
    RETURN 'true';
  END IF;
  IF pg_catalog.jsonb_typeof(filter) <> 'object' THEN
    RAISE EXCEPTION 'an export filter is an object {"column": ["value", ...]}' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR k, v IN SELECT * FROM pg_catalog.jsonb_each(filter) LOOP
    IF NOT k = ANY (allowed) THEN
      RAISE EXCEPTION 'export filters may use only the table''s columns; "%" is not one', k USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_catalog.jsonb_typeof(v) = 'string' THEN
      v := pg_catalog.jsonb_build_array(v);
    END IF;
    IF pg_catalog.jsonb_typeof(v) <> 'array' OR pg_catalog.jsonb_array_length(v) = 0
       OR EXISTS (SELECT FROM pg_catalog.jsonb_array_elements(v) e WHERE pg_catalog.jsonb_typeof(e) <> 'string') THEN
      RAISE EXCEPTION 'filter value for "%" must be a string or a non-empty array of strings', k USING ERRCODE = 'invalid_parameter_value';
    END IF;
    parts := parts || pg_catalog.format('v.%I::text = ANY (%L::text[])', k,
      (SELECT pg_catalog.array_agg(e) FROM pg_catalog.jsonb_array_elements_text(v) e));
  END LOOP;
  RETURN pg_catalog.array_to_string(parts, ' AND ');
END
$$;

CREATE FUNCTION pgwarden._columns_of(t pgwarden.tables) RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attnum)
  FROM pg_catalog.pg_attribute a
  WHERE a.attrelid = pg_catalog.format('%I.%I', t.schema_name, t.table_name)::regclass AND a.attnum > 0 AND NOT a.attisdropped
$$;

-- ------------------------------------------------------------------ reveal

-- Step 1: decide and record. {"ok": true, "reveal": id} or {"ok": false, "reason": ..., "code": ...}.
CREATE FUNCTION pgwarden.reveal(tbl text, row_key text, col text) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who text := pgwarden._require_caller();
  caller name := pgwarden.caller();
  t pgwarden.tables := pgwarden._table(tbl);
  r pgwarden.reveal_rules;
  used integer;
  visible boolean;
  related boolean := false;
  h text;
  why text;
  code text := 'denied';
  new_id bigint;
BEGIN
  SELECT * INTO r FROM pgwarden.reveal_rules x WHERE x.table_name = tbl AND x.column_name = col;
  IF NOT FOUND THEN
    why := pg_catalog.format('no reveal rule of the model covers %s.%s', tbl, col);
  ELSE
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('pgwarden.reveal:' || who, 0));
    SELECT count(*) INTO used FROM pgwarden.reveals v WHERE v.person = who AND v.table_name = tbl AND v.granted AND v.at >= pgwarden._today();
    IF used >= r.per_day THEN
      why := pg_catalog.format('%s has revealed %s of %s cells allowed today (UTC)', who, used, r.per_day);
      code := 'quota';
    ELSE
      BEGIN
        EXECUTE pg_catalog.format('SELECT EXISTS (SELECT FROM %I.%I v WHERE v.%I = $1::%s)',
            pgwarden._setting('exposed_schema'), t.name, t.key_column, t.key_type) INTO visible USING row_key;
      EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
        visible := false;
      END;
      IF visible THEN
        FOREACH h IN ARRAY r.helpers LOOP
          EXECUTE pg_catalog.format('SELECT $1::%s = ANY (pgwarden.%I($2))', t.key_type, h) INTO related USING row_key, caller;
          EXIT WHEN related;
        END LOOP;
      END IF;
      IF NOT COALESCE(related, false) THEN
        why := pg_catalog.format('reveal of %s.%s needs the row to be %s to %s (rule reveal.columns.%s)',
          tbl, col, pg_catalog.array_to_string(r.relations, ' or '), who, col);
      END IF;
    END IF;
  END IF;
  INSERT INTO pgwarden.reveals (person, table_name, row_key, column_name, granted, reason)
  VALUES (who, tbl, row_key, col, why IS NULL, why) RETURNING reveals.id INTO new_id;
  IF why IS NULL THEN
    PERFORM pgwarden_audit.record_event('reveal', t.schema_name || '.' || t.table_name, row_key, pg_catalog.jsonb_build_object('column', col, 'reveal', new_id));
    RETURN pg_catalog.jsonb_build_object('ok', true, 'reveal', new_id);
  END IF;
  PERFORM pgwarden_audit.record_event('denied', t.schema_name || '.' || t.table_name, row_key,
    pg_catalog.jsonb_build_object('action', 'reveal', 'column', col, 'reason', why, 'code', code));
  PERFORM pgwarden._alert(CASE code WHEN 'quota' THEN 'reveal_quota' ELSE 'reveal_refused' END, who, tbl,
    pg_catalog.jsonb_build_object('row_key', row_key, 'column', col, 'reveal', new_id));
  RETURN pg_catalog.jsonb_build_object('ok', false, 'reason', why, 'code', code, 'reveal', new_id);
END
$$;
COMMENT ON FUNCTION pgwarden.reveal(text, text, text) IS
  'Step 1 of a reveal: decides, records, counts the quota; commit, then read the cell with pgwarden.revealed(id).';

-- Step 2: the cell, for a reveal granted in an earlier transaction, within 10 minutes.
CREATE FUNCTION pgwarden.revealed(reveal_id bigint) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who text := pgwarden._require_caller();
  r record;
  t pgwarden.tables;
  v text;
BEGIN
  SELECT x.*, x.xmin AS row_xmin INTO r FROM pgwarden.reveals x WHERE x.id = reveal_id FOR UPDATE;
  IF NOT FOUND OR r.person <> who OR NOT r.granted THEN
    RAISE EXCEPTION 'permission denied: reveal % is not a granted reveal of %', reveal_id, who
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF NOT pgwarden._committed_before(r.row_xmin) THEN
    RAISE EXCEPTION 'reveal % is not committed yet: commit the transaction that asked for it, then read it',
      reveal_id USING ERRCODE = 'object_not_in_prerequisite_state',
      HINT = 'The record of a reveal must be committed before the cell is returned.';
  END IF;
  IF r.at < pg_catalog.now() - interval '10 minutes' THEN
    RAISE EXCEPTION 'reveal % has expired: ask again', reveal_id USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  t := pgwarden._table(r.table_name);
  EXECUTE pg_catalog.format('SELECT %I::text FROM %I.%I WHERE %I = $1::%s', r.column_name, t.schema_name, t.table_name, t.key_column, t.key_type)
    INTO v USING r.row_key;
  UPDATE pgwarden.reveals x SET read_at = COALESCE(x.read_at, pg_catalog.now()) WHERE x.id = reveal_id;
  RETURN v;
END
$$;

-- ------------------------------------------------------------------ export requests

CREATE FUNCTION pgwarden.request_export(tbl text, columns text[], filter jsonb, reason text,
                                        row_estimate integer DEFAULT NULL, valid_for interval DEFAULT interval '1 day')
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who text := pgwarden._require_caller();
  t pgwarden.tables := pgwarden._table(tbl);
  rule pgwarden.export_rules;
  new_id bigint;
BEGIN
  IF request_export.reason IS NULL OR pg_catalog.btrim(request_export.reason) = '' THEN
    RAISE EXCEPTION 'an export request needs a reason' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM pgwarden._filter_sql(COALESCE(request_export.filter, '{}'), pgwarden._columns_of(t));
  SELECT x.* INTO rule FROM pgwarden.export_rules x
  WHERE x.table_name = tbl AND pgwarden._has_any_job(who, ARRAY[x.job]) AND request_export.columns <@ x.columns
  ORDER BY pg_catalog.cardinality(x.columns) DESC LIMIT 1;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'permission denied: no export rule lets % export % of %', who, request_export.columns, tbl
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  INSERT INTO pgwarden.export_requests (person, table_name, columns, filter, reason, row_estimate, valid_until, approvals_needed)
  VALUES (who, tbl, request_export.columns, COALESCE(request_export.filter, '{}'), request_export.reason, request_export.row_estimate, pg_catalog.now() + valid_for, rule.approvers)
  RETURNING export_requests.id INTO new_id;
  RETURN new_id;
END
$$;

CREATE FUNCTION pgwarden._is_approver(who text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT EXISTS (SELECT FROM pgwarden.job_grants g JOIN pgwarden.jobs j ON j.name = g.job
                 WHERE g.person = who AND j.approver AND pgwarden._active(g.valid_from, g.valid_until, g.revoked_at))
$$;

CREATE FUNCTION pgwarden.approve_export(request_id bigint) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who text := pgwarden._require_caller();
  r pgwarden.export_requests;
  n integer;
BEGIN
  SELECT * INTO r FROM pgwarden.export_requests x WHERE x.id = request_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'export request % does not exist', request_id USING ERRCODE = 'no_data_found';
  END IF;
  IF NOT pgwarden._is_approver(who) THEN
    RAISE EXCEPTION 'permission denied: % may not approve export requests', who USING ERRCODE = 'insufficient_privilege',
      HINT = 'Approvers hold one of: ' || COALESCE((SELECT pg_catalog.string_agg(name, ', ' ORDER BY name) FROM pgwarden.jobs WHERE approver), '(none)');
  END IF;
  IF r.person = who THEN
    RAISE EXCEPTION 'permission denied: % may not approve their own export request %', who, request_id
      USING ERRCODE = 'insufficient_privilege', HINT = 'Another approver must decide it.';
  END IF;
  IF r.status <> 'pending' THEN
    RAISE EXCEPTION 'export request % is already %', request_id, r.status USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF r.valid_until <= pg_catalog.now() THEN
    RAISE EXCEPTION 'export request % expired at %', request_id, r.valid_until USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF r.approvals @> pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('by', who)) THEN
    RAISE EXCEPTION '% already approved export request %; a second approver is needed', who, request_id USING ERRCODE = 'invalid_parameter_value';
  END IF;
  n := pg_catalog.jsonb_array_length(r.approvals) + 1;
  UPDATE pgwarden.export_requests x SET
    approvals = x.approvals || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('by', who, 'at', pg_catalog.now())),
    status = CASE WHEN n >= x.approvals_needed THEN 'approved' ELSE 'pending' END
  WHERE x.id = request_id;
  RETURN CASE WHEN n >= r.approvals_needed THEN 'approved' ELSE pg_catalog.format('approved by %s of %s approvers', n, r.approvals_needed) END;
END
$$;

CREATE FUNCTION pgwarden.reject_export(request_id bigint, reason text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who text := pgwarden._require_caller();
  r pgwarden.export_requests;
BEGIN
  IF reason IS NULL OR pg_catalog.btrim(reason) = '' THEN
    RAISE EXCEPTION 'a rejection needs a reason' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO r FROM pgwarden.export_requests x WHERE x.id = request_id FOR UPDATE;
  IF NOT FOUND OR r.status <> 'pending' THEN
    RAISE EXCEPTION 'export request % is not pending', request_id USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT pgwarden._is_approver(who) OR r.person = who THEN
    RAISE EXCEPTION 'permission denied: % may not decide export request %', who, request_id USING ERRCODE = 'insufficient_privilege';
  END IF;
  UPDATE pgwarden.export_requests x SET status = 'rejected', decided_reason = reject_export.reason,
    approvals = x.approvals || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('by', who, 'at', pg_catalog.now(), 'rejected', true))
  WHERE x.id = request_id;
END
$$;

-- Requests the caller may see: all pending ones for an approver, their own otherwise.
CREATE FUNCTION pgwarden.export_requests()
RETURNS TABLE (id bigint, person text, table_name text, columns text[], filter jsonb, reason text, row_estimate integer,
               requested_at timestamptz, valid_until timestamptz, status text, approvals jsonb)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT r.id, r.person, r.table_name, r.columns, r.filter, r.reason, r.row_estimate, r.requested_at, r.valid_until, r.status, r.approvals
  FROM pgwarden.export_requests r
  WHERE r.person = pgwarden._person(pgwarden.caller())
     OR (r.status = 'pending' AND pgwarden._is_approver(pgwarden._person(pgwarden.caller())))
  ORDER BY r.id
$$;

-- ------------------------------------------------------------------ export

-- Step 1: decide, count the rows against the quota, record (audit first), alert.
-- {"ok": true, "export": id, "rows": n, "columns": [...]} or {"ok": false, "reason": ..., "code": ...}.
CREATE FUNCTION pgwarden.export(tbl text, columns text[] DEFAULT NULL, filter jsonb DEFAULT '{}', request_id bigint DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who text := pgwarden._require_caller();
  t pgwarden.tables := pgwarden._table(tbl);
  rule pgwarden.export_rules;
  req pgwarden.export_requests;
  cols text[];
  bad text[];
  where_sql text;
  n integer;
  used integer;
  why text;
  code text := 'denied';
  new_id bigint;
  limit_rows integer := COALESCE(pgwarden._setting('alert_export_rows')::integer, 1000);
BEGIN
  where_sql := pgwarden._filter_sql(COALESCE(export.filter, '{}'), pgwarden._columns_of(t));
  -- the rule of a job the person holds that covers the most (or the asked) columns
  SELECT x.* INTO rule FROM pgwarden.export_rules x
  WHERE x.table_name = tbl AND pgwarden._has_any_job(who, ARRAY[x.job])
  ORDER BY (export.columns IS NOT NULL AND export.columns <@ x.columns) DESC, pg_catalog.cardinality(x.columns) DESC, x.job
  LIMIT 1;
  IF NOT FOUND THEN
    why := pg_catalog.format('no export rule of the model lets %s export %s (exports are per job; %s holds none that may)', who, tbl, who);
  ELSE
    cols := COALESCE(export.columns, rule.columns);
    SELECT pg_catalog.array_agg(c) INTO bad FROM pg_catalog.unnest(cols) c WHERE NOT c = ANY (rule.columns);
    IF bad IS NOT NULL THEN
      why := pg_catalog.format('%s may not export column(s) %s of %s (rule exports.%s.columns)', who, pg_catalog.array_to_string(bad, ', '), tbl, rule.job);
    ELSIF cols && rule.approval_columns THEN
      IF export.request_id IS NULL THEN
        why := pg_catalog.format('exporting %s of %s needs an approved request (rule exports.%s.approval)',
          pg_catalog.array_to_string(ARRAY(SELECT pg_catalog.unnest(cols) INTERSECT SELECT pg_catalog.unnest(rule.approval_columns)), ', '), tbl, rule.job);
        code := 'needs_approval';
      ELSE
        SELECT * INTO req FROM pgwarden.export_requests x WHERE x.id = export.request_id FOR UPDATE;
        IF NOT FOUND OR req.person <> who THEN
          why := pg_catalog.format('export request %s is not a request of %s', export.request_id, who);
        ELSIF req.status <> 'approved' THEN
          why := pg_catalog.format('export request %s is %s, not approved', export.request_id, req.status);
          code := 'needs_approval';
        ELSIF req.valid_until <= pg_catalog.now() THEN
          why := pg_catalog.format('export request %s expired at %s', export.request_id, req.valid_until);
        ELSIF req.table_name <> tbl OR NOT cols <@ req.columns OR req.filter <> COALESCE(export.filter, '{}') THEN
          why := pg_catalog.format('export request %s was approved for other columns or another filter', export.request_id);
        END IF;
      END IF;
    END IF;
  END IF;
  IF why IS NULL THEN
    EXECUTE pg_catalog.format('SELECT count(*) FROM %I.%I v WHERE %s', pgwarden._setting('exposed_schema'), t.name, where_sql) INTO n;
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('pgwarden.export:' || who, 0));
    SELECT COALESCE(sum(e.rows), 0) INTO used FROM pgwarden.exports e
    WHERE e.person = who AND e.table_name = tbl AND e.allowed AND e.at >= pgwarden._today();
    IF used + n > rule.per_day THEN
      why := pg_catalog.format('%s would export %s row(s) of %s; %s of %s allowed today (UTC) are used', who, n, tbl, used, rule.per_day);
      code := 'quota';
    END IF;
  END IF;
  INSERT INTO pgwarden.exports (person, table_name, columns, filter, rows, request_id, allowed, reason)
  VALUES (who, tbl, COALESCE(cols, export.columns, '{}'), COALESCE(export.filter, '{}'), CASE WHEN why IS NULL THEN n ELSE 0 END,
          CASE WHEN why IS NULL THEN export.request_id END, why IS NULL, why)
  RETURNING exports.id INTO new_id;
  IF why IS NULL THEN
    IF export.request_id IS NOT NULL THEN
      UPDATE pgwarden.export_requests x SET status = 'used', used_by_export = new_id WHERE x.id = export.request_id;
    END IF;
    PERFORM pgwarden_audit.record_event('export', t.schema_name || '.' || t.table_name, NULL,
      pg_catalog.jsonb_build_object('export', new_id, 'columns', cols, 'filter_columns', (SELECT pg_catalog.jsonb_agg(k) FROM pg_catalog.jsonb_object_keys(COALESCE(export.filter, '{}')) k), 'rows', n, 'request', export.request_id));
    IF n > limit_rows THEN
      PERFORM pgwarden._alert('export_large', who, tbl, pg_catalog.jsonb_build_object('export', new_id, 'rows', n, 'threshold', limit_rows));
    END IF;
    RETURN pg_catalog.jsonb_build_object('ok', true, 'export', new_id, 'rows', n, 'columns', cols);
  END IF;
  PERFORM pgwarden_audit.record_event('denied', t.schema_name || '.' || t.table_name, NULL,
    pg_catalog.jsonb_build_object('action', 'export', 'export', new_id, 'columns', COALESCE(cols, export.columns), 'reason', why, 'code', code, 'request', export.request_id));
  PERFORM pgwarden._alert(CASE code WHEN 'quota' THEN 'export_quota' ELSE 'export_refused' END, who, tbl,
    pg_catalog.jsonb_build_object('export', new_id, 'code', code, 'rows', n));
  RETURN pg_catalog.jsonb_build_object('ok', false, 'reason', why, 'code', code, 'export', new_id);
END
$$;
COMMENT ON FUNCTION pgwarden.export(text, text[], jsonb, bigint) IS
  'Step 1 of an export: decides, counts rows against the quota, records; commit, then stream pgwarden.export_rows(id).';

-- Step 2: the rows, as the person sees them through the view (their row and cell rules), only
-- the exported columns, at most the counted number of rows; once, within an hour.
CREATE FUNCTION pgwarden.export_rows(export_id bigint) RETURNS SETOF jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who text := pgwarden._require_caller();
  e record;
  t pgwarden.tables;
BEGIN
  SELECT x.*, x.xmin AS row_xmin INTO e FROM pgwarden.exports x WHERE x.id = export_id FOR UPDATE;
  IF NOT FOUND OR e.person <> who OR NOT e.allowed THEN
    RAISE EXCEPTION 'permission denied: export % is not an allowed export of %', export_id, who USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF NOT pgwarden._committed_before(e.row_xmin) THEN
    RAISE EXCEPTION 'export % is not committed yet: commit the transaction that started it, then read its rows', export_id
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'The record of an export must be committed before any row is returned.';
  END IF;
  IF e.fetched_at IS NOT NULL THEN
    RAISE EXCEPTION 'export % was already read at %', export_id, e.fetched_at USING ERRCODE = 'object_not_in_prerequisite_state',
      HINT = 'Start a new export (it counts against the quota again).';
  END IF;
  IF e.at < pg_catalog.now() - interval '1 hour' THEN
    RAISE EXCEPTION 'export % has expired: start a new one', export_id USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  UPDATE pgwarden.exports x SET fetched_at = pg_catalog.now() WHERE x.id = export_id;
  t := pgwarden._table(e.table_name);
  RETURN QUERY EXECUTE pg_catalog.format(
    'SELECT pg_catalog.jsonb_build_object(%s) FROM %I.%I v WHERE %s ORDER BY v.%I LIMIT %s',
    (SELECT pg_catalog.string_agg(pg_catalog.format('%L, v.%I', c, c), ', ') FROM pg_catalog.unnest(e.columns) c),
    pgwarden._setting('exposed_schema'), t.name, pgwarden._filter_sql(e.filter, pgwarden._columns_of(t)), t.key_column, e.rows);
END
$$;

-- ------------------------------------------------------------------ alerts

CREATE FUNCTION pgwarden.alerts_since(since timestamptz)
RETURNS TABLE (id bigint, at timestamptz, kind text, person text, table_name text, detail jsonb)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  caller name := pgwarden.caller();
  who text := pgwarden._person(caller);
BEGIN
  IF NOT (EXISTS (SELECT FROM pg_catalog.pg_roles x WHERE x.rolname = caller AND x.rolsuper)
          OR pgwarden.is_audit_reader(caller) OR pgwarden._is_approver(who)
          OR EXISTS (SELECT FROM pgwarden.job_grants g JOIN pgwarden.jobs j ON j.name = g.job
                     WHERE g.person = who AND j.admin AND pgwarden._active(g.valid_from, g.valid_until, g.revoked_at))) THEN
    RAISE EXCEPTION 'permission denied: % may not read alerts', COALESCE(who, caller::text) USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN QUERY SELECT a.id, a.at, a.kind, a.person, a.table_name, a.detail FROM pgwarden.alerts a WHERE a.at >= since ORDER BY a.id;
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA pgwarden FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgwarden FROM PUBLIC;
