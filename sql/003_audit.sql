-- pgwarden:owner audit
-- pgwarden runtime catalog, version 3: the audit log.
--
-- Run as the audit owner role (NOLOGIN; nobody is a member), in schema "pgwarden_audit", which
-- apply creates first. The generated row-change triggers on protected tables and the triggers
-- on pgwarden's own tables (people, grants, shares, applies, ...) write here, through the
-- SECURITY DEFINER functions below; nobody else can insert, and nobody can update, delete or
-- truncate (no privilege, and triggers that refuse even the owner).
--
-- Tamper evidence: a hash chain in pgwarden_audit.chain. Records are sealed into the chain
-- after their transaction committed, in one place at a time (pgwarden_audit.seal(), under an
-- advisory lock), so writers never wait for each other and the chain never forks. Each link is
--   hash(n) = sha256(hash(n-1) || canonical(record))
-- where canonical() is a jsonb text with times in UTC and fixed formats, independent of the
-- session's TimeZone, DateStyle or extra_float_digits. `pgwarden audit verify` recomputes it
-- outside the database; `pgwarden audit anchor` gives the head an auditor keeps elsewhere.

CREATE TABLE pgwarden_audit.records (
  id bigint GENERATED ALWAYS AS IDENTITY,
  recorded_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
  kind text NOT NULL CHECK (kind IN ('data', 'permission', 'apply', 'reveal', 'export', 'denied')),
  table_name text,
  operation text NOT NULL,
  row_key text,
  changes jsonb,
  person text,
  actor name NOT NULL,
  authenticator name NOT NULL,
  txid xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
  statement_at timestamptz NOT NULL DEFAULT pg_catalog.statement_timestamp(),
  detail jsonb,
  PRIMARY KEY (recorded_at, id)
) PARTITION BY RANGE (recorded_at);
COMMENT ON TABLE pgwarden_audit.records IS
  'One record per row change of a protected table or of pgwarden''s catalog, per apply, reveal, export and refused attempt. Append-only.';
COMMENT ON COLUMN pgwarden_audit.records.changes IS
  '{"column": {"old": value, "new": value}}; sensitive columns hold keyed hashes ("hmac:...") instead of values.';
COMMENT ON COLUMN pgwarden_audit.records.person IS 'The person acting (pgwarden person name), NULL when the actor is no person.';
COMMENT ON COLUMN pgwarden_audit.records.actor IS 'The role acting: SET ROLE target, or the login role.';
COMMENT ON COLUMN pgwarden_audit.records.authenticator IS 'session_user: the login role (the application, or a person logging in directly).';
-- Only the index the sealer needs: every index is paid for by every write.
CREATE INDEX records_txid ON pgwarden_audit.records (txid);
CREATE TABLE pgwarden_audit.records_default PARTITION OF pgwarden_audit.records DEFAULT;

