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
-- triggers (ENABLE ALWAYS: replica mode cannot skip them) update the affected rows in the same
-- transaction: the units whose membership changed and every unit above them. So a reader sees the cache and the tables in one snapshot.
--
-- Concurrent changes: a recompute first takes a SHARE ROW EXCLUSIVE lock on the cache, which
-- conflicts with itself and with every other writer of the cache (not with readers), then reads
-- from a new snapshot (READ COMMITTED) that includes every change committed before it got the
-- lock. A change of a few people updates each row in place, so it applies to the row's newest
-- committed version. Rows another transaction wrote after a REPEATABLE READ transaction's
-- snapshot make its write fail with a serialization error instead of writing an old answer.
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
  -- one writer of the cache at a time while this runs (readers are not blocked), and the
  -- snapshot of the statements below includes what the writers before it committed
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

-- x placed into the sorted array a (binary search: a is sorted in the default collation, as
-- array_agg(name ORDER BY name) sorts it); a unchanged if it holds x already
CREATE FUNCTION pgwarden._sorted_insert(a text[], x text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE
    WHEN s.i > 0 AND a[s.i] OPERATOR(pg_catalog.=) x THEN a
    WHEN s.i = 0 THEN pg_catalog.array_prepend(x, a)
    ELSE a[1:s.i] OPERATOR(pg_catalog.||) x OPERATOR(pg_catalog.||) a[s.i + 1:]
  END
  FROM (SELECT pg_catalog.width_bucket(x COLLATE "default", a COLLATE "default") AS i) s
$$;
REVOKE ALL ON FUNCTION pgwarden._sorted_insert(text[], text) FROM PUBLIC;

-- people: a person added, removed, renamed or moved. Up to 100 changes (a move is two: out of one
-- unit, into another) are applied one by one to the rows of the unit and of the units above it: a
-- removal, or an insert at the place a binary search finds, so one move costs about the same at
-- 10 or 10,000 people. A statement with more changes recomputes the rows of the units it touched.
CREATE FUNCTION pgwarden._people_changed_subtrees() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  removed jsonb;
  added jsonb;
  r record;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pgwarden._refresh_subtree_cache(NULL);
    RETURN NULL;
  END IF;
  -- (name, unit) pairs that left and that arrived; an update of other columns changes nothing
  IF TG_OP = 'INSERT' THEN
    SELECT '[]'::jsonb, COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(n.name, n.unit)), '[]')
      INTO removed, added FROM new_people n;
  ELSIF TG_OP = 'DELETE' THEN
    SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(o.name, o.unit)), '[]'), '[]'::jsonb
      INTO removed, added FROM old_people o;
  ELSE
    SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(d.name, d.unit)), '[]') INTO removed
      FROM (SELECT o.name, o.unit FROM old_people o EXCEPT SELECT n.name, n.unit FROM new_people n) d;
    SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(d.name, d.unit)), '[]') INTO added
      FROM (SELECT n.name, n.unit FROM new_people n EXCEPT SELECT o.name, o.unit FROM old_people o) d;
  END IF;
  IF pg_catalog.jsonb_array_length(removed) + pg_catalog.jsonb_array_length(added) = 0 THEN
    RETURN NULL;
  END IF;
  IF pg_catalog.jsonb_array_length(removed) + pg_catalog.jsonb_array_length(added) > 100 THEN
    PERFORM pgwarden._refresh_subtree_cache(ARRAY(
      SELECT DISTINCT e OPERATOR(pg_catalog.->>) 1
      FROM pg_catalog.jsonb_array_elements(removed OPERATOR(pg_catalog.||) added) AS e));
    RETURN NULL;
  END IF;
  -- No lock of the table here: each UPDATE below waits for a concurrent writer of its row and
  -- then applies its change to the newest committed version (READ COMMITTED), so two such changes
  -- compose; a recompute's lock conflicts with the ROW EXCLUSIVE lock these UPDATEs take, so it
  -- waits for them to commit and then reads them.
  FOR r IN SELECT e OPERATOR(pg_catalog.->>) 0 AS name, e OPERATOR(pg_catalog.->>) 1 AS unit
           FROM pg_catalog.jsonb_array_elements(removed) AS e LOOP
    UPDATE pgwarden.subtree_people_cache c SET people = pg_catalog.array_remove(c.people, r.name)
    WHERE c.unit IN (
      WITH RECURSIVE up(unit) AS (
        SELECT r.unit
        UNION
        SELECT u.parent FROM pgwarden.units u JOIN up ON u.name = up.unit WHERE u.parent IS NOT NULL)
      SELECT up.unit FROM up);
  END LOOP;
  FOR r IN SELECT e OPERATOR(pg_catalog.->>) 0 AS name, e OPERATOR(pg_catalog.->>) 1 AS unit
           FROM pg_catalog.jsonb_array_elements(added) AS e LOOP
    UPDATE pgwarden.subtree_people_cache c SET people = pgwarden._sorted_insert(c.people, r.name)
    WHERE c.unit IN (
      WITH RECURSIVE up(unit) AS (
        SELECT r.unit
        UNION
        SELECT u.parent FROM pgwarden.units u JOIN up ON u.name = up.unit WHERE u.parent IS NOT NULL)
      SELECT up.unit FROM up);
    IF NOT FOUND THEN
      -- the unit has no row (the cache was edited): compute its rows
      PERFORM pgwarden._refresh_subtree_cache(ARRAY[r.unit]);
    END IF;
  END LOOP;
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION pgwarden._people_changed_subtrees() FROM PUBLIC;

