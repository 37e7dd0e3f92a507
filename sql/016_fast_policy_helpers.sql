-- Issue 8: policy helpers that cost little once per statement and do not grow with the number
-- of people (measured in docs/decisions.md, "Fast policies (issue 8)").
--
-- * caller(), _active() and the built-in masks are inlinable SQL: no SET clause, and every
--   function, operator and type schema-qualified, so the caller's search_path cannot change what
--   they mean. Where they are used there is no function call at all (a mask in a view's CASE is
--   a few string functions per cell; _active in a helper's WHERE is two comparisons per row).
-- * The definer helpers are PL/pgSQL: their queries are planned once per session, not once per
--   statement as SQL functions are (one call went from 60-650 us to 25-75 us). Each finds the
--   caller's person row once, by the unique role index, instead of calling _self() for every row
--   it reads; the org tree, shares, grants and assignments are read through indexes
--   (people.unit and units.parent are new).
-- * has_any_job(p, jobs): one call for a rule naming several jobs ('*': any active person).
-- * row_checks and row_checked(): who has scopes checked row by row, so that everyone else's
--   statements read only the indexes of the other scopes.
-- Semantics are unchanged: every helper still answers only for the active caller.

CREATE OR REPLACE FUNCTION pgwarden.caller() RETURNS name
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT CASE WHEN pg_catalog.current_setting('role') OPERATOR(pg_catalog.=) 'none' THEN session_user
              ELSE pg_catalog.current_setting('role')::pg_catalog.name END
$$;

CREATE OR REPLACE FUNCTION pgwarden._active(valid_from timestamptz, valid_until timestamptz, revoked_at timestamptz)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT revoked_at IS NULL AND valid_from OPERATOR(pg_catalog.<=) pg_catalog.statement_timestamp()
     AND (valid_until IS NULL OR valid_until OPERATOR(pg_catalog.>) pg_catalog.statement_timestamp())
$$;

CREATE INDEX IF NOT EXISTS people_unit ON pgwarden.people (unit);
CREATE INDEX IF NOT EXISTS units_parent ON pgwarden.units (parent);

CREATE OR REPLACE FUNCTION pgwarden.person_name(p name) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT x.name FROM pgwarden.people x WHERE x.role = p AND x.active AND p = pgwarden.caller());
END
$$;

