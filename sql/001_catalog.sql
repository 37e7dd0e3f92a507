-- pgwarden runtime catalog, version 1.
--
-- Run by `pgwarden apply` (and by the output of `pgwarden generate`) as the catalog owner role,
-- inside schema "pgwarden", which apply creates first. Everything here is owned by that role.
--
-- Rules this file keeps:
--   * People, units, jobs, shares and temporary grants are rows with validity windows, read by
--     the row policies on every statement: a revocation or an expiry takes effect on the next
--     statement. Validity is compared with statement_timestamp() (timestamptz), so a session's
--     TimeZone cannot stretch a window.
--   * The tables are reachable only through the functions below: nobody but the owner has any
--     privilege on them.
--   * Every SECURITY DEFINER function pins search_path to pg_catalog, pg_temp, schema-qualifies
--     what it calls, and EXECUTE is revoked from PUBLIC (apply grants it to the people role).
--   * Policy helpers take the person as an argument evaluated at the call site (current_user)
--     and answer only for the caller: asked about anyone else they answer "nothing". They return
--     decisions (booleans, name and key arrays), never customer data.

CREATE TABLE pgwarden.settings (
  key text PRIMARY KEY,
  value text NOT NULL
);
COMMENT ON TABLE pgwarden.settings IS 'Written by pgwarden apply: role_prefix, authenticator, people_role.';

