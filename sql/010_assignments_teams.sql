-- pgwarden runtime catalog, version 10: attribute assignments and project teams.
--
-- Who covers which region or customer type, and which project team exists, changes every week:
-- these are rows with validity windows, read by the row policies on every statement, so an
-- assignment, a removal or an end date takes effect on the next statement.
--
--   * attributes: the attribute names of the model (written by apply).
--   * assignments: a person, or a team, is assigned values of an attribute (region = east)
--     from valid_from until valid_until. Policies of `{ assigned: ... }` scopes compare the
--     row's column with pgwarden.assigned(current person, attribute): one array per statement,
--     `col = ANY (array)`, so the column's index can be used.
--   * teams: a named team with an end date; members join and leave; a team is granted scopes
--     (table + filter + access) that reach its active members as `granted` rows, so the model's
--     `granted` cells and edits give their column levels. A team's assignments reach its members.
--
-- Same rules as 001: run as the catalog owner, definer functions pin search_path, admin
-- functions check _assert_admin() and never grant anything to the caller, EXECUTE is revoked
-- from PUBLIC at the end (apply grants it to the people role).

CREATE TABLE pgwarden.attributes (
  name text PRIMARY KEY CHECK (name <> ''),
  description text
);
COMMENT ON TABLE pgwarden.attributes IS 'Attributes people and teams may be assigned values of (model: attributes); written by pgwarden apply.';

CREATE TABLE pgwarden.teams (
  name text PRIMARY KEY CHECK (name <> ''),
  description text,
  ends_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  created_by name NOT NULL,
  ended_at timestamptz,
  ended_by name
);
COMMENT ON TABLE pgwarden.teams IS 'Project teams: members and grants count only until ends_at.';

CREATE TABLE pgwarden.team_members (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  team text NOT NULL REFERENCES pgwarden.teams (name),
  person text NOT NULL REFERENCES pgwarden.people (name),
  valid_from timestamptz NOT NULL DEFAULT now(),
  valid_until timestamptz,
  added_by name NOT NULL,
  revoked_at timestamptz,
  revoked_by name,
  CHECK (valid_until IS NULL OR valid_until > valid_from)
);
CREATE INDEX team_members_person ON pgwarden.team_members (person);
CREATE INDEX team_members_team ON pgwarden.team_members (team);

CREATE TABLE pgwarden.team_grants (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  team text NOT NULL REFERENCES pgwarden.teams (name),
  table_name text NOT NULL REFERENCES pgwarden.tables (name) ON DELETE CASCADE,
  access text NOT NULL CHECK (access IN ('select', 'insert', 'update', 'delete')),
  filter jsonb NOT NULL CHECK (jsonb_typeof(filter) = 'object'),
  granted_at timestamptz NOT NULL DEFAULT now(),
  granted_by name NOT NULL,
  revoked_at timestamptz,
  revoked_by name
);
CREATE INDEX team_grants_team ON pgwarden.team_grants (team, table_name);
COMMENT ON TABLE pgwarden.team_grants IS
  'A team''s scope: rows of table_name matching filter ({"column": ["value", ...]}), for access, while the team lasts.';

CREATE TABLE pgwarden.assignments (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  person text REFERENCES pgwarden.people (name),
  team text REFERENCES pgwarden.teams (name),
  attribute text NOT NULL REFERENCES pgwarden.attributes (name) ON UPDATE CASCADE,
  value text NOT NULL,
  valid_from timestamptz NOT NULL DEFAULT now(),
  valid_until timestamptz,
  granted_by name NOT NULL,
  revoked_at timestamptz,
  revoked_by name,
  CHECK ((person IS NULL) <> (team IS NULL)),
  CHECK (valid_until IS NULL OR valid_until > valid_from)
);
CREATE INDEX assignments_person ON pgwarden.assignments (person, attribute) WHERE person IS NOT NULL;
CREATE INDEX assignments_team ON pgwarden.assignments (team, attribute) WHERE team IS NOT NULL;
COMMENT ON TABLE pgwarden.assignments IS
  'Attribute values assigned to a person or a team (region = east), valid from valid_from until valid_until.';