CREATE OR REPLACE FUNCTION pgwarden.has_job(p name, job text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN EXISTS (
    SELECT FROM pgwarden.people x JOIN pgwarden.job_grants g ON g.person = x.name
    WHERE x.role = p AND x.active AND p = pgwarden.caller() AND g.job = has_job.job
      AND pgwarden._active(g.valid_from, g.valid_until, g.revoked_at));
END
$$;

CREATE FUNCTION pgwarden.has_any_job(p name, jobs text[]) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN EXISTS (
    SELECT FROM pgwarden.people x
    WHERE x.role = p AND x.active AND p = pgwarden.caller()
      AND ('*' = ANY (jobs) OR EXISTS (
        SELECT FROM pgwarden.job_grants g
        WHERE g.person = x.name AND g.job = ANY (jobs)
          AND pgwarden._active(g.valid_from, g.valid_until, g.revoked_at))));
END
$$;
COMMENT ON FUNCTION pgwarden.has_any_job(name, text[]) IS
  'Whether the caller is an active person holding one of jobs now (''*'': any active person).';
REVOKE ALL ON FUNCTION pgwarden.has_any_job(name, text[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION pgwarden.my_units(p name) RETURNS text[]
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT COALESCE(pg_catalog.array_agg(x.unit), '{}')
          FROM pgwarden.people x WHERE x.role = p AND x.active AND p = pgwarden.caller());
END
$$;

CREATE OR REPLACE FUNCTION pgwarden.subtree_units(p name) RETURNS text[]
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (
    WITH RECURSIVE tree(unit) AS (
      SELECT m.unit FROM pgwarden.people x JOIN pgwarden.unit_managers m ON m.person = x.name
      WHERE x.role = p AND x.active AND p = pgwarden.caller()
        AND pgwarden._active(m.valid_from, m.valid_until, m.revoked_at)
      UNION
      SELECT u.name FROM pgwarden.units u JOIN tree t ON u.parent = t.unit
    )
    SELECT COALESCE(pg_catalog.array_agg(tree.unit ORDER BY tree.unit), '{}') FROM tree);
END
$$;

CREATE OR REPLACE FUNCTION pgwarden.unit_people(p name) RETURNS text[]
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT COALESCE(pg_catalog.array_agg(y.name ORDER BY y.name), '{}')
          FROM pgwarden.people x JOIN pgwarden.people y ON y.unit = x.unit
          WHERE x.role = p AND x.active AND p = pgwarden.caller());
END
$$;

CREATE OR REPLACE FUNCTION pgwarden.subtree_people(p name) RETURNS text[]
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (
    WITH RECURSIVE tree(unit) AS (
      SELECT m.unit FROM pgwarden.people x JOIN pgwarden.unit_managers m ON m.person = x.name
      WHERE x.role = p AND x.active AND p = pgwarden.caller()
        AND pgwarden._active(m.valid_from, m.valid_until, m.revoked_at)
      UNION
      SELECT u.name FROM pgwarden.units u JOIN tree t ON u.parent = t.unit
    )
    SELECT COALESCE(pg_catalog.array_agg(y.name ORDER BY y.name), '{}')
    FROM pgwarden.people y WHERE y.unit IN (SELECT tree.unit FROM tree));
END
$$;

CREATE OR REPLACE FUNCTION pgwarden.shared_keys(p name, tbl text) RETURNS text[]
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT COALESCE(pg_catalog.array_agg(DISTINCT s.row_key), '{}')
          FROM pgwarden.people x JOIN pgwarden.shares s ON s.person = x.name
          WHERE x.role = p AND x.active AND p = pgwarden.caller() AND s.table_name = tbl
            AND pgwarden._active(s.valid_from, s.valid_until, s.revoked_at));
END
$$;

CREATE OR REPLACE FUNCTION pgwarden.grant_filters(p name, tbl text, acc text) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (
    WITH me AS (
      SELECT x.name FROM pgwarden.people x WHERE x.role = p AND x.active AND p = pgwarden.caller()
    )
    SELECT COALESCE(pg_catalog.jsonb_agg(f.filter ORDER BY f.src, f.id), '[]')
    FROM (
      SELECT 1 AS src, g.id, g.filter
      FROM me JOIN pgwarden.temp_grants g ON g.person = me.name
      WHERE g.table_name = tbl AND g.access = acc
        AND pgwarden._active(g.valid_from, g.valid_until, g.revoked_at)
      UNION ALL
      SELECT 2, g.id, g.filter
      FROM me JOIN pgwarden.team_members m ON m.person = me.name
        JOIN pgwarden.teams t ON t.name = m.team
        JOIN pgwarden.team_grants g ON g.team = m.team
      WHERE pgwarden._active(m.valid_from, m.valid_until, m.revoked_at)
        AND t.ends_at > pg_catalog.statement_timestamp()
        AND g.table_name = tbl AND g.access = acc AND g.revoked_at IS NULL
    ) f);
END
$$;

CREATE OR REPLACE FUNCTION pgwarden.assigned(p name, attr text) RETURNS text[]
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (
    WITH me AS (
      SELECT x.name FROM pgwarden.people x WHERE x.role = p AND x.active AND p = pgwarden.caller()
    )
    SELECT COALESCE(pg_catalog.array_agg(DISTINCT v.value ORDER BY v.value), '{}')
    FROM (
      SELECT a.value FROM me JOIN pgwarden.assignments a ON a.person = me.name
      WHERE a.attribute = attr AND pgwarden._active(a.valid_from, a.valid_until, a.revoked_at)
      UNION ALL
      SELECT a.value FROM me JOIN pgwarden.team_members m ON m.person = me.name
        JOIN pgwarden.teams t ON t.name = m.team
        JOIN pgwarden.assignments a ON a.team = m.team
      WHERE pgwarden._active(m.valid_from, m.valid_until, m.revoked_at)
        AND t.ends_at > pg_catalog.statement_timestamp()
        AND a.attribute = attr AND pgwarden._active(a.valid_from, a.valid_until, a.revoked_at)
    ) v);
