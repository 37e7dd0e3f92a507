-- pgwarden runtime catalog, version 2: writes and the people lifecycle.
--
-- Public pool claims with a daily quota, the recycle bin (deletes keep the row and its children
-- for a retention period), offboarding, requests and approvals for privileged jobs, sweeping
-- ended grants, and `me()` (a person reads their own entries, nobody else's).
--
-- Same rules as 001: run as the catalog owner, definer functions pin search_path, EXECUTE is
-- revoked from PUBLIC at the end (apply grants it to the people role).

ALTER TABLE pgwarden.jobs ADD COLUMN approver boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN pgwarden.jobs.approver IS 'Holders approve requests for privileged jobs (model: approvals.approvers).';
ALTER TABLE pgwarden.jobs ADD COLUMN audit_reader boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN pgwarden.jobs.audit_reader IS 'Holders read the audit log (model: audit.readers).';

ALTER TABLE pgwarden.tables
  ADD COLUMN owner_column text,
  ADD COLUMN pool_column text,
  ADD COLUMN claim_jobs text[] NOT NULL DEFAULT '{}',
  ADD COLUMN claims_per_day integer CHECK (claims_per_day > 0),
  ADD COLUMN retention_days integer CHECK (retention_days > 0),
  ADD COLUMN children jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(children) = 'array');
COMMENT ON COLUMN pgwarden.tables.children IS
  'Child tables that follow a row into the recycle bin: [{"table": model name, "column": fk column}].';

CREATE TABLE pgwarden.job_requests (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  person text NOT NULL REFERENCES pgwarden.people (name),
  job text NOT NULL REFERENCES pgwarden.jobs (name) ON UPDATE CASCADE,
  valid_until timestamptz,
  requested_by name NOT NULL,
  requested_at timestamptz NOT NULL DEFAULT now(),
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
  decided_by name,
  decided_at timestamptz,
  reason text,
  job_grant bigint REFERENCES pgwarden.job_grants (id),
  CHECK ((status = 'pending') = (decided_at IS NULL))
);
COMMENT ON TABLE pgwarden.job_requests IS
  'Grants of privileged jobs wait here until a second person with an approver job approves them.';