-- ------------------------------------------------------------------ policy helpers

-- Internal: the teams whose membership counts for person now.
CREATE FUNCTION pgwarden._my_teams(person text) RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT COALESCE(pg_catalog.array_agg(DISTINCT m.team), '{}')
  FROM pgwarden.team_members m JOIN pgwarden.teams t ON t.name = m.team
  WHERE m.person = _my_teams.person
    AND pgwarden._active(m.valid_from, m.valid_until, m.revoked_at)
    AND t.ends_at > pg_catalog.statement_timestamp()
$$;

CREATE FUNCTION pgwarden.assigned(p name, attr text) RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT COALESCE(pg_catalog.array_agg(DISTINCT a.value ORDER BY a.value), '{}')
  FROM pgwarden.assignments a
  WHERE a.attribute = attr
    AND pgwarden._active(a.valid_from, a.valid_until, a.revoked_at)
    AND (a.person = pgwarden._self(p)
         OR a.team = ANY (pgwarden._my_teams(pgwarden._self(p))))
$$;
COMMENT ON FUNCTION pgwarden.assigned(name, text) IS
  'Values of attr assigned to the caller now, directly or through a team in force (a decision for attribute scopes).';

-- Temporary grants, and now the grants of the caller's teams in force.
CREATE OR REPLACE FUNCTION pgwarden.grant_filters(p name, tbl text, acc text) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT COALESCE(pg_catalog.jsonb_agg(f.filter ORDER BY f.src, f.id), '[]')
  FROM (
    SELECT 1 AS src, g.id, g.filter
    FROM pgwarden.temp_grants g
    WHERE g.person = pgwarden._self(p) AND g.table_name = tbl AND g.access = acc
      AND pgwarden._active(g.valid_from, g.valid_until, g.revoked_at)
    UNION ALL
    SELECT 2, g.id, g.filter
    FROM pgwarden.team_grants g
    WHERE g.team = ANY (pgwarden._my_teams(pgwarden._self(p))) AND g.table_name = tbl AND g.access = acc
      AND g.revoked_at IS NULL
  ) f
$$;
COMMENT ON FUNCTION pgwarden.grant_filters(name, text, text) IS
  'Filters of the caller''s temporary grants and team grants on tbl for acc that are in force now (a jsonb array).';

-- ------------------------------------------------------------------ administration

