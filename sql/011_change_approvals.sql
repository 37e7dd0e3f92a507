-- pgwarden runtime catalog, version 11: approval-gated edits.
--
-- The model marks some column edits as needing a second person (changeApproval). Such a write
-- through the view does not change the row: the generated write trigger files a pending change
-- here (pgwarden._request_change, executable by the view owner only) and reports UPDATE 0 with a
-- notice naming the change. An approver (related to the row as it would be after the change, as
-- the model says, checked by a generated pgwarden._approves_<table>() function) applies it with
-- pgwarden.approve_change(id); the requester never can. Unapproved changes expire after the
-- model's window. The data audit records the applied change as the requester's, approved by the
-- approver (pgwarden_audit.applying_change(), sql/012).
--
-- Same rules as 001: run as the catalog owner, definer functions pin search_path, EXECUTE is
-- revoked from PUBLIC at the end (apply grants it).

CREATE TABLE pgwarden.change_rules (
  key text PRIMARY KEY,
  table_name text NOT NULL,
  column_name text NOT NULL,
  requesters text[] NOT NULL,
  approvers text[] NOT NULL,
  cross_unit boolean NOT NULL DEFAULT false,
  expires_hours integer NOT NULL CHECK (expires_hours > 0),
  check_function text NOT NULL
);
COMMENT ON TABLE pgwarden.change_rules IS
  'Approval-gated columns of the model (changeApproval); written by pgwarden apply.';

CREATE TABLE pgwarden.change_requests (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  table_name text NOT NULL REFERENCES pgwarden.tables (name) ON DELETE CASCADE,
  row_key text NOT NULL,
  changes jsonb NOT NULL CHECK (jsonb_typeof(changes) = 'object'),
  requested_by text NOT NULL REFERENCES pgwarden.people (name),
  requested_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'applying', 'approved', 'rejected')),
  decided_by text,
  decided_at timestamptz,
  reason text,
  applied_txid xid8,
  CHECK (expires_at > requested_at)
);
CREATE INDEX change_requests_pending ON pgwarden.change_requests (table_name, row_key) WHERE status = 'pending';
COMMENT ON TABLE pgwarden.change_requests IS
  'Pending, approved and rejected changes: {"column": {"old": value, "new": value}}; expired = pending past expires_at.';

-- Internal: the unit of a person (for crossUnit gates). Executable by the view owner only.
CREATE FUNCTION pgwarden._unit_of(person text) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT p.unit FROM pgwarden.people p WHERE p.name = person $$;