CREATE TABLE pgwarden.jobs (
  name text PRIMARY KEY CHECK (name <> ''),
  description text,
  admin boolean NOT NULL DEFAULT false,
  privileged boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE pgwarden.jobs IS 'Job roles of the model; written by pgwarden apply.';

CREATE TABLE pgwarden.tables (
  name text PRIMARY KEY,
  schema_name text NOT NULL,
  table_name text NOT NULL,
  key_column text NOT NULL,
  key_type text NOT NULL DEFAULT 'text',
  grantable text[] NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE pgwarden.tables IS 'Protected tables of the model; shares and temporary grants name them.';

CREATE TABLE pgwarden.units (
  name text PRIMARY KEY CHECK (name <> ''),
  parent text REFERENCES pgwarden.units (name),
  created_at timestamptz NOT NULL DEFAULT now(),
  CHECK (parent IS DISTINCT FROM name)
);
COMMENT ON TABLE pgwarden.units IS 'The org tree. A trigger refuses cycles.';

CREATE TABLE pgwarden.people (
  name text PRIMARY KEY CHECK (name <> ''),
  role name NOT NULL UNIQUE,
  unit text NOT NULL REFERENCES pgwarden.units (name),
  active boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  deactivated_at timestamptz,
  CHECK (active OR deactivated_at IS NOT NULL)
);
COMMENT ON TABLE pgwarden.people IS 'One row per person; role is the Postgres role the person acts as.';

CREATE TABLE pgwarden.job_grants (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  person text NOT NULL REFERENCES pgwarden.people (name),
  job text NOT NULL REFERENCES pgwarden.jobs (name) ON UPDATE CASCADE,
  valid_from timestamptz NOT NULL DEFAULT now(),
  valid_until timestamptz,
  granted_by name NOT NULL,
  revoked_at timestamptz,
  revoked_by name,
  CHECK (valid_until IS NULL OR valid_until > valid_from)
);
CREATE INDEX job_grants_person ON pgwarden.job_grants (person);

CREATE TABLE pgwarden.unit_managers (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  person text NOT NULL REFERENCES pgwarden.people (name),
  unit text NOT NULL REFERENCES pgwarden.units (name),
  valid_from timestamptz NOT NULL DEFAULT now(),
  valid_until timestamptz,
  granted_by name NOT NULL,
  revoked_at timestamptz,
  revoked_by name,
  CHECK (valid_until IS NULL OR valid_until > valid_from)
);
CREATE INDEX unit_managers_person ON pgwarden.unit_managers (person);
COMMENT ON TABLE pgwarden.unit_managers IS 'Who manages which unit (and so its subtree).';

CREATE TABLE pgwarden.shares (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  table_name text NOT NULL REFERENCES pgwarden.tables (name) ON DELETE CASCADE,
  row_key text NOT NULL,
  person text NOT NULL REFERENCES pgwarden.people (name),
  valid_from timestamptz NOT NULL DEFAULT now(),
  valid_until timestamptz,
  granted_by name NOT NULL,
  revoked_at timestamptz,
  revoked_by name,
  CHECK (valid_until IS NULL OR valid_until > valid_from)
);
CREATE INDEX shares_person ON pgwarden.shares (person, table_name);
COMMENT ON TABLE pgwarden.shares IS 'Record shares: one row of one table shared with one person, until valid_until.';

CREATE TABLE pgwarden.temp_grants (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  label text,
  person text NOT NULL REFERENCES pgwarden.people (name),
  table_name text NOT NULL REFERENCES pgwarden.tables (name) ON DELETE CASCADE,
  access text NOT NULL CHECK (access IN ('select', 'insert', 'update', 'delete')),
  filter jsonb NOT NULL CHECK (jsonb_typeof(filter) = 'object'),
  valid_from timestamptz NOT NULL DEFAULT now(),
  valid_until timestamptz NOT NULL,
  granted_by name NOT NULL,
  revoked_at timestamptz,
  revoked_by name,
  CHECK (valid_until > valid_from)
);
CREATE INDEX temp_grants_person ON pgwarden.temp_grants (person, table_name);
COMMENT ON TABLE pgwarden.temp_grants IS
  'Temporary access: rows of table_name matching filter ({"column": ["value", ...]}), for access, until valid_until.';

CREATE TABLE pgwarden.applied_objects (
  key text PRIMARY KEY,
  kind text NOT NULL,
  fingerprint text NOT NULL,
  definition text NOT NULL,
  server_form text,
  applied_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pgwarden.applied_objects IS 'Every object pgwarden created, with the fingerprint of its definition.';
COMMENT ON COLUMN pgwarden.applied_objects.server_form IS
  'For policies and views: pgwarden._server_form() right after apply, so an edit by hand is drift.';

CREATE TABLE pgwarden.applies (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  applied_at timestamptz NOT NULL DEFAULT now(),
  applied_by name NOT NULL DEFAULT current_user,
  model_name text NOT NULL,
  model_hash text NOT NULL,
  plan jsonb NOT NULL
);
COMMENT ON TABLE pgwarden.applies IS 'One row per pgwarden apply that changed something.';

-- A digest of a policy or view as the server stores it (expressions deparsed by the server
-- with a fixed search_path), so that formatting never matters and any edit does.
CREATE FUNCTION pgwarden._server_form(kind text, schema_name text, object_name text, table_name text DEFAULT NULL)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE kind
    WHEN 'policy' THEN (
      SELECT md5(concat_ws(E'\n', p.polcmd, p.polpermissive::text,
        (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE r::regrole::text END, ',' ORDER BY 1) FROM unnest(p.polroles) AS r),
        pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)))
      FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = schema_name AND c.relname = table_name AND p.polname = object_name)
    WHEN 'view' THEN (
      SELECT md5(concat_ws(E'\n', pg_get_viewdef(c.oid), c.reloptions::text, pg_get_userbyid(c.relowner),
        (SELECT string_agg(a.attname || '=' || pg_get_expr(d.adbin, d.adrelid), ',' ORDER BY a.attnum)
         FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
         WHERE d.adrelid = c.oid)))
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = schema_name AND c.relname = object_name AND c.relkind = 'v')
  END
$$;

-- ------------------------------------------------------------------ identity

-- The role acting now: the role set by SET [LOCAL] ROLE, else the session's login role. Inside a
-- SECURITY DEFINER function current_user is the function owner, but the "role" setting still
-- names the role that called it; it cannot be set to a role one is not a member of.
CREATE FUNCTION pgwarden.caller() RETURNS name
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN pg_catalog.current_setting('role') = 'none' THEN session_user
              ELSE pg_catalog.current_setting('role')::name END
$$;

-- Internal: the active person acting as role r (NULL when none). Not executable by people.
CREATE FUNCTION pgwarden._person(r name) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT p.name FROM pgwarden.people p WHERE p.role = r AND p.active $$;

-- Internal: the person for helper argument p, only when p is the caller.
CREATE FUNCTION pgwarden._self(p name) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE WHEN p = pgwarden.caller() THEN pgwarden._person(p) END $$;

CREATE FUNCTION pgwarden._active(valid_from timestamptz, valid_until timestamptz, revoked_at timestamptz)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT revoked_at IS NULL AND valid_from <= pg_catalog.statement_timestamp()
     AND (valid_until IS NULL OR valid_until > pg_catalog.statement_timestamp())
$$;

-- ------------------------------------------------------------------ policy helpers
-- Called from generated policies and views as (SELECT pgwarden.f(current_user, ...)), so they
-- run once per statement.

CREATE FUNCTION pgwarden.person_name(p name) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgwarden._self(p) $$;
COMMENT ON FUNCTION pgwarden.person_name(name) IS 'The calling person''s name, or NULL.';

CREATE FUNCTION pgwarden.has_job(p name, job text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT EXISTS (
    SELECT FROM pgwarden.job_grants g
    WHERE g.person = pgwarden._self(p) AND g.job = has_job.job
      AND pgwarden._active(g.valid_from, g.valid_until, g.revoked_at))
$$;

CREATE FUNCTION pgwarden.my_units(p name) RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT COALESCE(pg_catalog.array_agg(x.unit), '{}')
  FROM pgwarden.people x WHERE x.name = pgwarden._self(p)
$$;

CREATE FUNCTION pgwarden.subtree_units(p name) RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  WITH RECURSIVE tree(unit) AS (
    SELECT m.unit FROM pgwarden.unit_managers m
    WHERE m.person = pgwarden._self(p) AND pgwarden._active(m.valid_from, m.valid_until, m.revoked_at)
    UNION
    SELECT u.name FROM pgwarden.units u JOIN tree t ON u.parent = t.unit
  )
  SELECT COALESCE(pg_catalog.array_agg(unit ORDER BY unit), '{}') FROM tree
$$;
COMMENT ON FUNCTION pgwarden.subtree_units(name) IS 'Units the caller manages, with all units below them.';

CREATE FUNCTION pgwarden.unit_people(p name) RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT COALESCE(pg_catalog.array_agg(x.name ORDER BY x.name), '{}')
  FROM pgwarden.people x WHERE x.unit = ANY (pgwarden.my_units(p))
$$;
COMMENT ON FUNCTION pgwarden.unit_people(name) IS 'Names of the people in the caller''s unit.';

CREATE FUNCTION pgwarden.subtree_people(p name) RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT COALESCE(pg_catalog.array_agg(x.name ORDER BY x.name), '{}')
  FROM pgwarden.people x WHERE x.unit = ANY (pgwarden.subtree_units(p))
$$;
COMMENT ON FUNCTION pgwarden.subtree_people(name) IS 'Names of the people in the units the caller manages (with subunits).';

CREATE FUNCTION pgwarden.shared_keys(p name, tbl text) RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT COALESCE(pg_catalog.array_agg(DISTINCT s.row_key), '{}')
  FROM pgwarden.shares s
  WHERE s.person = pgwarden._self(p) AND s.table_name = tbl
    AND pgwarden._active(s.valid_from, s.valid_until, s.revoked_at)
$$;
COMMENT ON FUNCTION pgwarden.shared_keys(name, text) IS 'Keys of the rows of tbl shared with the caller now.';

CREATE FUNCTION pgwarden.grant_filters(p name, tbl text, acc text) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT COALESCE(pg_catalog.jsonb_agg(g.filter ORDER BY g.id), '[]')
  FROM pgwarden.temp_grants g
  WHERE g.person = pgwarden._self(p) AND g.table_name = tbl AND g.access = acc
    AND pgwarden._active(g.valid_from, g.valid_until, g.revoked_at)
$$;
COMMENT ON FUNCTION pgwarden.grant_filters(name, text, text) IS
  'Filters of the caller''s temporary grants on tbl for acc that are in force now (a jsonb array).';

-- ------------------------------------------------------------------ integrity triggers

CREATE FUNCTION pgwarden._units_no_cycle() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NEW.parent IS NOT NULL AND EXISTS (
    WITH RECURSIVE up(name, depth) AS (
      SELECT NEW.parent, 1
      UNION
      SELECT u.parent, up.depth + 1 FROM pgwarden.units u JOIN up ON u.name = up.name
      WHERE u.parent IS NOT NULL AND up.depth < 1000
    )
    SELECT FROM up WHERE up.name = NEW.name
  ) THEN
    RAISE EXCEPTION 'unit "%" cannot be placed under "%": that would make a cycle', NEW.name, NEW.parent
      USING ERRCODE = 'check_violation', HINT = 'Choose a parent that is not inside this unit''s subtree.';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER units_no_cycle BEFORE INSERT OR UPDATE OF parent ON pgwarden.units
  FOR EACH ROW EXECUTE FUNCTION pgwarden._units_no_cycle();

-- ------------------------------------------------------------------ administration
-- Callable by a superuser, or by a person holding a job marked admin in the model. Nobody
-- grants anything to themselves.

CREATE FUNCTION pgwarden._assert_admin() RETURNS name
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden.caller();
BEGIN
  IF EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = who AND r.rolsuper) THEN
    RETURN who;
  END IF;
  IF EXISTS (
    SELECT FROM pgwarden.job_grants g JOIN pgwarden.jobs j ON j.name = g.job
    WHERE g.person = pgwarden._person(who) AND j.admin
      AND pgwarden._active(g.valid_from, g.valid_until, g.revoked_at)
  ) THEN
    RETURN who;
  END IF;
  RAISE EXCEPTION 'permission denied: role "%" may not manage people, units, jobs, shares or grants', who
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'Run this as a person holding an admin job of the model, or as the database administrator.';
END
$$;

CREATE FUNCTION pgwarden._setting(k text) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT s.value FROM pgwarden.settings s WHERE s.key = k $$;

CREATE FUNCTION pgwarden._require_person(person text) RETURNS pgwarden.people
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r pgwarden.people;
BEGIN
  SELECT * INTO r FROM pgwarden.people p WHERE p.name = person;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'person "%" does not exist', person
      USING ERRCODE = 'no_data_found', HINT = 'Add them first: pgwarden person add <name> --unit <unit>.';
  END IF;
  RETURN r;
END
$$;

CREATE FUNCTION pgwarden._not_self(who name, person text) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF pgwarden._person(who) = person THEN
    RAISE EXCEPTION 'permission denied: % may not grant anything to themselves', person
      USING ERRCODE = 'insufficient_privilege', HINT = 'Ask another administrator.';
  END IF;
END
$$;

CREATE FUNCTION pgwarden.add_unit(unit text, parent text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM pgwarden._assert_admin();
  IF add_unit.parent IS NOT NULL AND NOT EXISTS (SELECT FROM pgwarden.units u WHERE u.name = add_unit.parent) THEN
    RAISE EXCEPTION 'parent unit "%" does not exist', add_unit.parent
      USING ERRCODE = 'no_data_found', HINT = 'Add the parent unit first.';
  END IF;
  IF EXISTS (SELECT FROM pgwarden.units u WHERE u.name = add_unit.unit) THEN
    RAISE EXCEPTION 'unit "%" already exists', add_unit.unit
      USING ERRCODE = 'unique_violation', HINT = 'Use pgwarden unit move to change its parent.';
  END IF;
  INSERT INTO pgwarden.units (name, parent) VALUES (add_unit.unit, add_unit.parent);
END
$$;

CREATE FUNCTION pgwarden.move_unit(unit text, parent text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM pgwarden._assert_admin();
  IF NOT EXISTS (SELECT FROM pgwarden.units u WHERE u.name = move_unit.parent) THEN
    RAISE EXCEPTION 'parent unit "%" does not exist', move_unit.parent USING ERRCODE = 'no_data_found';
  END IF;
  UPDATE pgwarden.units u SET parent = move_unit.parent WHERE u.name = move_unit.unit;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'unit "%" does not exist', unit USING ERRCODE = 'no_data_found';
  END IF;
END
$$;

CREATE FUNCTION pgwarden.add_person(person text, unit text, jobs text[] DEFAULT '{}', login boolean DEFAULT false)
RETURNS name
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden._assert_admin();
  r text := COALESCE(pgwarden._setting('role_prefix'), '') || person;
  j text;
BEGIN
  IF person IS NULL OR person = '' THEN
    RAISE EXCEPTION 'a person needs a name' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF octet_length(r) > 63 THEN
    RAISE EXCEPTION 'role name "%" for person "%" is longer than 63 bytes', r, person
      USING ERRCODE = 'name_too_long', HINT = 'Use a shorter name.';
  END IF;
  IF EXISTS (SELECT FROM pgwarden.people p WHERE p.name = person) THEN
    RAISE EXCEPTION 'person "%" already exists', person
      USING ERRCODE = 'unique_violation', HINT = 'Use pgwarden person move, or choose another name.';
  END IF;
  IF NOT EXISTS (SELECT FROM pgwarden.units u WHERE u.name = unit) THEN
    RAISE EXCEPTION 'unit "%" does not exist', unit
      USING ERRCODE = 'no_data_found', HINT = 'Add it first: pgwarden unit add <name> --parent <unit>.';
  END IF;
  -- An existing role becomes a person only when a superuser says so, and never one of
  -- pgwarden's own roles or a privileged one: the authenticator would become a member of it.
  IF r IN (pgwarden._setting('authenticator'), pgwarden._setting('people_role'), pgwarden._setting('table_owner'),
           pgwarden._setting('view_owner'), pgwarden._setting('catalog_owner'), pgwarden._setting('audit_owner'))
     OR EXISTS (SELECT FROM pg_catalog.pg_roles x WHERE x.rolname = r
                AND (x.rolsuper OR x.rolbypassrls OR x.rolcreaterole OR x.rolreplication OR x.rolname LIKE 'pg\_%'))
  THEN
    RAISE EXCEPTION 'role "%" is privileged or one of pgwarden''s own roles; it cannot be a person', r
      USING ERRCODE = 'insufficient_privilege', HINT = 'Choose another name for the person.';
  END IF;
  IF EXISTS (SELECT FROM pg_catalog.pg_roles x WHERE x.rolname = r)
     AND NOT EXISTS (SELECT FROM pg_catalog.pg_roles x WHERE x.rolname = who AND x.rolsuper) THEN
    RAISE EXCEPTION 'role "%" already exists; only a database superuser may make an existing role a person', r
      USING ERRCODE = 'insufficient_privilege', HINT = 'Choose another name, or ask the database administrator.';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles x WHERE x.rolname = r) THEN
    EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN INHERIT', r);
  END IF;
  IF login THEN
    EXECUTE pg_catalog.format('ALTER ROLE %I LOGIN', r);
  END IF;
  EXECUTE pg_catalog.format('GRANT %I TO %I', pgwarden._setting('people_role'), r);
  EXECUTE pg_catalog.format('GRANT %I TO %I', r, pgwarden._setting('authenticator'));
  INSERT INTO pgwarden.people (name, role, unit) VALUES (person, r, unit);
  FOREACH j IN ARRAY COALESCE(jobs, '{}') LOOP
    PERFORM pgwarden.grant_job(person, j);
  END LOOP;
  RETURN r;
END
$$;
COMMENT ON FUNCTION pgwarden.add_person(text, text, text[], boolean) IS
  'Adds a person: creates their role (NOLOGIN unless login), lets the authenticator act as them, grants jobs.';

CREATE FUNCTION pgwarden.move_person(person text, unit text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden._assert_admin();
BEGIN
  PERFORM pgwarden._require_person(person);
  IF NOT EXISTS (SELECT FROM pgwarden.units u WHERE u.name = unit) THEN
    RAISE EXCEPTION 'unit "%" does not exist', unit USING ERRCODE = 'no_data_found';
  END IF;
  UPDATE pgwarden.people p SET unit = move_person.unit WHERE p.name = person;
END
$$;

CREATE FUNCTION pgwarden.deactivate_person(person text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden._assert_admin();
  r pgwarden.people := pgwarden._require_person(person);
BEGIN
  PERFORM pgwarden._not_self(who, person);
  UPDATE pgwarden.people p SET active = false, deactivated_at = COALESCE(p.deactivated_at, now())
  WHERE p.name = person;
  IF EXISTS (SELECT FROM pg_catalog.pg_roles x WHERE x.rolname = r.role) THEN
    EXECUTE pg_catalog.format('ALTER ROLE %I NOLOGIN', r.role);
    IF pg_catalog.pg_has_role(pgwarden._setting('authenticator'), r.role, 'MEMBER') THEN
      EXECUTE pg_catalog.format('REVOKE %I FROM %I', r.role, pgwarden._setting('authenticator'));
    END IF;
  END IF;
END
$$;

CREATE FUNCTION pgwarden.grant_job(person text, job text, valid_until timestamptz DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden._assert_admin();
  id bigint;
BEGIN
  PERFORM pgwarden._require_person(person);
  PERFORM pgwarden._not_self(who, person);
  IF NOT EXISTS (SELECT FROM pgwarden.jobs j WHERE j.name = job) THEN
    RAISE EXCEPTION 'job "%" is not in the model', job
      USING ERRCODE = 'no_data_found', HINT = 'Known jobs: ' || (SELECT pg_catalog.string_agg(name, ', ' ORDER BY name) FROM pgwarden.jobs);
  END IF;
  INSERT INTO pgwarden.job_grants (person, job, valid_until, granted_by)
  VALUES (person, job, grant_job.valid_until, who) RETURNING job_grants.id INTO id;
  RETURN id;
END
$$;

CREATE FUNCTION pgwarden.revoke_job(person text, job text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden._assert_admin();
  n integer;
BEGIN
  PERFORM pgwarden._require_person(person);
  UPDATE pgwarden.job_grants g SET revoked_at = now(), revoked_by = who
  WHERE g.person = revoke_job.person AND g.job = revoke_job.job AND g.revoked_at IS NULL;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;

CREATE FUNCTION pgwarden.set_manager(person text, unit text, valid_until timestamptz DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden._assert_admin();
  id bigint;
BEGIN
  PERFORM pgwarden._require_person(person);
  PERFORM pgwarden._not_self(who, person);
  IF NOT EXISTS (SELECT FROM pgwarden.units u WHERE u.name = unit) THEN
    RAISE EXCEPTION 'unit "%" does not exist', unit USING ERRCODE = 'no_data_found';
  END IF;
  INSERT INTO pgwarden.unit_managers (person, unit, valid_until, granted_by)
  VALUES (person, unit, set_manager.valid_until, who) RETURNING unit_managers.id INTO id;
  RETURN id;
END
$$;

CREATE FUNCTION pgwarden.unset_manager(person text, unit text DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden._assert_admin();
  n integer;
BEGIN
  UPDATE pgwarden.unit_managers m SET revoked_at = now(), revoked_by = who
  WHERE m.person = unset_manager.person AND (unset_manager.unit IS NULL OR m.unit = unset_manager.unit)
    AND m.revoked_at IS NULL;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;

CREATE FUNCTION pgwarden.share(tbl text, row_key text, person text, valid_until timestamptz DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden._assert_admin();
  id bigint;
BEGIN
  PERFORM pgwarden._require_person(person);
  PERFORM pgwarden._not_self(who, person);
  IF NOT EXISTS (SELECT FROM pgwarden.tables t WHERE t.name = tbl) THEN
    RAISE EXCEPTION 'table "%" is not protected by the model', tbl
      USING ERRCODE = 'no_data_found', HINT = 'Known tables: ' || (SELECT pg_catalog.string_agg(name, ', ' ORDER BY name) FROM pgwarden.tables);
  END IF;
  IF valid_until IS NOT NULL AND valid_until <= now() THEN
    RAISE EXCEPTION 'valid_until % is in the past', valid_until USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- a key that is not of the key's type would break every query of that person on the table
  BEGIN
    EXECUTE pg_catalog.format('SELECT ($1)::%s', (SELECT t.key_type FROM pgwarden.tables t WHERE t.name = tbl)) USING row_key;
  EXCEPTION WHEN data_exception THEN
    RAISE EXCEPTION 'row key "%" is not a valid % for table "%"', row_key,
      (SELECT t.key_type FROM pgwarden.tables t WHERE t.name = tbl), tbl
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Give the value of the row''s primary key.';
  END;
  INSERT INTO pgwarden.shares (table_name, row_key, person, valid_until, granted_by)
  VALUES (tbl, row_key, person, share.valid_until, who) RETURNING shares.id INTO id;
  RETURN id;
END
$$;

CREATE FUNCTION pgwarden.unshare(tbl text, row_key text, person text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden._assert_admin();
  n integer;
BEGIN
  UPDATE pgwarden.shares s SET revoked_at = now(), revoked_by = who
  WHERE s.table_name = tbl AND s.row_key = unshare.row_key AND s.person = unshare.person AND s.revoked_at IS NULL;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;

CREATE FUNCTION pgwarden.grant_access(person text, tbl text, filter jsonb, valid_until timestamptz,
                                      access text DEFAULT 'select', label text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden._assert_admin();
  allowed text[];
  k text;
  v jsonb;
  norm jsonb := '{}';
  id bigint;
BEGIN
  PERFORM pgwarden._require_person(person);
  PERFORM pgwarden._not_self(who, person);
  SELECT t.grantable INTO allowed FROM pgwarden.tables t WHERE t.name = tbl;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'table "%" is not protected by the model', tbl USING ERRCODE = 'no_data_found';
  END IF;
  IF valid_until IS NULL OR valid_until <= now() THEN
    RAISE EXCEPTION 'a temporary grant needs an end time in the future (got %)', valid_until
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF filter IS NULL OR jsonb_typeof(filter) <> 'object' OR filter = '{}' THEN
    RAISE EXCEPTION 'a temporary grant needs a filter object, e.g. {"region": ["east"]}'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR k, v IN SELECT * FROM jsonb_each(filter) LOOP
    IF NOT k = ANY (allowed) THEN
      RAISE EXCEPTION 'temporary grants on "%" cannot filter on column "%"', tbl, k
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
  INSERT INTO pgwarden.temp_grants (label, person, table_name, access, filter, valid_until, granted_by)
  VALUES (label, person, tbl, access, norm, grant_access.valid_until, who) RETURNING temp_grants.id INTO id;
  RETURN id;
END
$$;

CREATE FUNCTION pgwarden.revoke_access(grant_id bigint) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden._assert_admin();
  n integer;
BEGIN
  UPDATE pgwarden.temp_grants g SET revoked_at = now(), revoked_by = who
  WHERE g.id = grant_id AND g.revoked_at IS NULL;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;

CREATE FUNCTION pgwarden.set_access_until(grant_id bigint, valid_until timestamptz) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := pgwarden._assert_admin();
  g pgwarden.temp_grants;
BEGIN
  SELECT * INTO g FROM pgwarden.temp_grants t WHERE t.id = grant_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'temporary grant % does not exist', grant_id USING ERRCODE = 'no_data_found';
  END IF;
  PERFORM pgwarden._not_self(who, g.person);
  IF valid_until <= g.valid_from THEN
    -- ending it before it began: end it at its start
    valid_until := g.valid_from + interval '1 microsecond';
  END IF;
  UPDATE pgwarden.temp_grants t SET valid_until = set_access_until.valid_until WHERE t.id = grant_id;
END
$$;

-- ------------------------------------------------------------------ masks
-- Partial masks, not hashes: nothing to build a dictionary from. IMMUTABLE, not LEAKPROOF.

CREATE FUNCTION pgwarden.mask_phone(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE
    WHEN value IS NULL THEN NULL
    WHEN pg_catalog.length(value) <= 7 THEN pg_catalog.repeat('*', pg_catalog.length(value))
    ELSE pg_catalog.left(value, 3) || '****' || pg_catalog.right(value, 4)
  END
$$;
COMMENT ON FUNCTION pgwarden.mask_phone(text) IS '13812345678 -> 138****5678';

CREATE FUNCTION pgwarden.mask_email(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE
    WHEN value IS NULL THEN NULL
    WHEN pg_catalog.strpos(value, '@') < 2 THEN '***'
    ELSE pg_catalog.left(value, 1) || '***' || pg_catalog.substr(value, pg_catalog.strpos(value, '@'))
  END
$$;
COMMENT ON FUNCTION pgwarden.mask_email(text) IS 'alice@example.com -> a***@example.com';

CREATE FUNCTION pgwarden.mask_id_number(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE
    WHEN value IS NULL THEN NULL
    WHEN pg_catalog.length(value) <= 10 THEN pg_catalog.repeat('*', pg_catalog.length(value))
    ELSE pg_catalog.left(value, 6) || pg_catalog.repeat('*', pg_catalog.length(value) - 10) || pg_catalog.right(value, 4)
  END
$$;
COMMENT ON FUNCTION pgwarden.mask_id_number(text) IS 'first 6 and last 4 characters kept: 110101********1234';

REVOKE ALL ON ALL TABLES IN SCHEMA pgwarden FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgwarden FROM PUBLIC;