CREATE TABLE pgwarden_audit.chain (
  seq bigint PRIMARY KEY CHECK (seq > 0),
  record_id bigint NOT NULL UNIQUE,
  recorded_at timestamptz NOT NULL,
  hash text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
  sealed_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pgwarden_audit.chain IS 'The hash chain over audit records, in sealing order. Append-only.';

CREATE TABLE pgwarden_audit.seal_state (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  horizon xid8
);
INSERT INTO pgwarden_audit.seal_state DEFAULT VALUES;
COMMENT ON TABLE pgwarden_audit.seal_state IS
  'Every genuine record of a transaction older than horizon (the last complete seal''s) is sealed, so an unsealed one is forged.';

CREATE TABLE pgwarden_audit.archives (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  partition_name text NOT NULL UNIQUE,
  range_from timestamptz NOT NULL,
  range_to timestamptz NOT NULL,
  records bigint NOT NULL,
  first_seq bigint,
  last_seq bigint,
  file text NOT NULL,
  file_sha256 text NOT NULL,
  archived_at timestamptz NOT NULL DEFAULT now(),
  archived_by name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE pgwarden_audit.archives IS
  'Partitions exported to a file (with its sha256) and then detached (kept as tables, never dropped).';

-- The key for hashing sensitive values. Readable by nobody but this role.
CREATE TABLE pgwarden_audit.hash_key (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  key bytea NOT NULL CHECK (pg_catalog.octet_length(key) >= 32)
);
INSERT INTO pgwarden_audit.hash_key (key)
VALUES (pg_catalog.decode(pg_catalog.replace(pg_catalog.gen_random_uuid()::text || pg_catalog.gen_random_uuid()::text, '-', ''), 'hex'));

-- ------------------------------------------------------------------ partitions

-- Refuses changes to audit data, even by the owner (ENABLE ALWAYS: replica mode cannot skip it).
CREATE FUNCTION pgwarden_audit.refuse_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RAISE EXCEPTION 'audit data is append-only: % on %.% is refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege', HINT = 'Old partitions are archived with pgwarden audit archive, never changed.';
END
$$;

-- Row triggers on a partitioned table reach its partitions, statement (TRUNCATE) triggers do
-- not, and a detached partition keeps neither: this puts both on one table of the schema.
CREATE FUNCTION pgwarden_audit.protect(tbl text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  rel regclass := pg_catalog.format('pgwarden_audit.%I', tbl)::regclass;
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t WHERE t.tgrelid = rel AND t.tgname = 'append_only_truncate') THEN
    EXECUTE pg_catalog.format('CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION pgwarden_audit.refuse_change()', rel);
    EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ALWAYS TRIGGER append_only_truncate', rel);
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t WHERE t.tgrelid = rel AND t.tgname IN ('append_only', 'append_only_row')) THEN
    EXECUTE pg_catalog.format('CREATE TRIGGER append_only_row BEFORE UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION pgwarden_audit.refuse_change()', rel);
    EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ALWAYS TRIGGER append_only_row', rel);
  END IF;
END
$$;

-- Monthly partitions from `from_month` for `months` months (idempotent).
CREATE FUNCTION pgwarden_audit.ensure_partitions(from_month date DEFAULT NULL, months integer DEFAULT 13) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  m date := pg_catalog.date_trunc('month', COALESCE(from_month, (pg_catalog.now() AT TIME ZONE 'UTC')::date - 31))::date;
  made integer := 0;
  name text;
  lo timestamptz;
  hi timestamptz;
BEGIN
  FOR i IN 0 .. months - 1 LOOP
    name := 'records_' || pg_catalog.to_char(m + pg_catalog.make_interval(months => i), 'YYYY_MM');
    lo := ((m + pg_catalog.make_interval(months => i))::timestamp AT TIME ZONE 'UTC');
    hi := ((m + pg_catalog.make_interval(months => i + 1))::timestamp AT TIME ZONE 'UTC');
    IF pg_catalog.to_regclass(pg_catalog.format('pgwarden_audit.%I', name)) IS NULL
       AND NOT EXISTS (SELECT FROM pgwarden_audit.archives a WHERE a.partition_name = name)
       AND NOT EXISTS (SELECT FROM pgwarden_audit.records_default d WHERE d.recorded_at >= lo AND d.recorded_at < hi) THEN
      EXECUTE pg_catalog.format('CREATE TABLE pgwarden_audit.%I PARTITION OF pgwarden_audit.records FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
      PERFORM pgwarden_audit.protect(name);
      made := made + 1;
    END IF;
  END LOOP;
  RETURN made;
END
$$;
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON pgwarden_audit.records_default FOR EACH STATEMENT EXECUTE FUNCTION pgwarden_audit.refuse_change();
ALTER TABLE pgwarden_audit.records_default ENABLE ALWAYS TRIGGER append_only_truncate;

-- ------------------------------------------------------------------ writing

CREATE FUNCTION pgwarden_audit.hash_value(v text) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN v IS NULL THEN NULL
    ELSE 'hmac:' || pg_catalog.left(pg_catalog.encode(pg_catalog.sha256(k.key || pg_catalog.convert_to(v, 'UTF8')), 'hex'), 32) END
  FROM pgwarden_audit.hash_key k
$$;
COMMENT ON FUNCTION pgwarden_audit.hash_value(text) IS
  'A keyed hash of a sensitive value: equal values give equal hashes, the key is readable by nobody.';

CREATE FUNCTION pgwarden_audit._person() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgwarden.person_name(pgwarden.caller()) $$;

-- Changed columns between two rows as jsonb, with sensitive columns hashed. For pgwarden's own
-- tables (few rows); protected tables get generated, per-column trigger functions instead.
CREATE FUNCTION pgwarden_audit.diff(old_row jsonb, new_row jsonb, sensitive text[] DEFAULT '{}') RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT COALESCE(pg_catalog.jsonb_object_agg(k,
           pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
             'old', CASE WHEN k = ANY (sensitive) THEN pg_catalog.to_jsonb(pgwarden_audit.hash_value(old_row ->> k)) ELSE old_row -> k END,
             'new', CASE WHEN k = ANY (sensitive) THEN pg_catalog.to_jsonb(pgwarden_audit.hash_value(new_row ->> k)) ELSE new_row -> k END))), '{}')
  FROM (SELECT pg_catalog.jsonb_object_keys(COALESCE(old_row, '{}') || COALESCE(new_row, '{}')) AS k) keys
  WHERE (old_row -> k) IS DISTINCT FROM (new_row -> k)
$$;

