-- pgwarden runtime catalog, version 19: the people below each unit, kept ready (issue 8).
--
-- subtree_people(p) answered a manager's statement by walking the org tree from the units they
-- manage and collecting and sorting every name below: the cost grew with the subtree (a director
-- of 8,894 people: about 8 ms) and was paid by every initplan that asks, the policy's and each
-- shown cell's (five per statement through crm_api.customers). Now each unit's row of
-- pgwarden.subtree_people_cache holds the sorted names of every person in the unit and the units
-- below it, and subtree_people reads the rows of the units the caller manages now.
--
-- What stays live: who the caller is and which units they manage now (unit_managers has validity
-- times; they are read at each call, as before). What is cached: only the tree and who is in
-- which unit, which change by statements on pgwarden.units and pgwarden.people, and statement
-- triggers (ENABLE ALWAYS: replica mode cannot skip them) refresh the affected rows in the same
-- transaction: the units whose membership changed and every unit above them, or every row when
-- the tree itself changes. So a reader sees the cache and the tables in one snapshot.
--
-- Concurrent changes: a refresh first takes a self-conflicting lock on the cache, then recomputes
-- from a new snapshot (READ COMMITTED), which includes every change committed before it got the
-- lock; rows another refresh wrote after a REPEATABLE READ transaction's snapshot make its write
-- fail with a serialization error instead of writing an old answer.
--
-- A unit without a row (the cache dropped or edited by its owner) is computed live, as before;
-- pgwarden.subtree_cache_problems() lists the rows that differ from the tables (pgwarden doctor).

CREATE TABLE pgwarden.subtree_people_cache (
  unit text PRIMARY KEY,
  people text[] NOT NULL
);
COMMENT ON TABLE pgwarden.subtree_people_cache IS
  'For each unit, the sorted names of the people in it and in every unit below it (kept by triggers on units and people; read by subtree_people).';
REVOKE ALL ON TABLE pgwarden.subtree_people_cache FROM PUBLIC;

-- The live answer for a set of units: every person in them or below them, sorted.
CREATE FUNCTION pgwarden._subtree_people_live(roots text[]) RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  WITH RECURSIVE tree(unit) AS (
    SELECT r FROM pg_catalog.unnest(roots) AS r
    UNION
    SELECT u.name FROM pgwarden.units u JOIN tree t ON u.parent = t.unit
  )
  SELECT COALESCE(pg_catalog.array_agg(y.name ORDER BY y.name), '{}')
  FROM pgwarden.people y WHERE y.unit IN (SELECT tree.unit FROM tree)
$$;
REVOKE ALL ON FUNCTION pgwarden._subtree_people_live(text[]) FROM PUBLIC;