CREATE TABLE pgwarden.claims (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  table_name text NOT NULL REFERENCES pgwarden.tables (name) ON DELETE CASCADE,
  row_key text NOT NULL,
  person text NOT NULL REFERENCES pgwarden.people (name),
  claimed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX claims_person_day ON pgwarden.claims (person, table_name, claimed_at);
COMMENT ON TABLE pgwarden.claims IS 'Pool claims, counted against the daily quota (days in UTC).';

CREATE TABLE pgwarden.recycle_bin (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  table_name text NOT NULL REFERENCES pgwarden.tables (name),
  row_key text NOT NULL,
  row_data jsonb NOT NULL,
  children jsonb NOT NULL DEFAULT '[]',
  deleted_by text NOT NULL,
  deleted_at timestamptz NOT NULL DEFAULT now(),
  purge_after timestamptz NOT NULL,
  restored_at timestamptz,
  restored_by name,
  CHECK (purge_after > deleted_at)
);
CREATE INDEX recycle_bin_row ON pgwarden.recycle_bin (table_name, row_key);
COMMENT ON TABLE pgwarden.recycle_bin IS
  'Rows deleted through the views, with their child rows; restorable until purge_after; purged only by pgwarden.purge_recycle_bin().';

-- ------------------------------------------------------------------ helpers

-- The calling person, or an error naming the role.
CREATE FUNCTION pgwarden._require_caller() RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who text := pgwarden._person(pgwarden.caller());
BEGIN
  IF who IS NULL THEN
    RAISE EXCEPTION 'permission denied: role "%" is not an active person', pgwarden.caller()
      USING ERRCODE = 'insufficient_privilege', HINT = 'Act as a person: SET LOCAL ROLE <person> (withPerson in the application).';
  END IF;
  RETURN who;
END
$$;

CREATE FUNCTION pgwarden._has_any_job(person text, jobs text[]) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT EXISTS (SELECT FROM pgwarden.job_grants g
                 WHERE g.person = _has_any_job.person AND g.job = ANY (jobs)
                   AND pgwarden._active(g.valid_from, g.valid_until, g.revoked_at))
$$;

CREATE FUNCTION pgwarden._table(tbl text) RETURNS pgwarden.tables
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t pgwarden.tables;
BEGIN
  SELECT * INTO t FROM pgwarden.tables x WHERE x.name = tbl;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'table "%" is not protected by the model', tbl
      USING ERRCODE = 'no_data_found',
            HINT = 'Known tables: ' || COALESCE((SELECT pg_catalog.string_agg(name, ', ' ORDER BY name) FROM pgwarden.tables), '(none)');
  END IF;
  RETURN t;
END
$$;

-- ------------------------------------------------------------------ separation of duties

-- Grants a job; a privileged job becomes a request that a second person must approve.
-- Returns {"granted": id} or {"requested": id, "approvers": [...]}.
DROP FUNCTION pgwarden.grant_job(text, text, timestamptz);
CREATE FUNCTION pgwarden.grant_job(person text, job text, valid_until timestamptz DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden._assert_admin();
  j pgwarden.jobs;
  id bigint;
BEGIN
  PERFORM pgwarden._require_person(person);
  PERFORM pgwarden._not_self(who, person);
  SELECT * INTO j FROM pgwarden.jobs x WHERE x.name = grant_job.job;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'job "%" is not in the model', job
      USING ERRCODE = 'no_data_found', HINT = 'Known jobs: ' || (SELECT pg_catalog.string_agg(name, ', ' ORDER BY name) FROM pgwarden.jobs);
  END IF;
  IF valid_until IS NOT NULL AND valid_until <= now() THEN
    RAISE EXCEPTION 'valid_until % is in the past', valid_until USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- A privileged job needs a second person's approval, unless a database superuser grants it
  -- (bootstrapping the first approvers is the administrator's job).
  IF j.privileged AND NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = who AND r.rolsuper) THEN
    INSERT INTO pgwarden.job_requests (person, job, valid_until, requested_by)
    VALUES (person, job, grant_job.valid_until, who) RETURNING job_requests.id INTO id;
    RETURN pg_catalog.jsonb_build_object('requested', id, 'approvers',
      (SELECT COALESCE(pg_catalog.jsonb_agg(x.name ORDER BY x.name), '[]') FROM pgwarden.jobs x WHERE x.approver));
  END IF;
  INSERT INTO pgwarden.job_grants (person, job, valid_until, granted_by)
  VALUES (person, job, grant_job.valid_until, who) RETURNING job_grants.id INTO id;
  RETURN pg_catalog.jsonb_build_object('granted', id);
END
$$;

CREATE FUNCTION pgwarden.approve_job_request(request_id bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who text := pgwarden._require_caller();
  r pgwarden.job_requests;
  gid bigint;
BEGIN
  SELECT * INTO r FROM pgwarden.job_requests x WHERE x.id = request_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'job request % does not exist', request_id USING ERRCODE = 'no_data_found';
  END IF;
  IF r.status <> 'pending' THEN
    RAISE EXCEPTION 'job request % is already %', request_id, r.status USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT EXISTS (SELECT FROM pgwarden.job_grants g JOIN pgwarden.jobs j ON j.name = g.job
                 WHERE g.person = who AND j.approver AND pgwarden._active(g.valid_from, g.valid_until, g.revoked_at)) THEN
    RAISE EXCEPTION 'permission denied: % may not approve job requests', who
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'Approvers hold one of: ' || COALESCE((SELECT pg_catalog.string_agg(name, ', ' ORDER BY name) FROM pgwarden.jobs WHERE approver), '(none)');
  END IF;
  IF r.valid_until IS NOT NULL AND r.valid_until <= now() THEN
    RAISE EXCEPTION 'job request % asked for % until %, which has passed', request_id, r.job, r.valid_until
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Reject it, and ask for a new request with a later end.';
  END IF;
  IF pgwarden._person(r.requested_by) = who OR r.person = who THEN
    RAISE EXCEPTION 'permission denied: % may not approve a request % made or that is for themselves', who, request_id
      USING ERRCODE = 'insufficient_privilege', HINT = 'Another approver must decide it.';
  END IF;
  INSERT INTO pgwarden.job_grants (person, job, valid_until, granted_by)
  VALUES (r.person, r.job, r.valid_until, r.requested_by) RETURNING job_grants.id INTO gid;
  UPDATE pgwarden.job_requests x SET status = 'approved', decided_by = pgwarden.caller(), decided_at = now(), job_grant = gid
  WHERE x.id = request_id;
  RETURN gid;
END
$$;

CREATE FUNCTION pgwarden.reject_job_request(request_id bigint, reason text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who text := pgwarden._require_caller();
  r pgwarden.job_requests;
BEGIN
  IF reason IS NULL OR btrim(reason) = '' THEN
    RAISE EXCEPTION 'a rejection needs a reason' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO r FROM pgwarden.job_requests x WHERE x.id = request_id FOR UPDATE;
  IF NOT FOUND OR r.status <> 'pending' THEN
    RAISE EXCEPTION 'job request % is not pending', request_id USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT EXISTS (SELECT FROM pgwarden.job_grants g JOIN pgwarden.jobs j ON j.name = g.job
                 WHERE g.person = who AND j.approver AND pgwarden._active(g.valid_from, g.valid_until, g.revoked_at)) THEN
    RAISE EXCEPTION 'permission denied: % may not decide job requests', who USING ERRCODE = 'insufficient_privilege';
  END IF;
  UPDATE pgwarden.job_requests x SET status = 'rejected', decided_by = pgwarden.caller(), decided_at = now(), reason = reject_job_request.reason
  WHERE x.id = request_id;
END
$$;

-- Requests waiting for a decision, for approvers, administrators and superusers.
CREATE FUNCTION pgwarden.pending_requests()
RETURNS TABLE (id bigint, person text, job text, valid_until timestamptz, requested_by name, requested_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  caller name := pgwarden.caller();
  who text := pgwarden._person(caller);
BEGIN
  IF NOT (EXISTS (SELECT FROM pg_catalog.pg_roles x WHERE x.rolname = caller AND x.rolsuper)
          OR EXISTS (SELECT FROM pgwarden.job_grants g JOIN pgwarden.jobs j ON j.name = g.job
                     WHERE g.person = who AND (j.approver OR j.admin)
                       AND pgwarden._active(g.valid_from, g.valid_until, g.revoked_at))) THEN
    RAISE EXCEPTION 'permission denied: % may not list job requests', COALESCE(who, caller::text)
      USING ERRCODE = 'insufficient_privilege', HINT = 'Approvers and administrators list them.';
  END IF;
  RETURN QUERY SELECT r.id, r.person, r.job, r.valid_until, r.requested_by, r.requested_at
    FROM pgwarden.job_requests r WHERE r.status = 'pending' ORDER BY r.id;
END
$$;

-- Nobody moves a person into a subtree they manage (that would widen what they see).
CREATE OR REPLACE FUNCTION pgwarden.move_person(person text, unit text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden._assert_admin();
BEGIN
  PERFORM pgwarden._require_person(person);
  IF NOT EXISTS (SELECT FROM pgwarden.units u WHERE u.name = move_person.unit) THEN
    RAISE EXCEPTION 'unit "%" does not exist', move_person.unit USING ERRCODE = 'no_data_found';
  END IF;
  IF move_person.unit = ANY (pgwarden.subtree_units(who)) THEN
    RAISE EXCEPTION 'permission denied: % manages "%", so may not move % into it', who, move_person.unit, person
      USING ERRCODE = 'insufficient_privilege', HINT = 'Ask an administrator who does not manage the target unit.';
  END IF;
  UPDATE pgwarden.people p SET unit = move_person.unit WHERE p.name = person;
END
$$;

-- Nobody moves a unit into a subtree they manage (that would widen what they see).
CREATE OR REPLACE FUNCTION pgwarden.move_unit(unit text, parent text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden._assert_admin();
BEGIN
  IF NOT EXISTS (SELECT FROM pgwarden.units u WHERE u.name = move_unit.parent) THEN
    RAISE EXCEPTION 'parent unit "%" does not exist', move_unit.parent USING ERRCODE = 'no_data_found';
  END IF;
  IF move_unit.parent = ANY (pgwarden.subtree_units(who)) THEN
    RAISE EXCEPTION 'permission denied: % manages "%", so may not move unit "%" under it', who, move_unit.parent, move_unit.unit
      USING ERRCODE = 'insufficient_privilege', HINT = 'Ask an administrator who does not manage the target unit.';
  END IF;
  UPDATE pgwarden.units u SET parent = move_unit.parent WHERE u.name = move_unit.unit;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'unit "%" does not exist', unit USING ERRCODE = 'no_data_found';
  END IF;
END
$$;

-- ------------------------------------------------------------------ the public pool

CREATE FUNCTION pgwarden.claim(tbl text, row_key text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who text := pgwarden._require_caller();
  t pgwarden.tables := pgwarden._table(tbl);
  used integer;
  n integer;
BEGIN
  IF t.claims_per_day IS NULL THEN
    RAISE EXCEPTION 'table "%" has no public pool to claim from', tbl
      USING ERRCODE = 'feature_not_supported', HINT = 'The model sets claims on tables with a pool.';
  END IF;
  IF NOT pgwarden._has_any_job(who, t.claim_jobs) THEN
    RAISE EXCEPTION 'permission denied: % may not claim % from the pool (needs one of the jobs %)', who, tbl, t.claim_jobs
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  -- one claimer at a time per person, so the quota cannot be raced
  PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('pgwarden.claim:' || who, 0));
  SELECT count(*) INTO used FROM pgwarden.claims c
  WHERE c.person = who AND c.table_name = tbl
    AND c.claimed_at >= (pg_catalog.date_trunc('day', pg_catalog.now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC');
  IF used >= t.claims_per_day THEN
    RAISE EXCEPTION 'claim refused: % has claimed % of % % allowed today (UTC)', who, used, t.claims_per_day, tbl
      USING ERRCODE = 'insufficient_privilege', HINT = 'The quota resets at midnight UTC.';
  END IF;
  EXECUTE pg_catalog.format('UPDATE %I.%I SET %I = $1, %I = false WHERE %I = $2::%s AND %I IS TRUE AND %I IS NULL',
      t.schema_name, t.table_name, t.owner_column, t.pool_column, t.key_column, t.key_type, t.pool_column, t.owner_column)
    USING who, row_key;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n = 0 THEN
    RAISE EXCEPTION '% % is not in the public pool', tbl, row_key
      USING ERRCODE = 'no_data_found', HINT = 'Only unowned rows marked as pool can be claimed.';
  END IF;
  INSERT INTO pgwarden.claims (table_name, row_key, person) VALUES (tbl, row_key, who);
  RETURN t.claims_per_day - used - 1;
END
$$;
COMMENT ON FUNCTION pgwarden.claim(text, text) IS 'Claims a pool row for the caller; returns the claims left today.';

CREATE FUNCTION pgwarden.release(tbl text, row_key text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who text := pgwarden._require_caller();
  t pgwarden.tables := pgwarden._table(tbl);
  n integer;
BEGIN
  IF t.pool_column IS NULL OR t.owner_column IS NULL THEN
    RAISE EXCEPTION 'table "%" has no public pool', tbl USING ERRCODE = 'feature_not_supported';
  END IF;
  EXECUTE pg_catalog.format('UPDATE %I.%I SET %I = NULL, %I = true WHERE %I = $2::%s AND %I = $1',
      t.schema_name, t.table_name, t.owner_column, t.pool_column, t.key_column, t.key_type, t.owner_column)
    USING who, row_key;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n = 0 THEN
    RAISE EXCEPTION 'permission denied: % does not own % %', who, tbl, row_key
      USING ERRCODE = 'insufficient_privilege', HINT = 'Only the owner releases a row to the pool.';
  END IF;
END
$$;

-- ------------------------------------------------------------------ the recycle bin

-- Called by the generated INSTEAD OF DELETE triggers (EXECUTE only for the view owner): copies
-- the row and its child rows into the bin and deletes the children. The trigger then deletes
-- the row under the person's delete policy; if that refuses, everything rolls back.
CREATE FUNCTION pgwarden._bin_put(tbl text, row_key text, person text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t pgwarden.tables := pgwarden._table(tbl);
  rowdata jsonb;
  kids jsonb := '[]';
  part jsonb;
  c jsonb;
  ct pgwarden.tables;
  id bigint;
BEGIN
  EXECUTE pg_catalog.format('SELECT pg_catalog.to_jsonb(x) FROM %I.%I x WHERE %I = $1::%s',
      t.schema_name, t.table_name, t.key_column, t.key_type) INTO rowdata USING row_key;
  IF rowdata IS NULL THEN
    RETURN NULL;
  END IF;
  FOR c IN SELECT * FROM pg_catalog.jsonb_array_elements(t.children) LOOP
    ct := pgwarden._table(c ->> 'table');
    EXECUTE pg_catalog.format(
        'WITH gone AS (DELETE FROM %I.%I x WHERE %I = $1::%s RETURNING pg_catalog.to_jsonb(x) AS r) '
        'SELECT COALESCE(pg_catalog.jsonb_agg(r), ''[]'') FROM gone',
        ct.schema_name, ct.table_name, c ->> 'column', t.key_type) INTO part USING row_key;
    IF pg_catalog.jsonb_array_length(part) > 0 THEN
      kids := kids || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('table', ct.name, 'rows', part));
    END IF;
  END LOOP;
  INSERT INTO pgwarden.recycle_bin (table_name, row_key, row_data, children, deleted_by, purge_after)
  VALUES (tbl, row_key, rowdata, kids, person, now() + pg_catalog.make_interval(days => COALESCE(t.retention_days, 30)))
  RETURNING recycle_bin.id INTO id;
  RETURN id;
END
$$;

-- Brings a deleted row (and its children) back, within the retention period. Allowed for the
-- person who deleted it, an administrator, or a superuser.
CREATE FUNCTION pgwarden.restore(bin_id bigint) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  caller name := pgwarden.caller();
  who text := pgwarden._person(caller);
  b pgwarden.recycle_bin;
  t pgwarden.tables;
  ct pgwarden.tables;
  k jsonb;
  restored integer := 0;
BEGIN
  SELECT * INTO b FROM pgwarden.recycle_bin x WHERE x.id = bin_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'recycle bin entry % does not exist (or was purged)', bin_id USING ERRCODE = 'no_data_found';
  END IF;
  IF NOT (b.deleted_by = who
          OR EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = caller AND r.rolsuper)
          OR EXISTS (SELECT FROM pgwarden.job_grants g JOIN pgwarden.jobs j ON j.name = g.job
                     WHERE g.person = who AND j.admin AND pgwarden._active(g.valid_from, g.valid_until, g.revoked_at))) THEN
    RAISE EXCEPTION 'permission denied: % may not restore recycle bin entry % (deleted by %)', COALESCE(who, caller::text), bin_id, b.deleted_by
      USING ERRCODE = 'insufficient_privilege', HINT = 'The person who deleted it, or an administrator, can restore it.';
  END IF;
  IF b.restored_at IS NOT NULL THEN
    RAISE EXCEPTION 'recycle bin entry % was already restored at %', bin_id, b.restored_at USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF b.purge_after <= now() THEN
    RAISE EXCEPTION 'recycle bin entry % is past its retention (until %)', bin_id, b.purge_after
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Rows past retention can only be purged.';
  END IF;
  t := pgwarden._table(b.table_name);
  EXECUTE pg_catalog.format('INSERT INTO %I.%I OVERRIDING SYSTEM VALUE SELECT * FROM pg_catalog.jsonb_populate_record(NULL::%I.%I, $1)',
      t.schema_name, t.table_name, t.schema_name, t.table_name) USING b.row_data;
  restored := 1;
  FOR k IN SELECT * FROM pg_catalog.jsonb_array_elements(b.children) LOOP
    ct := pgwarden._table(k ->> 'table');
    EXECUTE pg_catalog.format('INSERT INTO %I.%I OVERRIDING SYSTEM VALUE SELECT * FROM pg_catalog.jsonb_populate_recordset(NULL::%I.%I, $1)',
        ct.schema_name, ct.table_name, ct.schema_name, ct.table_name) USING k -> 'rows';
    restored := restored + pg_catalog.jsonb_array_length(k -> 'rows');
  END LOOP;
  UPDATE pgwarden.recycle_bin x SET restored_at = now(), restored_by = caller WHERE x.id = bin_id;
  RETURN pg_catalog.jsonb_build_object('table', b.table_name, 'key', b.row_key, 'rows', restored);
END
$$;

-- Purges entries past retention; only an administrator or superuser, and only explicitly.
-- Returns what it purged.
CREATE FUNCTION pgwarden.purge_recycle_bin(dry_run boolean DEFAULT false)
RETURNS TABLE (id bigint, table_name text, row_key text, deleted_by text, deleted_at timestamptz, purge_after timestamptz, child_rows integer)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM pgwarden._assert_admin();
  IF dry_run THEN
    RETURN QUERY SELECT b.id, b.table_name, b.row_key, b.deleted_by, b.deleted_at, b.purge_after,
        (SELECT COALESCE(sum(pg_catalog.jsonb_array_length(k -> 'rows')), 0)::integer FROM pg_catalog.jsonb_array_elements(b.children) k)
      FROM pgwarden.recycle_bin b WHERE b.restored_at IS NULL AND b.purge_after <= now() ORDER BY b.id;
    RETURN;
  END IF;
  RETURN QUERY WITH gone AS (
      DELETE FROM pgwarden.recycle_bin b WHERE b.restored_at IS NULL AND b.purge_after <= now() RETURNING b.*)
    SELECT g.id, g.table_name, g.row_key, g.deleted_by, g.deleted_at, g.purge_after,
        (SELECT COALESCE(sum(pg_catalog.jsonb_array_length(k -> 'rows')), 0)::integer FROM pg_catalog.jsonb_array_elements(g.children) k)
      FROM gone g ORDER BY g.id;
END
$$;

-- ------------------------------------------------------------------ lifecycle

-- Offboards a person in one transaction: the role can no longer log in or be used, their direct
-- sessions end, their rows go to `handover` (or back to the pool), their shares, grants, jobs
-- and management end. Returns what it did; a second run reports nothing left to do.
CREATE FUNCTION pgwarden.offboard(person text, handover text DEFAULT NULL, to_pool boolean DEFAULT false) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden._assert_admin();
  p pgwarden.people := pgwarden._require_person(person);
  t pgwarden.tables;
  n integer;
  moved jsonb := '{}';
  report jsonb := '{}';
  total integer := 0;
  pid integer;
BEGIN
  PERFORM pgwarden._not_self(who, person);
  IF (handover IS NULL) = (NOT to_pool) THEN
    RAISE EXCEPTION 'offboarding % needs exactly one of a handover person or to_pool', person
      USING ERRCODE = 'invalid_parameter_value', HINT = 'pgwarden person offboard <name> --handover <person> | --to-pool';
  END IF;
  IF handover IS NOT NULL THEN
    IF handover = person THEN
      RAISE EXCEPTION 'cannot hand % over to themselves', person USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM pgwarden.people x WHERE x.name = handover AND x.active) THEN
      RAISE EXCEPTION 'handover person "%" does not exist or is not active', handover USING ERRCODE = 'no_data_found';
    END IF;
  END IF;

  -- 1. identity: no login, the application can no longer act as them, direct sessions end
  IF p.active THEN
    UPDATE pgwarden.people x SET active = false, deactivated_at = now() WHERE x.name = person;
    total := total + 1;
  END IF;
  report := report || pg_catalog.jsonb_build_object('deactivated', p.active);
  IF EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = p.role AND r.rolcanlogin) THEN
    EXECUTE pg_catalog.format('ALTER ROLE %I NOLOGIN', p.role);
    total := total + 1;
  END IF;
  IF pg_catalog.pg_has_role(pgwarden._setting('authenticator'), p.role, 'MEMBER') THEN
    EXECUTE pg_catalog.format('REVOKE %I FROM %I', p.role, pgwarden._setting('authenticator'));
    total := total + 1;
  END IF;
  n := 0;
  FOR pid IN SELECT a.pid FROM pg_catalog.pg_stat_activity a
             WHERE a.usename = p.role AND a.pid <> pg_catalog.pg_backend_pid() LOOP
    IF pg_catalog.pg_terminate_backend(pid) THEN
      n := n + 1;
    END IF;
  END LOOP;
  report := report || pg_catalog.jsonb_build_object('sessions_ended', n);
  total := total + n;

  -- 2. their rows
  FOR t IN SELECT * FROM pgwarden.tables x WHERE x.owner_column IS NOT NULL ORDER BY x.name LOOP
    IF handover IS NOT NULL THEN
      EXECUTE pg_catalog.format('UPDATE %I.%I SET %I = $2 WHERE %I = $1', t.schema_name, t.table_name, t.owner_column, t.owner_column)
        USING person, handover;
    ELSIF t.pool_column IS NOT NULL THEN
      EXECUTE pg_catalog.format('UPDATE %I.%I SET %I = NULL, %I = true WHERE %I = $1', t.schema_name, t.table_name, t.owner_column, t.pool_column, t.owner_column)
        USING person;
    ELSE
      EXECUTE pg_catalog.format('UPDATE %I.%I SET %I = NULL WHERE %I = $1', t.schema_name, t.table_name, t.owner_column, t.owner_column)
        USING person;
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
      moved := moved || pg_catalog.jsonb_build_object(t.name, n);
      total := total + n;
    END IF;
  END LOOP;
  report := report || pg_catalog.jsonb_build_object('rows_moved', moved, 'moved_to', COALESCE(handover, 'pool'));

  -- 3. everything they hold ends now
  UPDATE pgwarden.shares s SET revoked_at = now(), revoked_by = who
  WHERE s.person = offboard.person AND s.revoked_at IS NULL AND (s.valid_until IS NULL OR s.valid_until > now());
  GET DIAGNOSTICS n = ROW_COUNT; report := report || pg_catalog.jsonb_build_object('shares_ended', n); total := total + n;
  UPDATE pgwarden.temp_grants g SET revoked_at = now(), revoked_by = who
  WHERE g.person = offboard.person AND g.revoked_at IS NULL AND g.valid_until > now();
  GET DIAGNOSTICS n = ROW_COUNT; report := report || pg_catalog.jsonb_build_object('temporary_grants_ended', n); total := total + n;
  UPDATE pgwarden.job_grants g SET revoked_at = now(), revoked_by = who
  WHERE g.person = offboard.person AND g.revoked_at IS NULL AND (g.valid_until IS NULL OR g.valid_until > now());
  GET DIAGNOSTICS n = ROW_COUNT; report := report || pg_catalog.jsonb_build_object('jobs_ended', n); total := total + n;
  UPDATE pgwarden.unit_managers m SET revoked_at = now(), revoked_by = who
  WHERE m.person = offboard.person AND m.revoked_at IS NULL AND (m.valid_until IS NULL OR m.valid_until > now());
  GET DIAGNOSTICS n = ROW_COUNT; report := report || pg_catalog.jsonb_build_object('management_ended', n); total := total + n;
  UPDATE pgwarden.job_requests r SET status = 'rejected', decided_by = who, decided_at = now(), reason = 'person offboarded'
  WHERE r.person = offboard.person AND r.status = 'pending';
  GET DIAGNOSTICS n = ROW_COUNT; report := report || pg_catalog.jsonb_build_object('requests_closed', n); total := total + n;

  RETURN report || pg_catalog.jsonb_build_object('person', person, 'changes', total, 'nothing_to_do', total = 0);
END
$$;

-- Removes ended grants, shares, jobs and management rows, and reports what it removed.
CREATE FUNCTION pgwarden.sweep() RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  report jsonb := '{}';
  n integer;
BEGIN
  PERFORM pgwarden._assert_admin();
  DELETE FROM pgwarden.temp_grants g WHERE g.revoked_at IS NOT NULL OR g.valid_until <= now();
  GET DIAGNOSTICS n = ROW_COUNT; report := report || pg_catalog.jsonb_build_object('temporary_grants', n);
  DELETE FROM pgwarden.shares s WHERE s.revoked_at IS NOT NULL OR s.valid_until <= now();
  GET DIAGNOSTICS n = ROW_COUNT; report := report || pg_catalog.jsonb_build_object('shares', n);
  DELETE FROM pgwarden.unit_managers m WHERE m.revoked_at IS NOT NULL OR m.valid_until <= now();
  GET DIAGNOSTICS n = ROW_COUNT; report := report || pg_catalog.jsonb_build_object('management', n);
  DELETE FROM pgwarden.job_grants g
  WHERE (g.revoked_at IS NOT NULL OR g.valid_until <= now())
    AND NOT EXISTS (SELECT FROM pgwarden.job_requests r WHERE r.job_grant = g.id);
  GET DIAGNOSTICS n = ROW_COUNT; report := report || pg_catalog.jsonb_build_object('jobs', n);
  RETURN report;
END
$$;

-- Whether the caller may read the audit log (a job marked audit reader in the model).
CREATE FUNCTION pgwarden.is_audit_reader(p name) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT EXISTS (SELECT FROM pgwarden.job_grants g JOIN pgwarden.jobs j ON j.name = g.job
                 WHERE g.person = pgwarden._self(p) AND j.audit_reader
                   AND pgwarden._active(g.valid_from, g.valid_until, g.revoked_at))
$$;

-- A person's own entries, and nobody else's.
CREATE FUNCTION pgwarden.me() RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who text := pgwarden._require_caller();
BEGIN
  RETURN (SELECT pg_catalog.jsonb_build_object(
    'person', p.name, 'role', p.role, 'unit', p.unit,
    'jobs', (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('job', g.job, 'until', g.valid_until) ORDER BY g.job), '[]')
             FROM pgwarden.job_grants g WHERE g.person = who AND pgwarden._active(g.valid_from, g.valid_until, g.revoked_at)),
    'manages', (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('unit', m.unit, 'until', m.valid_until) ORDER BY m.unit), '[]')
                FROM pgwarden.unit_managers m WHERE m.person = who AND pgwarden._active(m.valid_from, m.valid_until, m.revoked_at)),
    'shares', (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('table', s.table_name, 'key', s.row_key, 'until', s.valid_until) ORDER BY s.id), '[]')
               FROM pgwarden.shares s WHERE s.person = who AND pgwarden._active(s.valid_from, s.valid_until, s.revoked_at)),
    'temporary_grants', (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('id', t.id, 'label', t.label, 'table', t.table_name, 'access', t.access, 'filter', t.filter, 'until', t.valid_until) ORDER BY t.id), '[]')
                         FROM pgwarden.temp_grants t WHERE t.person = who AND pgwarden._active(t.valid_from, t.valid_until, t.revoked_at)),
    'pending_requests', (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('id', r.id, 'job', r.job) ORDER BY r.id), '[]')
                         FROM pgwarden.job_requests r WHERE r.person = who AND r.status = 'pending'))
    FROM pgwarden.people p WHERE p.name = who);
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA pgwarden FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgwarden FROM PUBLIC;