-- Internal, called by the generated write triggers (as the view owner): files a change for the
-- calling person. Returns its id.
CREATE FUNCTION pgwarden._request_change(tbl text, row_key text, changes jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who text := pgwarden._require_caller();
  hours integer;
  id bigint;
BEGIN
  SELECT pg_catalog.min(r.expires_hours) INTO hours FROM pgwarden.change_rules r
  WHERE r.table_name = tbl AND r.column_name IN (SELECT pg_catalog.jsonb_object_keys(changes));
  IF hours IS NULL THEN
    RAISE EXCEPTION 'no column of this change of % needs approval', tbl USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO pgwarden.change_requests (table_name, row_key, changes, requested_by, expires_at)
  VALUES (tbl, row_key, changes, who, pg_catalog.now() + pg_catalog.make_interval(hours => hours))
  RETURNING change_requests.id INTO id;
  RETURN id;
END
$$;

-- Internal: may the caller approve change r? (the generated check of the table's approvers,
-- evaluated on the row as it would be after the change)
CREATE FUNCTION pgwarden._may_approve(r pgwarden.change_requests) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  fn text;
  ok boolean;
  cols text[] := ARRAY(SELECT pg_catalog.jsonb_object_keys(r.changes));
  newvals jsonb := (SELECT COALESCE(pg_catalog.jsonb_object_agg(k, v -> 'new'), '{}') FROM pg_catalog.jsonb_each(r.changes) AS e(k, v));
BEGIN
  SELECT c.check_function INTO fn FROM pgwarden.change_rules c WHERE c.table_name = r.table_name LIMIT 1;
  IF fn IS NULL THEN
    RETURN false;
  END IF;
  EXECUTE pg_catalog.format('SELECT pgwarden.%I($1, $2, $3, $4)', fn) INTO ok USING pgwarden.caller(), r.row_key, cols, newvals;
  RETURN COALESCE(ok, false);
END
$$;

CREATE FUNCTION pgwarden._change_state(r pgwarden.change_requests) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE WHEN r.status = 'pending' AND r.expires_at <= pg_catalog.now() THEN 'expired' ELSE r.status END $$;

-- Changes the caller requested, and pending changes the caller may approve.
CREATE FUNCTION pgwarden.pending_changes(include_decided boolean DEFAULT false)
RETURNS TABLE (id bigint, table_name text, row_key text, changes jsonb, requested_by text, requested_at timestamptz,
               expires_at timestamptz, status text, decided_by text, may_approve boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who text := pgwarden._require_caller();
  r pgwarden.change_requests;
  mine boolean;
  can boolean;
BEGIN
  FOR r IN SELECT * FROM pgwarden.change_requests c ORDER BY c.id LOOP
    IF NOT include_decided AND pgwarden._change_state(r) <> 'pending' THEN
      CONTINUE;
    END IF;
    mine := r.requested_by = who;
    can := NOT mine AND pgwarden._change_state(r) = 'pending' AND pgwarden._may_approve(r);
    IF mine OR can OR (include_decided AND r.decided_by = who) THEN
      id := r.id; table_name := r.table_name; row_key := r.row_key; changes := r.changes;
      requested_by := r.requested_by; requested_at := r.requested_at; expires_at := r.expires_at;
      status := pgwarden._change_state(r); decided_by := r.decided_by; may_approve := can;
      RETURN NEXT;
    END IF;
  END LOOP;
END
$$;

-- Applies a pending change: the caller must be one of its approvers (not its requester), it must
-- not have expired, and the row must still hold the values it was requested against.
CREATE FUNCTION pgwarden.approve_change(change_id bigint) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who text := pgwarden._require_caller();
  r pgwarden.change_requests;
  t pgwarden.tables;
  cur jsonb;
  k text;
  sets text;
  n integer;
BEGIN
  SELECT * INTO r FROM pgwarden.change_requests c WHERE c.id = change_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'change % does not exist', change_id USING ERRCODE = 'no_data_found';
  END IF;
  IF r.requested_by = who THEN
    RAISE EXCEPTION 'permission denied: % may not approve their own change %', who, change_id
      USING ERRCODE = 'insufficient_privilege', HINT = 'Another person, one of its approvers, must approve it.';
  END IF;
  IF pgwarden._change_state(r) <> 'pending' THEN
    RAISE EXCEPTION 'change % is %, not pending', change_id, pgwarden._change_state(r)
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Only pending changes can be approved; ask for the change again.';
  END IF;
  IF NOT pgwarden._may_approve(r) THEN
    RAISE EXCEPTION 'permission denied: % may not approve change % of % %', who, change_id, r.table_name, r.row_key
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'Approvers: ' || COALESCE((SELECT pg_catalog.string_agg(c.column_name || ': ' || pg_catalog.array_to_string(c.approvers, ' or '), '; ' ORDER BY c.column_name)
                                            FROM pgwarden.change_rules c WHERE c.table_name = r.table_name
                                              AND c.column_name IN (SELECT pg_catalog.jsonb_object_keys(r.changes))), '(none)');
  END IF;
  t := pgwarden._table(r.table_name);
  EXECUTE pg_catalog.format('SELECT pg_catalog.to_jsonb(x) FROM %I.%I x WHERE x.%I = $1::%s FOR UPDATE',
                            t.schema_name, t.table_name, t.key_column, t.key_type)
    INTO cur USING r.row_key;
  IF cur IS NULL THEN
    RAISE EXCEPTION 'change % cannot be applied: % % no longer exists', change_id, r.table_name, r.row_key
      USING ERRCODE = 'no_data_found', HINT = 'Reject it: pgwarden reject-change ' || change_id;
  END IF;
  FOR k IN SELECT pg_catalog.jsonb_object_keys(r.changes) LOOP
    IF (cur -> k) IS DISTINCT FROM (r.changes -> k -> 'old') THEN
      RAISE EXCEPTION 'change % cannot be applied: %.% of % changed since it was requested', change_id, r.table_name, k, r.row_key
        USING ERRCODE = 'serialization_failure', HINT = 'Reject it and ask for the change again.';
    END IF;
  END LOOP;
  -- 'applying' while the row changes: the audit trigger records the requester and the approver
  UPDATE pgwarden.change_requests c SET status = 'applying', decided_by = who, decided_at = pg_catalog.now(),
         applied_txid = pg_catalog.pg_current_xact_id()
  WHERE c.id = change_id;
  SELECT pg_catalog.string_agg(pg_catalog.format('%I = n.%I', k2, k2), ', ') INTO sets
  FROM pg_catalog.jsonb_object_keys(r.changes) AS k2;
  PERFORM pg_catalog.set_config('pgwarden.applying_change', change_id::text, true);
  EXECUTE pg_catalog.format('UPDATE %I.%I AS x SET %s FROM pg_catalog.jsonb_populate_record(NULL::%I.%I, $1) AS n WHERE x.%I = $2::%s',
                            t.schema_name, t.table_name, sets, t.schema_name, t.table_name, t.key_column, t.key_type)
    USING (SELECT pg_catalog.jsonb_object_agg(e.k, e.v -> 'new') FROM pg_catalog.jsonb_each(r.changes) AS e(k, v)), r.row_key;
  GET DIAGNOSTICS n = ROW_COUNT;
  PERFORM pg_catalog.set_config('pgwarden.applying_change', '', true);
  UPDATE pgwarden.change_requests c SET status = 'approved' WHERE c.id = change_id;
  RETURN pg_catalog.jsonb_build_object('change', change_id, 'table', r.table_name, 'row_key', r.row_key,
    'requested_by', r.requested_by, 'approved_by', who, 'rows', n);
END
$$;

-- Rejects a pending change: one of its approvers, or its requester (withdrawing it).
CREATE FUNCTION pgwarden.reject_change(change_id bigint, reason text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who text := pgwarden._require_caller();
  r pgwarden.change_requests;
BEGIN
  SELECT * INTO r FROM pgwarden.change_requests c WHERE c.id = change_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'change % does not exist', change_id USING ERRCODE = 'no_data_found';
  END IF;
  IF r.status <> 'pending' THEN
    RAISE EXCEPTION 'change % is %, not pending', change_id, r.status USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF r.requested_by <> who AND NOT pgwarden._may_approve(r) THEN
    RAISE EXCEPTION 'permission denied: % may not reject change %', who, change_id
      USING ERRCODE = 'insufficient_privilege', HINT = 'Its approvers reject it; its requester may withdraw it.';
  END IF;
  UPDATE pgwarden.change_requests c SET status = 'rejected', decided_by = who, decided_at = pg_catalog.now(),
         reason = reject_change.reason
  WHERE c.id = change_id;
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA pgwarden FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgwarden FROM PUBLIC;