END
$$;

CREATE OR REPLACE FUNCTION pgwarden.read_cap(p name, tbl text) RETURNS integer
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  uncapped boolean;
  cap integer;
BEGIN
  -- NULL (no cap) when a job the caller holds has no cap on tbl, or when they hold no job
  SELECT pg_catalog.bool_or(c.max_rows IS NULL), max(c.max_rows) INTO uncapped, cap
  FROM pgwarden.people x JOIN pgwarden.job_grants g ON g.person = x.name
    LEFT JOIN pgwarden.read_caps c ON c.table_name = tbl AND c.job = g.job
  WHERE x.role = p AND x.active AND p = pgwarden.caller()
    AND pgwarden._active(g.valid_from, g.valid_until, g.revoked_at);
  RETURN CASE WHEN uncapped IS NOT FALSE THEN NULL ELSE cap END;
END
$$;

-- Which people have scopes on a table that are checked row by row (filters, `all`, temporary and
-- team grants, attribute assignments). A policy with such scopes next to indexed ones reads
--   (<indexed scopes> OR <key range, open only when row_checked()>)
--   AND (NOT row_checked() OR <indexed scopes> OR <row-by-row scopes>)
-- (src/compile/predicates.ts): row_checked() is false for everyone else, whose statements then
-- read only the indexes. A wrong or missing row here can only hide rows, never show more: every
-- row-by-row scope still carries its own job gate. Written by apply.
CREATE TABLE pgwarden.row_checks (
  key text PRIMARY KEY,
  table_name text NOT NULL REFERENCES pgwarden.tables (name) ON DELETE CASCADE,
  command text NOT NULL CHECK (command IN ('select', 'insert', 'update', 'delete')),
  -- holders of these jobs ('*': any active person) have a filter or `all` scope
  jobs text[] NOT NULL DEFAULT '{}',
  -- people with a temporary or team grant on the table for the command have a `granted` scope
  grants boolean NOT NULL DEFAULT false,
  -- [{"jobs": [...], "attribute": "region"}]: holders of one of jobs with a value of attribute
  assigned jsonb NOT NULL DEFAULT '[]',
  UNIQUE (table_name, command)
);
COMMENT ON TABLE pgwarden.row_checks IS 'Per table and command: who has scopes checked row by row (filters, grants, assignments). Written by apply.';
REVOKE ALL ON pgwarden.row_checks FROM PUBLIC;