-- ------------------------------------------------------------------ writes through the views
-- The generated INSTEAD OF row triggers skip rows outside the person's update/delete scope, as
-- row level security does, and count them here; the statement trigger below then refuses a
-- statement that reached rows but changed none of them, so it never reports "UPDATE 0" for a
-- row the person can see and tried to change without an error saying why. The counters live in
-- transaction-local settings, reset before each statement; setting them by hand can only turn
-- such an error into a silent "0".

CREATE FUNCTION pgwarden._write_skipped(row_key text) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT pg_catalog.set_config('pgwarden.write_skipped',
    CASE WHEN pg_catalog.current_setting('pgwarden.write_skipped', true) IS NULL
              OR pg_catalog.current_setting('pgwarden.write_skipped', true) = '' THEN row_key
         WHEN pg_catalog.length(pg_catalog.current_setting('pgwarden.write_skipped', true)) > 200 THEN pg_catalog.current_setting('pgwarden.write_skipped', true)
         ELSE pg_catalog.current_setting('pgwarden.write_skipped', true) || ', ' || row_key END, true);
  SELECT NULL::void;
$$;

CREATE FUNCTION pgwarden._write_done() RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT pg_catalog.set_config('pgwarden.write_done',
    (COALESCE(NULLIF(pg_catalog.current_setting('pgwarden.write_done', true), ''), '0')::bigint + 1)::text, true);
  SELECT NULL::void;