-- Statement-level trigger on pgwarden's own tables (TG_ARGV[0]: key column; TG_ARGV[1]:
-- comma-separated columns stored as keyed hashes, e.g. the recycle bin's copies of rows).
CREATE FUNCTION pgwarden_audit.catalog_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  keycol text := TG_ARGV[0];
  hashed text[] := CASE WHEN TG_NARGS > 1 THEN pg_catalog.string_to_array(TG_ARGV[1], ',') ELSE '{}' END;
  tbl text := TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME;
  kind text := CASE WHEN TG_TABLE_NAME = 'applies' THEN 'apply' ELSE 'permission' END;
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO pgwarden_audit.records (kind, table_name, operation, row_key, changes, person, actor, authenticator, detail)
    SELECT kind, tbl, 'INSERT', pg_catalog.to_jsonb(n) ->> keycol, pgwarden_audit.diff(NULL, pg_catalog.to_jsonb(n), hashed),
           pgwarden_audit._person(), pgwarden.caller(), session_user, NULL
    FROM new_rows n;
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO pgwarden_audit.records (kind, table_name, operation, row_key, changes, person, actor, authenticator)
    SELECT kind, tbl, 'UPDATE', COALESCE(pg_catalog.to_jsonb(n) ->> keycol, pg_catalog.to_jsonb(o) ->> keycol),
           pgwarden_audit.diff(pg_catalog.to_jsonb(o), pg_catalog.to_jsonb(n), hashed),
           pgwarden_audit._person(), pgwarden.caller(), session_user
    FROM old_rows o FULL JOIN new_rows n ON pg_catalog.to_jsonb(o) -> keycol = pg_catalog.to_jsonb(n) -> keycol;
  ELSE
    INSERT INTO pgwarden_audit.records (kind, table_name, operation, row_key, changes, person, actor, authenticator)
    SELECT kind, tbl, 'DELETE', pg_catalog.to_jsonb(o) ->> keycol, pgwarden_audit.diff(pg_catalog.to_jsonb(o), NULL, hashed),
           pgwarden_audit._person(), pgwarden.caller(), session_user
    FROM old_rows o;
  END IF;
  RETURN NULL;
END
$$;

-- Append-only, for every table of the log (the partitions get theirs from protect()).
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON pgwarden_audit.records FOR EACH ROW EXECUTE FUNCTION pgwarden_audit.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON pgwarden_audit.records FOR EACH STATEMENT EXECUTE FUNCTION pgwarden_audit.refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON pgwarden_audit.chain FOR EACH ROW EXECUTE FUNCTION pgwarden_audit.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON pgwarden_audit.chain FOR EACH STATEMENT EXECUTE FUNCTION pgwarden_audit.refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON pgwarden_audit.archives FOR EACH ROW EXECUTE FUNCTION pgwarden_audit.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON pgwarden_audit.archives FOR EACH STATEMENT EXECUTE FUNCTION pgwarden_audit.refuse_change();
ALTER TABLE pgwarden_audit.archives ENABLE ALWAYS TRIGGER append_only_truncate;
ALTER TABLE pgwarden_audit.records ENABLE ALWAYS TRIGGER append_only;
ALTER TABLE pgwarden_audit.records ENABLE ALWAYS TRIGGER append_only_truncate;
ALTER TABLE pgwarden_audit.chain ENABLE ALWAYS TRIGGER append_only;
ALTER TABLE pgwarden_audit.chain ENABLE ALWAYS TRIGGER append_only_truncate;
ALTER TABLE pgwarden_audit.archives ENABLE ALWAYS TRIGGER append_only;

-- Protected tables cannot be truncated except by their owner role (TG_ARGV[0]).
CREATE FUNCTION pgwarden_audit.refuse_truncate() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF current_user <> TG_ARGV[0]::name THEN
    RAISE EXCEPTION 'TRUNCATE of %.% is refused: it would bypass the audit log', TG_TABLE_SCHEMA, TG_TABLE_NAME
      USING ERRCODE = 'insufficient_privilege', HINT = 'Delete rows instead (audited), or act as the table owner role on purpose.';
  END IF;
  RETURN NULL;
END
$$;

-- ------------------------------------------------------------------ the chain