-- units: a new unit has nobody in it or below it yet (people and child units reference it by
-- foreign key, so they come in later statements); a deleted one had nobody (the same keys); a
-- unit moved under another parent changes the rows of its old and new parents and of every unit
-- above them, not its own. A renamed unit (rare: nothing may reference it) recomputes every row.
CREATE FUNCTION pgwarden._units_changed_subtrees() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  parents text[];
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO pgwarden.subtree_people_cache (unit, people)
    SELECT n.name, '{}' FROM new_units n
    ON CONFLICT (unit) DO UPDATE SET people = EXCLUDED.people;
  ELSIF TG_OP = 'DELETE' THEN
    DELETE FROM pgwarden.subtree_people_cache c WHERE c.unit IN (SELECT o.name FROM old_units o);
  ELSIF TG_OP = 'UPDATE' THEN
    IF EXISTS (SELECT o.name FROM old_units o EXCEPT SELECT n.name FROM new_units n) THEN
      PERFORM pgwarden._refresh_subtree_cache(NULL);
    ELSE
      SELECT pg_catalog.array_agg(DISTINCT x.parent) INTO parents FROM (
        SELECT o.parent FROM old_units o JOIN new_units n ON n.name = o.name
        WHERE o.parent IS DISTINCT FROM n.parent
        UNION ALL
        SELECT n.parent FROM old_units o JOIN new_units n ON n.name = o.name
        WHERE o.parent IS DISTINCT FROM n.parent
      ) x WHERE x.parent IS NOT NULL;
      IF parents IS NOT NULL THEN
        PERFORM pgwarden._refresh_subtree_cache(parents);
      END IF;
    END IF;
  ELSE
    PERFORM pgwarden._refresh_subtree_cache(NULL);
  END IF;
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
CREATE TRIGGER subtree_cache_units_insert AFTER INSERT ON pgwarden.units
  REFERENCING NEW TABLE AS new_units
  FOR EACH STATEMENT EXECUTE FUNCTION pgwarden._units_changed_subtrees();
CREATE TRIGGER subtree_cache_units_update AFTER UPDATE ON pgwarden.units
  REFERENCING OLD TABLE AS old_units NEW TABLE AS new_units
  FOR EACH STATEMENT EXECUTE FUNCTION pgwarden._units_changed_subtrees();
CREATE TRIGGER subtree_cache_units_delete AFTER DELETE ON pgwarden.units
  REFERENCING OLD TABLE AS old_units
  FOR EACH STATEMENT EXECUTE FUNCTION pgwarden._units_changed_subtrees();
CREATE TRIGGER subtree_cache_units_truncate AFTER TRUNCATE ON pgwarden.units
  FOR EACH STATEMENT EXECUTE FUNCTION pgwarden._units_changed_subtrees();
ALTER TABLE pgwarden.people ENABLE ALWAYS TRIGGER subtree_cache_people_insert;
ALTER TABLE pgwarden.people ENABLE ALWAYS TRIGGER subtree_cache_people_update;
ALTER TABLE pgwarden.people ENABLE ALWAYS TRIGGER subtree_cache_people_delete;
ALTER TABLE pgwarden.people ENABLE ALWAYS TRIGGER subtree_cache_people_truncate;
ALTER TABLE pgwarden.units ENABLE ALWAYS TRIGGER subtree_cache_units_insert;
ALTER TABLE pgwarden.units ENABLE ALWAYS TRIGGER subtree_cache_units_update;
ALTER TABLE pgwarden.units ENABLE ALWAYS TRIGGER subtree_cache_units_delete;
ALTER TABLE pgwarden.units ENABLE ALWAYS TRIGGER subtree_cache_units_truncate;

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