$$;

CREATE FUNCTION pgwarden._write_statement() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  skipped text := COALESCE(pg_catalog.current_setting('pgwarden.write_skipped', true), '');
  done text := COALESCE(NULLIF(pg_catalog.current_setting('pgwarden.write_done', true), ''), '0');
BEGIN
  IF TG_WHEN = 'BEFORE' THEN
    PERFORM pg_catalog.set_config('pgwarden.write_skipped', '', true);
    PERFORM pg_catalog.set_config('pgwarden.write_done', '0', true);
    RETURN NULL;
  END IF;
  PERFORM pg_catalog.set_config('pgwarden.write_skipped', '', true);
  PERFORM pg_catalog.set_config('pgwarden.write_done', '0', true);
  IF done = '0' AND skipped <> '' THEN
    RAISE EXCEPTION 'permission denied: % may not % % %: no % rule of the model reaches % row',
        COALESCE(pgwarden.person_name(pgwarden.caller()), pgwarden.caller()::text), pg_catalog.lower(TG_OP), TG_TABLE_NAME, skipped,
        pg_catalog.lower(TG_OP), CASE WHEN pg_catalog.strpos(skipped, ',') > 0 THEN 'any such' ELSE 'this' END
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'The person may see these rows but not ' || pg_catalog.lower(TG_OP) || ' them.';
  END IF;
  RETURN NULL;
END
$$;

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgwarden FROM PUBLIC;