CREATE FUNCTION pgwarden.row_checked(p name, tbl text, cmd text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  -- a variable takes the collation of the arguments ("C", from p), and compared in "C" the
  -- person columns' indexes would not be used
  me text COLLATE "default";
  r pgwarden.row_checks;
  a jsonb;
BEGIN
  SELECT x.name INTO me FROM pgwarden.people x WHERE x.role = p AND x.active AND p = pgwarden.caller();
  IF me IS NULL THEN
    RETURN false;
  END IF;
  SELECT * INTO r FROM pgwarden.row_checks c WHERE c.table_name = tbl AND c.command = cmd;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  IF '*' = ANY (r.jobs) OR EXISTS (
       SELECT FROM pgwarden.job_grants g
       WHERE g.person = me AND g.job = ANY (r.jobs)
         AND pgwarden._active(g.valid_from, g.valid_until, g.revoked_at)) THEN
    RETURN true;
  END IF;
  -- as grant_filters() and assigned() find them, without calling them (a call costs as much)
  IF r.grants AND (
       EXISTS (SELECT FROM pgwarden.temp_grants g
               WHERE g.person = me AND g.table_name = tbl AND g.access = cmd
                 AND pgwarden._active(g.valid_from, g.valid_until, g.revoked_at))
       OR EXISTS (SELECT FROM pgwarden.team_members m JOIN pgwarden.teams t ON t.name = m.team
                    JOIN pgwarden.team_grants g ON g.team = m.team
                  WHERE m.person = me AND pgwarden._active(m.valid_from, m.valid_until, m.revoked_at)
                    AND t.ends_at > pg_catalog.statement_timestamp()
                    AND g.table_name = tbl AND g.access = cmd AND g.revoked_at IS NULL)) THEN
    RETURN true;
  END IF;
  FOR a IN SELECT e FROM pg_catalog.jsonb_array_elements(r.assigned) e LOOP
    IF (a -> 'jobs' ? '*' OR EXISTS (
          SELECT FROM pgwarden.job_grants g
          WHERE g.person = me AND a -> 'jobs' ? g.job
            AND pgwarden._active(g.valid_from, g.valid_until, g.revoked_at)))
       AND (EXISTS (SELECT FROM pgwarden.assignments x
                    WHERE x.person = me AND x.attribute = a ->> 'attribute'
                      AND pgwarden._active(x.valid_from, x.valid_until, x.revoked_at))
            OR EXISTS (SELECT FROM pgwarden.team_members m JOIN pgwarden.teams t ON t.name = m.team
                         JOIN pgwarden.assignments x ON x.team = m.team
                       WHERE m.person = me AND pgwarden._active(m.valid_from, m.valid_until, m.revoked_at)
                         AND t.ends_at > pg_catalog.statement_timestamp()
                         AND x.attribute = a ->> 'attribute'
                         AND pgwarden._active(x.valid_from, x.valid_until, x.revoked_at))) THEN
      RETURN true;
    END IF;
  END LOOP;
  RETURN false;
END
$$;
COMMENT ON FUNCTION pgwarden.row_checked(name, text, text) IS
  'Whether the caller has a scope on tbl for cmd that is checked row by row (pgwarden.row_checks): a decision for the policies.';
REVOKE ALL ON FUNCTION pgwarden.row_checked(name, text, text) FROM PUBLIC;

-- masks: inlined into the views' CASE (no function call per cell)
CREATE OR REPLACE FUNCTION pgwarden.mask_phone(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE
    WHEN value IS NULL THEN NULL
    WHEN pg_catalog.length(value) OPERATOR(pg_catalog.<=) 7 THEN pg_catalog.repeat('*', pg_catalog.length(value))
    ELSE pg_catalog.left(value, 3) OPERATOR(pg_catalog.||) '****' OPERATOR(pg_catalog.||) pg_catalog.right(value, 4)
  END
$$;

CREATE OR REPLACE FUNCTION pgwarden.mask_email(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE
    WHEN value IS NULL THEN NULL
    WHEN pg_catalog.strpos(value, '@') OPERATOR(pg_catalog.<) 2 THEN '***'
    ELSE pg_catalog.left(value, 1) OPERATOR(pg_catalog.||) '***' OPERATOR(pg_catalog.||) pg_catalog.substr(value, pg_catalog.strpos(value, '@'))
  END
$$;

CREATE OR REPLACE FUNCTION pgwarden.mask_id_number(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE
    WHEN value IS NULL THEN NULL
    WHEN pg_catalog.length(value) OPERATOR(pg_catalog.<=) 10 THEN pg_catalog.repeat('*', pg_catalog.length(value))
    ELSE pg_catalog.left(value, 6) OPERATOR(pg_catalog.||) pg_catalog.repeat('*', pg_catalog.length(value) OPERATOR(pg_catalog.-) 10) OPERATOR(pg_catalog.||) pg_catalog.right(value, 4)
  END
$$;
