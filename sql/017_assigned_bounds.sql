-- pgwarden runtime catalog, version 17: the bounds of a person's assigned values.
--
-- An assigned scope (issue 10) is an index arm of the policy:
--   col = ANY (<the values>) AND col >= <their least> AND col <= <their greatest>
-- The bounds change no result (the membership implies them); they keep the planner's estimate of
-- the arm low (an attribute has few values, and `= ANY` of an array it cannot see is estimated
-- at most of the table). Written first as subqueries over unnest(assigned(...)), each bound was
-- a subquery the planner had to plan in every statement: a person's point lookup took 2.6 ms to
-- plan instead of 1.2 ms. As helpers, each bound is a plain initplan, like the other helpers.
-- Text only, compared in the default collation (the policies write COLLATE "default" on them).
-- Since assigned scopes are index arms, apply writes pgwarden.row_checks.assigned as '[]': the
-- column and row_checked()'s loop over it stay (sql files are append-only), with nothing to do.

CREATE FUNCTION pgwarden.assigned_min(p name, attr text) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT pg_catalog.min(v.v COLLATE "default") FROM pg_catalog.unnest(pgwarden.assigned(p, attr)) AS v(v));
END
$$;
COMMENT ON FUNCTION pgwarden.assigned_min(name, text) IS
  'The least of the caller''s assigned values of attr (default collation), NULL when none: a bound for the policies.';

CREATE FUNCTION pgwarden.assigned_max(p name, attr text) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT pg_catalog.max(v.v COLLATE "default") FROM pg_catalog.unnest(pgwarden.assigned(p, attr)) AS v(v));
END
$$;
COMMENT ON FUNCTION pgwarden.assigned_max(name, text) IS
  'The greatest of the caller''s assigned values of attr (default collation), NULL when none: a bound for the policies.';

REVOKE EXECUTE ON FUNCTION pgwarden.assigned_min(name, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pgwarden.assigned_max(name, text) FROM PUBLIC;