-- Recomputes the rows of the given units and of every unit above them (NULL: every unit).
CREATE FUNCTION pgwarden._refresh_subtree_cache(changed text[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- one refresh at a time; readers are not blocked
  LOCK TABLE pgwarden.subtree_people_cache IN SHARE ROW EXCLUSIVE MODE;
  IF changed IS NULL THEN
    DELETE FROM pgwarden.subtree_people_cache c
    WHERE NOT EXISTS (SELECT FROM pgwarden.units u WHERE u.name = c.unit);
  END IF;
  INSERT INTO pgwarden.subtree_people_cache AS c (unit, people)
  WITH RECURSIVE
    targets(unit) AS (
      SELECT u.name FROM pgwarden.units u
      WHERE changed IS NULL OR u.name = ANY (changed)
      UNION
      SELECT u.parent FROM pgwarden.units u JOIN targets t ON u.name = t.unit
      WHERE u.parent IS NOT NULL
    ),
    below(root, unit) AS (
      SELECT t.unit, t.unit FROM targets t
      UNION
      SELECT b.root, u.name FROM below b JOIN pgwarden.units u ON u.parent = b.unit
    )
  SELECT b.root,
         COALESCE(pg_catalog.array_agg(y.name ORDER BY y.name) FILTER (WHERE y.name IS NOT NULL), '{}')
  FROM below b LEFT JOIN pgwarden.people y ON y.unit = b.unit
  GROUP BY b.root
  ON CONFLICT (unit) DO UPDATE SET people = EXCLUDED.people
    WHERE c.people IS DISTINCT FROM EXCLUDED.people;
END
$$;
REVOKE ALL ON FUNCTION pgwarden._refresh_subtree_cache(text[]) FROM PUBLIC;

-- people: the units whose members changed (a person added, removed, renamed or moved)
CREATE FUNCTION pgwarden._people_changed_subtrees() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  changed text[];
BEGIN
  IF TG_OP = 'INSERT' THEN
    SELECT pg_catalog.array_agg(DISTINCT n.unit) INTO changed FROM new_people n;
  ELSIF TG_OP = 'DELETE' THEN
    SELECT pg_catalog.array_agg(DISTINCT o.unit) INTO changed FROM old_people o;
  ELSIF TG_OP = 'UPDATE' THEN
    SELECT pg_catalog.array_agg(DISTINCT d.unit) INTO changed FROM (
      (SELECT o.name, o.unit FROM old_people o EXCEPT SELECT n.name, n.unit FROM new_people n)
      UNION
      (SELECT n.name, n.unit FROM new_people n EXCEPT SELECT o.name, o.unit FROM old_people o)
    ) d;
  END IF;
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pgwarden._refresh_subtree_cache(NULL);
  ELSIF changed IS NOT NULL THEN
    PERFORM pgwarden._refresh_subtree_cache(changed);
  END IF;
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION pgwarden._people_changed_subtrees() FROM PUBLIC;

-- units: the tree changed; every row is recomputed (units change rarely)
CREATE FUNCTION pgwarden._units_changed_subtrees() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM pgwarden._refresh_subtree_cache(NULL);
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION pgwarden._units_changed_subtrees() FROM PUBLIC;

CREATE TRIGGER subtree_cache_people_insert AFTER INSERT ON pgwarden.people
  REFERENCING NEW TABLE AS new_people
  FOR EACH STATEMENT EXECUTE FUNCTION pgwarden._people_changed_subtrees();
CREATE TRIGGER subtree_cache_people_update AFTER UPDATE ON pgwarden.people
  REFERENCING OLD TABLE AS old_people NEW TABLE AS new_people
  FOR EACH STATEMENT EXECUTE FUNCTION pgwarden._people_changed_subtrees();
CREATE TRIGGER subtree_cache_people_delete AFTER DELETE ON pgwarden.people
  REFERENCING OLD TABLE AS old_people
  FOR EACH STATEMENT EXECUTE FUNCTION pgwarden._people_changed_subtrees();
CREATE TRIGGER subtree_cache_people_truncate AFTER TRUNCATE ON pgwarden.people
  FOR EACH STATEMENT EXECUTE FUNCTION pgwarden._people_changed_subtrees();
CREATE TRIGGER subtree_cache_units AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pgwarden.units
  FOR EACH STATEMENT EXECUTE FUNCTION pgwarden._units_changed_subtrees();
ALTER TABLE pgwarden.people ENABLE ALWAYS TRIGGER subtree_cache_people_insert;
ALTER TABLE pgwarden.people ENABLE ALWAYS TRIGGER subtree_cache_people_update;
ALTER TABLE pgwarden.people ENABLE ALWAYS TRIGGER subtree_cache_people_delete;
ALTER TABLE pgwarden.people ENABLE ALWAYS TRIGGER subtree_cache_people_truncate;
ALTER TABLE pgwarden.units ENABLE ALWAYS TRIGGER subtree_cache_units;

SELECT pgwarden._refresh_subtree_cache(NULL);

-- Same answer as before (sql/016): the people of every unit the caller manages now and of every
-- unit below, sorted; '{}' for anyone else.
CREATE OR REPLACE FUNCTION pgwarden.subtree_people(p name) RETURNS text[]
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  roots text[];
  result text[];
BEGIN
  SELECT pg_catalog.array_agg(DISTINCT m.unit) INTO roots
  FROM pgwarden.people x JOIN pgwarden.unit_managers m ON m.person = x.name
  WHERE x.role = p AND x.active AND p = pgwarden.caller()
    AND pgwarden._active(m.valid_from, m.valid_until, m.revoked_at);
  IF roots IS NULL THEN
    RETURN '{}';
  END IF;
  IF pg_catalog.cardinality(roots) = 1 THEN
    SELECT c.people INTO result FROM pgwarden.subtree_people_cache c WHERE c.unit = roots[1];
    IF FOUND THEN
      RETURN result;
    END IF;
  ELSIF (SELECT pg_catalog.count(*) FROM pgwarden.subtree_people_cache c WHERE c.unit = ANY (roots))
        = pg_catalog.cardinality(roots) THEN
    -- several units (one may be below another): the union, sorted
    RETURN (SELECT COALESCE(pg_catalog.array_agg(DISTINCT n.n ORDER BY n.n), '{}')
            FROM pgwarden.subtree_people_cache c, pg_catalog.unnest(c.people) AS n(n)
            WHERE c.unit = ANY (roots));
  END IF;
  RETURN pgwarden._subtree_people_live(roots);
END
$$;

-- For pgwarden doctor: the units whose row differs from the tables (missing, extra or wrong).
CREATE FUNCTION pgwarden.subtree_cache_problems() RETURNS TABLE (unit text, problem text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT u.name, CASE WHEN c.unit IS NULL THEN 'missing' ELSE 'stale' END
  FROM pgwarden.units u LEFT JOIN pgwarden.subtree_people_cache c ON c.unit = u.name
  WHERE c.people IS DISTINCT FROM pgwarden._subtree_people_live(ARRAY[u.name])
  UNION ALL
  SELECT c.unit, 'no such unit'
  FROM pgwarden.subtree_people_cache c
  WHERE NOT EXISTS (SELECT FROM pgwarden.units u WHERE u.name = c.unit)
  ORDER BY 1
$$;
COMMENT ON FUNCTION pgwarden.subtree_cache_problems() IS
  'Units whose row of subtree_people_cache differs from the org tree and people (empty when the cache is right).';
REVOKE ALL ON FUNCTION pgwarden.subtree_cache_problems() FROM PUBLIC;