-- The canonical text of a record: what the chain hashes. Independent of session settings.
-- (pgwarden audit verify recomputes this with its own copy of the expression.)
CREATE FUNCTION pgwarden_audit.canonical(r pgwarden_audit.records) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT pg_catalog.jsonb_build_object(
    'id', r.id,
    'recorded_at', pg_catalog.to_char(r.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'kind', r.kind, 'table', r.table_name, 'operation', r.operation, 'row_key', r.row_key,
    'changes', r.changes, 'person', r.person, 'actor', r.actor::text, 'authenticator', r.authenticator::text,
    'txid', r.txid::text,
    'statement_at', pg_catalog.to_char(r.statement_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'detail', r.detail)::text
$$;

-- Seals committed records into the chain, oldest transaction first. One sealer at a time;
-- writers never wait for it. A record of a transaction older than the previous complete seal's
-- horizon should have been sealed then: it is left out (verify reports it as forged).
-- Returns how many records it sealed.
CREATE FUNCTION pgwarden_audit.seal(max_records integer DEFAULT 1000000) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  -- every transaction older than this has ended, so all its records are visible now
  cur_horizon xid8 := pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot());
  prev_horizon xid8;
  last_seq bigint;
  prev bytea;
  r pgwarden_audit.records;
  h bytea;
  n integer := 0;
BEGIN
  PERFORM pg_catalog.pg_advisory_xact_lock(7070777261756401);
  SELECT s.horizon INTO prev_horizon FROM pgwarden_audit.seal_state s;
  SELECT c.seq, pg_catalog.decode(c.hash, 'hex') INTO last_seq, prev FROM pgwarden_audit.chain c ORDER BY c.seq DESC LIMIT 1;
  last_seq := COALESCE(last_seq, 0);
  prev := COALESCE(prev, ''::bytea);
  FOR r IN
    SELECT x.* FROM pgwarden_audit.records x
    WHERE x.txid < cur_horizon
      AND (prev_horizon IS NULL OR x.txid >= prev_horizon)
      AND NOT EXISTS (SELECT FROM pgwarden_audit.chain c WHERE c.record_id = x.id)
    ORDER BY x.txid, x.id
    LIMIT max_records
  LOOP
    h := pg_catalog.sha256(prev || pg_catalog.convert_to(pgwarden_audit.canonical(r), 'UTF8'));
    last_seq := last_seq + 1;
    INSERT INTO pgwarden_audit.chain (seq, record_id, recorded_at, hash) VALUES (last_seq, r.id, r.recorded_at, pg_catalog.encode(h, 'hex'));
    prev := h;
    n := n + 1;
  END LOOP;
  IF n < max_records THEN
    UPDATE pgwarden_audit.seal_state SET horizon = cur_horizon;
  END IF;
  RETURN n;
END
$$;

-- The head of the chain: what an auditor keeps outside the database.
CREATE FUNCTION pgwarden_audit.anchor() RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT pg_catalog.jsonb_build_object('seq', COALESCE(max(c.seq), 0),
    'hash', (SELECT c2.hash FROM pgwarden_audit.chain c2 ORDER BY c2.seq DESC LIMIT 1),
    'records', (SELECT count(*) FROM pgwarden_audit.chain),
    'at', pg_catalog.to_char(pg_catalog.now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
  FROM pgwarden_audit.chain c
$$;

-- ------------------------------------------------------------------ reading

CREATE FUNCTION pgwarden_audit.assert_reader() RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF pgwarden.is_audit_reader(pgwarden.caller())
     OR EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = pgwarden.caller() AND r.rolsuper) THEN
    RETURN true;
  END IF;
  RAISE EXCEPTION 'permission denied: % may not read the audit log', COALESCE(pgwarden.person_name(pgwarden.caller()), pgwarden.caller()::text)
    USING ERRCODE = 'insufficient_privilege', HINT = 'Readers hold a job listed under audit.readers in the model.';
END
$$;

-- The auditor's view: every record, with its place in the chain (NULL until sealed).
CREATE VIEW pgwarden_audit.log WITH (security_barrier) AS
  SELECT r.id, r.recorded_at, r.kind, r.table_name, r.operation, r.row_key, r.changes, r.person, r.actor,
         r.authenticator, r.txid, r.statement_at, r.detail, c.seq AS chain_seq
  FROM pgwarden_audit.records r LEFT JOIN pgwarden_audit.chain c ON c.record_id = r.id
  WHERE (SELECT pgwarden_audit.assert_reader());
COMMENT ON VIEW pgwarden_audit.log IS 'The audit log, for people holding an audit reader job (and superusers).';

CREATE VIEW pgwarden_audit.data_changes WITH (security_barrier) AS
  SELECT * FROM pgwarden_audit.log WHERE kind = 'data';
CREATE VIEW pgwarden_audit.permission_changes WITH (security_barrier) AS
  SELECT * FROM pgwarden_audit.log WHERE kind IN ('permission', 'apply');

-- monthly partitions, after the parent's triggers exist (their row triggers are cloned)
SELECT pgwarden_audit.ensure_partitions();

REVOKE ALL ON ALL TABLES IN SCHEMA pgwarden_audit FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgwarden_audit FROM PUBLIC;
