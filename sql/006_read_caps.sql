-- pgwarden runtime catalog, version 6: read caps.
--
-- A bulk read through a view is not an export, but the model may cap the rows one statement can
-- read from a table for a job (readCap), so that SELECT * cannot become an export by another
-- name. The view counts the rows it produces for a capped person in the current statement and
-- refuses the statement when the count passes the cap. What it counts is rows that pass the
-- row policies and the caller's cheap filters (which the planner evaluates first); LIMIT stops
-- the count early. It cannot tell many small statements from one big one: the export quotas
-- and the audit of reads are the answer to that (see docs/security.md).

CREATE TABLE pgwarden.read_caps (
  key text PRIMARY KEY,
  table_name text NOT NULL REFERENCES pgwarden.tables (name) ON DELETE CASCADE,
  job text NOT NULL,
  max_rows integer NOT NULL CHECK (max_rows > 0)
);
COMMENT ON TABLE pgwarden.read_caps IS 'Rows one statement may read from a table, per job. Written by apply.';

-- The caller's cap on tbl: NULL (no cap) when any job they hold has no cap on tbl (the most
-- permissive job wins; a job that does not read tbl counts as uncapped too) or when they hold
-- no job at all; else the largest cap of their jobs.
CREATE FUNCTION pgwarden.read_cap(p name, tbl text) RETURNS integer
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  WITH mine AS (
    SELECT g.job FROM pgwarden.job_grants g
    WHERE g.person = pgwarden._self(p) AND pgwarden._active(g.valid_from, g.valid_until, g.revoked_at)
  )
  SELECT CASE WHEN EXISTS (SELECT FROM mine m WHERE NOT EXISTS (SELECT FROM pgwarden.read_caps c WHERE c.table_name = tbl AND c.job = m.job))
              THEN NULL
              ELSE (SELECT max(c.max_rows) FROM pgwarden.read_caps c JOIN mine m ON m.job = c.job WHERE c.table_name = tbl) END
$$;

-- Counts one row of tbl for the current statement; refuses past the cap.
CREATE FUNCTION pgwarden.count_read(tbl text, cap integer) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  setting text := 'pgwarden.read_' || pg_catalog.md5(tbl);
  stmt text := pg_catalog.to_char(pg_catalog.statement_timestamp(), 'YYYYMMDDHH24MISSUS') || ':' || pg_catalog.pg_backend_pid();
  cur text := pg_catalog.current_setting(setting, true);
  n integer := 1;
BEGIN
  IF cur IS NOT NULL AND pg_catalog.split_part(cur, '/', 1) = stmt THEN
    n := pg_catalog.split_part(cur, '/', 2)::integer + 1;
  END IF;
  IF n > cap THEN
    RAISE EXCEPTION 'permission denied: % may read at most % rows of % in one statement (rule readCap)',
      COALESCE(pgwarden.person_name(pgwarden.caller()), pgwarden.caller()::text), cap, tbl
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'Narrow the query (WHERE, LIMIT), or export through pgwarden export, which is recorded and counted.';
  END IF;
  PERFORM pg_catalog.set_config(setting, stmt || '/' || n, true);
  RETURN true;
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA pgwarden FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgwarden FROM PUBLIC;
