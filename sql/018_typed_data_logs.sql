-- pgwarden:owner audit
-- pgwarden runtime catalog, version 18: typed data logs, one per protected table.
--
-- Run as the audit owner. Until now every record went into one table, pgwarden_audit.records,
-- with the changed values as jsonb. Building that jsonb (and the keyed hashes as hex text) for
-- every changed row cost more than the write itself (bench/README.md, "Where the bulk time
-- goes"). From this version on:
--   - the row changes of each protected table go to a log of their own,
--     pgwarden_audit.data_<table>, with one typed column per table column and side ("o_x", "n_x";
--     sensitive columns as 16-byte keyed hashes, "oh_x", "nh_x"), written by the generated
--     statement triggers;
--   - the table that held every record keeps the other records (permission changes, applies,
--     reveals, exports, refused attempts) and is renamed pgwarden_audit.events;
--   - pgwarden_audit.records becomes a view: the events, and every data log turned back into the
--     same columns (the changes as jsonb, in a form that does not depend on session settings).
--     The chain, verify, log, report and archive read that view, so they stay as they were.
-- A data log is never dropped or narrowed: columns are only added, and the view rebuilds each
-- record from every column the log ever had, so a sealed record keeps its canonical text.

ALTER TABLE pgwarden_audit.records RENAME TO events;
COMMENT ON TABLE pgwarden_audit.events IS
  'Records other than row changes of protected tables: permission changes, applies, reveals, exports, refused attempts. Append-only.';

-- The data logs and the columns each one has had (append-only, like the logs).
CREATE TABLE pgwarden_audit.data_logs (
  log name PRIMARY KEY,
  table_name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE pgwarden_audit.data_logs IS 'The typed log of each protected table (pgwarden_audit.<log>), by table.';

CREATE TABLE pgwarden_audit.data_log_columns (
  log name NOT NULL REFERENCES pgwarden_audit.data_logs (log),
  column_name text NOT NULL,
  old_column name NOT NULL,
  new_column name NOT NULL,
  type regtype NOT NULL,
  hashed boolean NOT NULL,
  added_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  PRIMARY KEY (log, old_column),
  UNIQUE (log, new_column)
);
COMMENT ON TABLE pgwarden_audit.data_log_columns IS
  'The column pairs of each data log: the table column, its old and new value columns, and whether they hold keyed hashes.';

CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON pgwarden_audit.data_logs FOR EACH ROW EXECUTE FUNCTION pgwarden_audit.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON pgwarden_audit.data_logs FOR EACH STATEMENT EXECUTE FUNCTION pgwarden_audit.refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON pgwarden_audit.data_log_columns FOR EACH ROW EXECUTE FUNCTION pgwarden_audit.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON pgwarden_audit.data_log_columns FOR EACH STATEMENT EXECUTE FUNCTION pgwarden_audit.refuse_change();
ALTER TABLE pgwarden_audit.data_logs ENABLE ALWAYS TRIGGER append_only;
ALTER TABLE pgwarden_audit.data_logs ENABLE ALWAYS TRIGGER append_only_truncate;
ALTER TABLE pgwarden_audit.data_log_columns ENABLE ALWAYS TRIGGER append_only;
ALTER TABLE pgwarden_audit.data_log_columns ENABLE ALWAYS TRIGGER append_only_truncate;

-- How many column pairs the records view was last built with: the view is rebuilt once, at
-- commit, after a transaction added column pairs (an apply may add hundreds of logs).
CREATE TABLE pgwarden_audit.records_view_state (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  columns bigint NOT NULL
);
INSERT INTO pgwarden_audit.records_view_state (columns) VALUES (0);

-- ------------------------------------------------------------------ partitions

-- Monthly partitions of one partitioned table of the schema (the events or a data log), from
-- `from_month` for `months` months (idempotent). The events' partitions keep their names
-- (records_YYYY_MM); a data log's are <log>_YYYY_MM. A month that was archived, or whose rows
-- went to the default partition, gets no partition.
CREATE FUNCTION pgwarden_audit._ensure_partitions_of(parent name, from_month date, months integer) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  m date := pg_catalog.date_trunc('month', from_month)::date;
  prefix text := CASE WHEN parent = 'events' THEN 'records' ELSE parent END;
  deflt text := prefix || '_default';
  made integer := 0;
  name text;
  month text;
  lo timestamptz;
  hi timestamptz;
  used boolean;
BEGIN
  FOR i IN 0 .. months - 1 LOOP
    month := pg_catalog.to_char(m + pg_catalog.make_interval(months => i), 'YYYY_MM');
    name := prefix || '_' || month;
    lo := ((m + pg_catalog.make_interval(months => i))::timestamp AT TIME ZONE 'UTC');
    hi := ((m + pg_catalog.make_interval(months => i + 1))::timestamp AT TIME ZONE 'UTC');
    CONTINUE WHEN pg_catalog.to_regclass(pg_catalog.format('pgwarden_audit.%I', name)) IS NOT NULL;
    CONTINUE WHEN EXISTS (SELECT FROM pgwarden_audit.archives a WHERE a.partition_name = 'records_' || month);
    used := false;
    IF pg_catalog.to_regclass(pg_catalog.format('pgwarden_audit.%I', deflt)) IS NOT NULL THEN
      EXECUTE pg_catalog.format('SELECT EXISTS (SELECT FROM pgwarden_audit.%I d WHERE d.recorded_at >= $1 AND d.recorded_at < $2)', deflt)
        INTO used USING lo, hi;
    END IF;
    CONTINUE WHEN used;
    EXECUTE pg_catalog.format('CREATE TABLE pgwarden_audit.%I PARTITION OF pgwarden_audit.%I FOR VALUES FROM (%L) TO (%L)', name, parent, lo, hi);
    PERFORM pgwarden_audit.protect(name);
    made := made + 1;
  END LOOP;
  RETURN made;
END
$$;

-- Monthly partitions of every partitioned table of the schema, by default last month, this
-- month and the next (UTC): `pgwarden audit seal` runs it, so the next month's partitions exist
-- before the month begins. (Version 3 made 13 months ahead for its one table; with a log per
-- protected table, that would be 13 tables per table, each locked by every seal.)
CREATE OR REPLACE FUNCTION pgwarden_audit.ensure_partitions(from_month date DEFAULT NULL, months integer DEFAULT 3) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  made integer := 0;
  parent name;
BEGIN
  FOR parent IN
    SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'pgwarden_audit' AND c.relkind = 'p' ORDER BY c.relname
  LOOP
    made := made + pgwarden_audit._ensure_partitions_of(parent,
      COALESCE(from_month, (pg_catalog.now() AT TIME ZONE 'UTC')::date - 31), months);
  END LOOP;
  RETURN made;
END
$$;

-- The hash key, for the generated triggers (which run as this role): `(SELECT
-- pgwarden_audit._hash_key())` costs nothing until a sensitive value is hashed, where a subquery
-- on the table opens it at the start of every statement. Executable by nobody else.
CREATE FUNCTION pgwarden_audit._hash_key() RETURNS bytea
LANGUAGE plpgsql STABLE
AS $$
BEGIN
  RETURN (SELECT k.key FROM pgwarden_audit.hash_key k);
END
$$;

-- ------------------------------------------------------------------ the records view

-- The JSON value of a log column in the canonical record: independent of TimeZone, DateStyle
-- and extra_float_digits (times in UTC with fixed formats, floats as numeric), keyed hashes as
-- "hmac:" and 32 hex digits (the form pgwarden_audit.hash_value() gives).
CREATE FUNCTION pgwarden_audit._value_sql(col name, typ regtype, hashed boolean) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE
    WHEN hashed THEN pg_catalog.format('''hmac:'' || pg_catalog.encode(l.%I, ''hex'')', col)
    WHEN typ = 'timestamp with time zone'::regtype
      THEN pg_catalog.format('pg_catalog.to_char(l.%I AT TIME ZONE ''UTC'', ''YYYY-MM-DD"T"HH24:MI:SS.US"Z"'')', col)
    WHEN typ = 'timestamp without time zone'::regtype
      THEN pg_catalog.format('pg_catalog.to_char(l.%I, ''YYYY-MM-DD"T"HH24:MI:SS.US'')', col)
    WHEN typ IN ('real'::regtype, 'double precision'::regtype) THEN pg_catalog.format('(l.%I)::numeric', col)
    ELSE pg_catalog.format('l.%I', col)
  END
$$;

-- jsonb_build_object of many pairs, in pieces of at most 40 (a function takes 100 arguments).
CREATE FUNCTION pgwarden_audit._object_sql(pairs text[]) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT COALESCE(pg_catalog.string_agg('pg_catalog.jsonb_build_object(' || p.part || ')', ' || ' ORDER BY p.n), '''{}''::jsonb')
  FROM (SELECT (i - 1) / 40 AS n, pg_catalog.string_agg(pairs[i], ', ' ORDER BY i) AS part
        FROM pg_catalog.generate_subscripts(pairs, 1) i GROUP BY (i - 1) / 40) p
$$;

-- (Re)creates pgwarden_audit.records from the events and every data log, with the columns each
-- log has ever had (pgwarden_audit.data_log_columns). Called after a log is created or grows.
CREATE FUNCTION pgwarden_audit.rebuild_records_view() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  q text := 'SELECT e.id, e.recorded_at, e.kind, e.table_name, e.operation, e.row_key, e.changes, e.person, e.actor, e.authenticator, e.txid, e.statement_at, e.detail FROM pgwarden_audit.events e';
  lg record;
  key_type regtype;
  imgs_new text[];
  imgs_old text[];
  diffs text[];
BEGIN
  FOR lg IN SELECT d.log, d.table_name FROM pgwarden_audit.data_logs d ORDER BY d.log LOOP
    SELECT a.atttypid::regtype INTO key_type FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = pg_catalog.format('pgwarden_audit.%I', lg.log)::regclass AND a.attname = 'key';
    -- per table column, its value from whichever of its column pairs holds one
    SELECT pg_catalog.array_agg(pg_catalog.format('%L, %s', c.column_name, c.new_v) ORDER BY c.column_name),
           pg_catalog.array_agg(pg_catalog.format('%L, %s', c.column_name, c.old_v) ORDER BY c.column_name),
           pg_catalog.array_agg(pg_catalog.format('%L, %s', c.column_name, c.diff) ORDER BY c.column_name)
      INTO imgs_new, imgs_old, diffs
    FROM (
      SELECT x.column_name,
        CASE WHEN pg_catalog.count(*) = 1 THEN pg_catalog.min(x.nv) ELSE 'COALESCE(' || pg_catalog.string_agg('pg_catalog.to_jsonb(' || x.nv || ')', ', ' ORDER BY x.added_at, x.old_column) || ')' END AS new_v,
        CASE WHEN pg_catalog.count(*) = 1 THEN pg_catalog.min(x.ov) ELSE 'COALESCE(' || pg_catalog.string_agg('pg_catalog.to_jsonb(' || x.ov || ')', ', ' ORDER BY x.added_at, x.old_column) || ')' END AS old_v,
        'COALESCE(' || pg_catalog.string_agg(pg_catalog.format(
          'CASE WHEN l.%I IS NOT NULL OR l.%I IS NOT NULL THEN pg_catalog.jsonb_build_object(''old'', %s, ''new'', %s) END',
          x.old_column, x.new_column, x.ov, x.nv), ', ' ORDER BY x.added_at, x.old_column) || ')' AS diff
      FROM (SELECT c.*, pgwarden_audit._value_sql(c.new_column, c.type, c.hashed) AS nv,
                   pgwarden_audit._value_sql(c.old_column, c.type, c.hashed) AS ov
            FROM pgwarden_audit.data_log_columns c WHERE c.log = lg.log) x
      GROUP BY x.column_name
    ) c;
    q := q || pg_catalog.format(E'\nUNION ALL\nSELECT l.id, l.recorded_at, ''data''::text, %L::text, '
      'CASE l.op WHEN ''I'' THEN ''INSERT'' WHEN ''U'' THEN ''UPDATE'' ELSE ''DELETE'' END, %s, '
      'CASE l.op WHEN ''I'' THEN pg_catalog.jsonb_build_object(''new'', pg_catalog.jsonb_strip_nulls(%s)) '
      'WHEN ''D'' THEN pg_catalog.jsonb_build_object(''old'', pg_catalog.jsonb_strip_nulls(%s)) '
      'ELSE pg_catalog.jsonb_strip_nulls(%s) END, '
      'l.person, l.actor::name, l.authenticator::name, l.txid, l.statement_at, l.detail FROM pgwarden_audit.%I l',
      lg.table_name,
      CASE WHEN key_type = 'timestamp with time zone'::regtype
        THEN 'pg_catalog.to_char(l.key AT TIME ZONE ''UTC'', ''YYYY-MM-DD"T"HH24:MI:SS.US"Z"'')'
        ELSE 'l.key::text' END,
      pgwarden_audit._object_sql(COALESCE(imgs_new, '{}')),
      pgwarden_audit._object_sql(COALESCE(imgs_old, '{}')),
      pgwarden_audit._object_sql(COALESCE(diffs, '{}')),
      lg.log);
  END LOOP;
  EXECUTE 'CREATE OR REPLACE VIEW pgwarden_audit.records AS ' || q;
  UPDATE pgwarden_audit.records_view_state SET columns = (SELECT pg_catalog.count(*) FROM pgwarden_audit.data_log_columns);
  EXECUTE 'COMMENT ON VIEW pgwarden_audit.records IS ' || pg_catalog.quote_literal(
    'Every audit record: the events and the row changes of every data log, as one list (what the chain seals).');
  REVOKE ALL ON pgwarden_audit.records FROM PUBLIC;
END
$$;

-- Creates the data log of a protected table, or adds the columns it lacks (the records view is
-- rebuilt at commit). `cols`: [{"column", "old", "new", "hashed"}]; each value column takes the type
-- the table's column has now (bytea for keyed hashes). A column whose type changed cannot be
-- stored in the column its old values are in: refused, naming the column.
CREATE FUNCTION pgwarden_audit.ensure_data_log(log name, tbl_schema name, tbl name, key_column name, cols jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  rel regclass := pg_catalog.to_regclass(pg_catalog.format('pgwarden_audit.%I', log));
  -- by name in the catalog: the audit owner has no privilege on the protected schema
  src oid := (SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = tbl_schema AND c.relname = tbl);
  label text := tbl_schema || '.' || tbl;
  key_type regtype;
  c record;
  want regtype;
  have regtype;
  grew boolean := false;
BEGIN
  IF src IS NULL THEN
    RAISE EXCEPTION 'table %.% does not exist', tbl_schema, tbl USING ERRCODE = 'undefined_table';
  END IF;
  SELECT a.atttypid::regtype INTO key_type FROM pg_catalog.pg_attribute a
  WHERE a.attrelid = src AND a.attname = key_column AND a.attnum > 0 AND NOT a.attisdropped;
  IF key_type IS NULL THEN
    RAISE EXCEPTION 'table % has no column %', label, key_column USING ERRCODE = 'undefined_column';
  END IF;
  IF rel IS NULL THEN
    EXECUTE pg_catalog.format($f$CREATE TABLE pgwarden_audit.%I (
  id bigint NOT NULL DEFAULT pg_catalog.nextval('pgwarden_audit.records_id_seq'::regclass),
  recorded_at timestamptz NOT NULL,
  op "char" NOT NULL CHECK (op IN ('I', 'U', 'D')),
  key %s,
  person text,
  actor text NOT NULL,
  authenticator text NOT NULL,
  txid xid8 NOT NULL,
  statement_at timestamptz NOT NULL,
  detail jsonb
) PARTITION BY RANGE (recorded_at)$f$, log, key_type);
    EXECUTE pg_catalog.format('COMMENT ON TABLE pgwarden_audit.%I IS %L', log,
      'One record per row change of ' || label || ': o_/n_ columns hold old and new values, oh_/nh_ keyed hashes of sensitive ones (changed columns only, for an UPDATE). Append-only.');
    EXECUTE pg_catalog.format('CREATE INDEX ON pgwarden_audit.%I (txid)', log);
    EXECUTE pg_catalog.format('CREATE TABLE pgwarden_audit.%I PARTITION OF pgwarden_audit.%I DEFAULT', log || '_default', log);
    EXECUTE pg_catalog.format('REVOKE ALL ON pgwarden_audit.%I FROM PUBLIC', log);
    EXECUTE pg_catalog.format('CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON pgwarden_audit.%I FOR EACH ROW EXECUTE FUNCTION pgwarden_audit.refuse_change()', log);
    EXECUTE pg_catalog.format('CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON pgwarden_audit.%I FOR EACH STATEMENT EXECUTE FUNCTION pgwarden_audit.refuse_change()', log);
    EXECUTE pg_catalog.format('ALTER TABLE pgwarden_audit.%I ENABLE ALWAYS TRIGGER append_only', log);
    EXECUTE pg_catalog.format('ALTER TABLE pgwarden_audit.%I ENABLE ALWAYS TRIGGER append_only_truncate', log);
    PERFORM pgwarden_audit.protect(log || '_default');
    INSERT INTO pgwarden_audit.data_logs (log, table_name) VALUES (log, label);
    rel := pg_catalog.format('pgwarden_audit.%I', log)::regclass;
    grew := true;
  ELSIF NOT EXISTS (SELECT FROM pgwarden_audit.data_logs d WHERE d.log = ensure_data_log.log AND d.table_name = label) THEN
    RAISE EXCEPTION 'pgwarden_audit.% is not the data log of %', log, label
      USING ERRCODE = 'duplicate_table', HINT = 'Two protected tables map to one log name: rename one of them.';
  ELSE
    SELECT a.atttypid::regtype INTO have FROM pg_catalog.pg_attribute a WHERE a.attrelid = rel AND a.attname = 'key';
    IF have IS DISTINCT FROM key_type THEN
      RAISE EXCEPTION 'the key %.% changed type from % to %: its data log pgwarden_audit.% keeps % keys', label, key_column, have, key_type, log, have
        USING ERRCODE = 'datatype_mismatch',
              HINT = 'Changing an audited key''s type would rewrite sealed history: keep the type, or give the table a new name (a new log).';
    END IF;
  END IF;
  FOR c IN SELECT x.* FROM pg_catalog.jsonb_to_recordset(cols) AS x("column" text, old name, new name, hashed boolean) LOOP
    IF c.hashed THEN
      want := 'bytea'::regtype;
    ELSE
      SELECT a.atttypid::regtype INTO want FROM pg_catalog.pg_attribute a
      WHERE a.attrelid = src AND a.attname = c."column" AND a.attnum > 0 AND NOT a.attisdropped;
      IF want IS NULL THEN
        RAISE EXCEPTION 'table % has no column %', label, c."column" USING ERRCODE = 'undefined_column';
      END IF;
    END IF;
    have := NULL;
    SELECT a.atttypid::regtype INTO have FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = rel AND a.attname = c.new AND NOT a.attisdropped;
    IF have IS NULL THEN
      EXECUTE pg_catalog.format('ALTER TABLE pgwarden_audit.%I ADD COLUMN %I %s, ADD COLUMN %I %s', log, c.old, want, c.new, want);
      INSERT INTO pgwarden_audit.data_log_columns (log, column_name, old_column, new_column, type, hashed)
      VALUES (log, c."column", c.old, c.new, want, c.hashed);
      grew := true;
    ELSIF have <> want THEN
      RAISE EXCEPTION 'column %.% changed type from % to %: its data log pgwarden_audit.% keeps % values in %', label, c."column", have, want, log, have, c.new
        USING ERRCODE = 'datatype_mismatch',
              HINT = 'An audited column''s type cannot change without rewriting sealed history: keep the type, or add the new values as a column of another name.';
    END IF;
  END LOOP;
  IF grew THEN
    -- this month's and the next month's partitions of this log (seal makes the later ones)
    PERFORM pgwarden_audit._ensure_partitions_of(log, (pg_catalog.now() AT TIME ZONE 'UTC')::date, 2);
    -- (the records view follows at commit: records_view_behind below)
  END IF;
END
$$;
COMMENT ON FUNCTION pgwarden_audit.ensure_data_log(name, name, name, name, jsonb) IS
  'Creates or widens the typed data log of a protected table (never narrows or drops it); pgwarden_audit.records is rebuilt at commit.';

-- Rebuilds the records view at commit when column pairs were added since it was last built:
-- once per transaction, however many logs it made.
CREATE FUNCTION pgwarden_audit._records_view_behind() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF (SELECT s.columns FROM pgwarden_audit.records_view_state s)
     IS DISTINCT FROM (SELECT pg_catalog.count(*) FROM pgwarden_audit.data_log_columns) THEN
    PERFORM pgwarden_audit.rebuild_records_view();
  END IF;
  RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER records_view_behind AFTER INSERT ON pgwarden_audit.data_log_columns
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION pgwarden_audit._records_view_behind();
ALTER TABLE pgwarden_audit.data_log_columns ENABLE ALWAYS TRIGGER records_view_behind;

-- The view as it is before any data log exists: the events alone. The chain, the log views and
-- the functions below are bound to it.
SELECT pgwarden_audit.rebuild_records_view();

-- Nobody writes through the view: people are refused for want of privilege, the owner and
-- superusers by this trigger (the records are in the tables behind it, append-only as well).
CREATE TRIGGER append_only INSTEAD OF INSERT OR UPDATE OR DELETE ON pgwarden_audit.records
  FOR EACH ROW EXECUTE FUNCTION pgwarden_audit.refuse_change();

-- The auditor's views, now over every record.
CREATE OR REPLACE VIEW pgwarden_audit.log WITH (security_barrier) AS
  SELECT r.id, r.recorded_at, r.kind, r.table_name, r.operation, r.row_key, r.changes, r.person, r.actor,
         r.authenticator, r.txid, r.statement_at, r.detail, c.seq AS chain_seq
  FROM pgwarden_audit.records r LEFT JOIN pgwarden_audit.chain c ON c.record_id = r.id
  WHERE (SELECT pgwarden_audit.assert_reader());

-- The canonical text of a record of the view (the same expression as for the table before).
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

-- Seals committed records of every kind (the same rules as version 3, over the view).
CREATE OR REPLACE FUNCTION pgwarden_audit.seal(max_records integer DEFAULT 1000000) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
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

-- The writers of the other records, now into the events table.
CREATE OR REPLACE FUNCTION pgwarden_audit.catalog_changed() RETURNS trigger
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
    INSERT INTO pgwarden_audit.events (kind, table_name, operation, row_key, changes, person, actor, authenticator, detail)
    SELECT kind, tbl, 'INSERT', pg_catalog.to_jsonb(n) ->> keycol, pgwarden_audit.diff(NULL, pg_catalog.to_jsonb(n), hashed),
           pgwarden_audit._person(), pgwarden.caller(), session_user, NULL
    FROM new_rows n;
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO pgwarden_audit.events (kind, table_name, operation, row_key, changes, person, actor, authenticator)
    SELECT kind, tbl, 'UPDATE', COALESCE(pg_catalog.to_jsonb(n) ->> keycol, pg_catalog.to_jsonb(o) ->> keycol),
           pgwarden_audit.diff(pg_catalog.to_jsonb(o), pg_catalog.to_jsonb(n), hashed),
           pgwarden_audit._person(), pgwarden.caller(), session_user
    FROM old_rows o FULL JOIN new_rows n ON pg_catalog.to_jsonb(o) -> keycol = pg_catalog.to_jsonb(n) -> keycol;
  ELSE
    INSERT INTO pgwarden_audit.events (kind, table_name, operation, row_key, changes, person, actor, authenticator)
    SELECT kind, tbl, 'DELETE', pg_catalog.to_jsonb(o) ->> keycol, pgwarden_audit.diff(pg_catalog.to_jsonb(o), NULL, hashed),
           pgwarden_audit._person(), pgwarden.caller(), session_user
    FROM old_rows o;
  END IF;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION pgwarden_audit.record_event(kind text, tbl text, row_key text, detail jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  id bigint;
BEGIN
  IF kind NOT IN ('reveal', 'export', 'denied') THEN
    RAISE EXCEPTION 'unknown audit event kind %', kind USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO pgwarden_audit.events (kind, table_name, operation, row_key, person, actor, authenticator, detail)
  VALUES (kind, tbl, pg_catalog.upper(kind), row_key, pgwarden_audit._person(), pgwarden.caller(), session_user, detail)
  RETURNING events.id INTO id;
  RETURN id;
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA pgwarden_audit FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgwarden_audit FROM PUBLIC;