-- Internal: a grant filter checked against the table's grantable columns and normalized to
-- {"column": ["value", ...]}.
CREATE FUNCTION pgwarden._grant_filter(tbl text, filter jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  allowed text[];
  k text;
  v jsonb;
  norm jsonb := '{}';
BEGIN
  SELECT t.grantable INTO allowed FROM pgwarden.tables t WHERE t.name = tbl;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'table "%" is not protected by the model', tbl USING ERRCODE = 'no_data_found';
  END IF;
  IF filter IS NULL OR jsonb_typeof(filter) <> 'object' OR filter = '{}' THEN
    RAISE EXCEPTION 'a grant needs a filter object, e.g. {"region": ["east"]}'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR k, v IN SELECT * FROM jsonb_each(filter) LOOP
    IF NOT k = ANY (allowed) THEN
      RAISE EXCEPTION 'grants on "%" cannot filter on column "%"', tbl, k
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'Grantable columns: ' || COALESCE(pg_catalog.array_to_string(allowed, ', '), '(none)');
    END IF;
    IF jsonb_typeof(v) = 'string' THEN
      v := jsonb_build_array(v);
    END IF;
    IF jsonb_typeof(v) <> 'array' OR jsonb_array_length(v) = 0
       OR EXISTS (SELECT FROM jsonb_array_elements(v) e WHERE jsonb_typeof(e) <> 'string') THEN
      RAISE EXCEPTION 'filter value for "%" must be a string or a non-empty array of strings', k
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    norm := norm || jsonb_build_object(k, v);
  END LOOP;
  RETURN norm;
END
$$;

CREATE FUNCTION pgwarden._require_attribute(attribute text) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT EXISTS (SELECT FROM pgwarden.attributes a WHERE a.name = attribute) THEN
    RAISE EXCEPTION 'attribute "%" is not in the model', attribute
      USING ERRCODE = 'no_data_found',
            HINT = 'Known attributes: ' || COALESCE((SELECT pg_catalog.string_agg(name, ', ' ORDER BY name) FROM pgwarden.attributes), '(none)');
  END IF;
END
$$;

CREATE FUNCTION pgwarden._require_team(team text) RETURNS pgwarden.teams
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r pgwarden.teams;
BEGIN
  SELECT * INTO r FROM pgwarden.teams t WHERE t.name = team;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'team "%" does not exist', team
      USING ERRCODE = 'no_data_found', HINT = 'Create it first: pgwarden team create <name> --until <time>.';
  END IF;
  RETURN r;
END
$$;

CREATE FUNCTION pgwarden._assign_check(attribute text, vals text[], valid_from timestamptz, valid_until timestamptz) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM pgwarden._require_attribute(attribute);
  IF vals IS NULL OR pg_catalog.cardinality(vals) = 0 OR pg_catalog.array_position(vals, NULL) IS NOT NULL THEN
    RAISE EXCEPTION 'an assignment needs at least one value, and no NULL' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF valid_until IS NOT NULL AND valid_until <= COALESCE(valid_from, pg_catalog.now()) THEN
    RAISE EXCEPTION 'valid_until % is not after the start of the assignment', valid_until
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
END
$$;

-- Assigns values of an attribute to a person, from valid_from (default now) until valid_until
-- (default: open). Returns the new assignment ids.
CREATE FUNCTION pgwarden.assign(person text, attribute text, vals text[],
                                valid_until timestamptz DEFAULT NULL, valid_from timestamptz DEFAULT NULL)
RETURNS bigint[]
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden._assert_admin();
  ids bigint[];
BEGIN
  PERFORM pgwarden._require_person(person);
  PERFORM pgwarden._not_self(who, person);
  PERFORM pgwarden._assign_check(attribute, vals, valid_from, valid_until);
  WITH ins AS (
    INSERT INTO pgwarden.assignments (person, attribute, value, valid_from, valid_until, granted_by)
    SELECT assign.person, assign.attribute, v, COALESCE(assign.valid_from, pg_catalog.now()), assign.valid_until, who
    FROM (SELECT DISTINCT v FROM pg_catalog.unnest(vals) AS v) x
    RETURNING assignments.id
  )
  SELECT pg_catalog.array_agg(ins.id ORDER BY ins.id) INTO ids FROM ins;
  RETURN ids;
END
$$;

CREATE FUNCTION pgwarden.assign_team(team text, attribute text, vals text[],
                                     valid_until timestamptz DEFAULT NULL, valid_from timestamptz DEFAULT NULL)
RETURNS bigint[]
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden._assert_admin();
  ids bigint[];
BEGIN
  PERFORM pgwarden._require_team(team);
  IF pgwarden._person(who) = ANY (SELECT m.person FROM pgwarden.team_members m
                                  WHERE m.team = assign_team.team AND pgwarden._active(m.valid_from, m.valid_until, m.revoked_at)) THEN
    RAISE EXCEPTION 'permission denied: % is a member of team "%" and may not assign it anything', pgwarden._person(who), team
      USING ERRCODE = 'insufficient_privilege', HINT = 'Ask another administrator.';
  END IF;
  PERFORM pgwarden._assign_check(attribute, vals, valid_from, valid_until);
  WITH ins AS (
    INSERT INTO pgwarden.assignments (team, attribute, value, valid_from, valid_until, granted_by)
    SELECT assign_team.team, assign_team.attribute, v, COALESCE(assign_team.valid_from, pg_catalog.now()), assign_team.valid_until, who
    FROM (SELECT DISTINCT v FROM pg_catalog.unnest(vals) AS v) x
    RETURNING assignments.id
  )
  SELECT pg_catalog.array_agg(ins.id ORDER BY ins.id) INTO ids FROM ins;
  RETURN ids;
END
$$;

-- Ends a person's (or, with team, a team's) assignments of an attribute now: the given values,
-- or all of them. Returns how many ended.
CREATE FUNCTION pgwarden.unassign(person text, attribute text, vals text[] DEFAULT NULL, team text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden._assert_admin();
  n integer;
BEGIN
  IF (person IS NULL) = (team IS NULL) THEN
    RAISE EXCEPTION 'unassign needs a person or a team, not both' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE pgwarden.assignments a SET revoked_at = pg_catalog.now(), revoked_by = who
  WHERE a.attribute = unassign.attribute AND a.revoked_at IS NULL
    AND (a.valid_until IS NULL OR a.valid_until > pg_catalog.now())
    AND (unassign.person IS NULL OR a.person = unassign.person)
    AND (unassign.team IS NULL OR a.team = unassign.team)
    AND (vals IS NULL OR a.value = ANY (vals));
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;

CREATE FUNCTION pgwarden.create_team(team text, ends_at timestamptz, description text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden._assert_admin();
BEGIN
  IF team IS NULL OR team = '' THEN
    RAISE EXCEPTION 'a team needs a name' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF ends_at IS NULL THEN
    RAISE EXCEPTION 'team "%" needs an end date', team
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Project teams end: give --until.';
  END IF;
  IF EXISTS (SELECT FROM pgwarden.teams t WHERE t.name = team) THEN
    RAISE EXCEPTION 'team "%" already exists', team USING ERRCODE = 'unique_violation';
  END IF;
  INSERT INTO pgwarden.teams (name, description, ends_at, created_by)
  VALUES (team, create_team.description, create_team.ends_at, who);
END
$$;

CREATE FUNCTION pgwarden.add_team_member(team text, person text, valid_until timestamptz DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden._assert_admin();
  t pgwarden.teams := pgwarden._require_team(team);
  id bigint;
BEGIN
  PERFORM pgwarden._require_person(person);
  PERFORM pgwarden._not_self(who, person);
  IF t.ends_at <= pg_catalog.now() THEN
    RAISE EXCEPTION 'team "%" ended at %', team, t.ends_at USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF EXISTS (SELECT FROM pgwarden.team_members m WHERE m.team = add_team_member.team AND m.person = add_team_member.person
             AND m.revoked_at IS NULL AND (m.valid_until IS NULL OR m.valid_until > pg_catalog.now())) THEN
    RAISE EXCEPTION '% is already a member of team "%"', person, team USING ERRCODE = 'unique_violation';
  END IF;
  INSERT INTO pgwarden.team_members (team, person, valid_until, added_by)
  VALUES (team, person, add_team_member.valid_until, who) RETURNING team_members.id INTO id;
  RETURN id;
END
$$;

CREATE FUNCTION pgwarden.remove_team_member(team text, person text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden._assert_admin();
  n integer;
BEGIN
  PERFORM pgwarden._require_team(team);
  UPDATE pgwarden.team_members m SET revoked_at = pg_catalog.now(), revoked_by = who
  WHERE m.team = remove_team_member.team AND m.person = remove_team_member.person AND m.revoked_at IS NULL;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;

-- Ends a team now (or at `at`): its members' grants and assignments through it end with it.
CREATE FUNCTION pgwarden.end_team(team text, at timestamptz DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden._assert_admin();
BEGIN
  PERFORM pgwarden._require_team(team);
  UPDATE pgwarden.teams t SET ends_at = LEAST(t.ends_at, COALESCE(end_team.at, pg_catalog.now())),
         ended_at = pg_catalog.now(), ended_by = who
  WHERE t.name = team;
END
$$;

-- Grants the team a scope: rows of tbl matching filter (on grantable columns), for access.
CREATE FUNCTION pgwarden.grant_team(team text, tbl text, filter jsonb, access text DEFAULT 'select') RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden._assert_admin();
  id bigint;
BEGIN
  PERFORM pgwarden._require_team(team);
  IF pgwarden._person(who) = ANY (SELECT m.person FROM pgwarden.team_members m
                                  WHERE m.team = grant_team.team AND pgwarden._active(m.valid_from, m.valid_until, m.revoked_at)) THEN
    RAISE EXCEPTION 'permission denied: % is a member of team "%" and may not grant it anything', pgwarden._person(who), team
      USING ERRCODE = 'insufficient_privilege', HINT = 'Ask another administrator.';
  END IF;
  IF access IS NULL OR access NOT IN ('select', 'insert', 'update', 'delete') THEN
    RAISE EXCEPTION 'access must be select, insert, update or delete (got %)', access USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO pgwarden.team_grants (team, table_name, access, filter, granted_by)
  VALUES (team, tbl, access, pgwarden._grant_filter(tbl, filter), who) RETURNING team_grants.id INTO id;
  RETURN id;
END
$$;

CREATE FUNCTION pgwarden.revoke_team_grant(grant_id bigint) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden._assert_admin();
  n integer;
BEGIN
  UPDATE pgwarden.team_grants g SET revoked_at = pg_catalog.now(), revoked_by = who
  WHERE g.id = grant_id AND g.revoked_at IS NULL;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;

-- Teams with their end, members in force and grants (administrators).
CREATE FUNCTION pgwarden.team_list()
RETURNS TABLE (team text, ends_at timestamptz, active boolean, members text[], grants jsonb, assignments jsonb)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM pgwarden._assert_admin();
  RETURN QUERY
  SELECT t.name, t.ends_at, t.ends_at > pg_catalog.now(),
    COALESCE((SELECT pg_catalog.array_agg(m.person ORDER BY m.person) FROM pgwarden.team_members m
              WHERE m.team = t.name AND pgwarden._active(m.valid_from, m.valid_until, m.revoked_at)), '{}'),
    COALESCE((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('id', g.id, 'table', g.table_name, 'access', g.access, 'filter', g.filter) ORDER BY g.id)
              FROM pgwarden.team_grants g WHERE g.team = t.name AND g.revoked_at IS NULL), '[]'),
    COALESCE((SELECT pg_catalog.jsonb_object_agg(x.attribute, x.vals) FROM (
                SELECT a.attribute, pg_catalog.array_agg(a.value ORDER BY a.value) AS vals FROM pgwarden.assignments a
                WHERE a.team = t.name AND pgwarden._active(a.valid_from, a.valid_until, a.revoked_at) GROUP BY a.attribute) x), '{}')
  FROM pgwarden.teams t ORDER BY t.name;
END
$$;

-- Assignments in force (administrators): person or team, attribute, values, until.
CREATE FUNCTION pgwarden.assignment_list()
RETURNS TABLE (id bigint, person text, team text, attribute text, value text, valid_from timestamptz, valid_until timestamptz, granted_by name)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM pgwarden._assert_admin();
  RETURN QUERY
  SELECT a.id, a.person, a.team, a.attribute, a.value, a.valid_from, a.valid_until, a.granted_by
  FROM pgwarden.assignments a
  WHERE a.revoked_at IS NULL AND (a.valid_until IS NULL OR a.valid_until > pg_catalog.now())
  ORDER BY a.attribute, COALESCE(a.person, ''), COALESCE(a.team, ''), a.value;
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA pgwarden FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgwarden FROM PUBLIC;
