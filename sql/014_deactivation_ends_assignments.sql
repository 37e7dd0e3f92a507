-- pgwarden runtime catalog, version 14: deactivating a person ends her assignments and team
-- memberships.
--
-- deactivate_person and offboard (001, 002) end shares, temporary grants, jobs and management.
-- Attribute assignments and team memberships (010) came later; an inactive person gets nothing
-- from them, but left in force they would come back with a reactivation and keep showing in
-- reviews as held. A trigger on people ends them when a person stops being active, whichever
-- function (or hand-written UPDATE) does it; the audit log records each ended row.
--
-- Same rules as 001: run as the catalog owner; definer functions pin search_path.

CREATE FUNCTION pgwarden._end_assignments_of_inactive() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who name := CASE WHEN pg_catalog.current_setting('role') = 'none' THEN session_user
                   ELSE pg_catalog.current_setting('role')::name END;
BEGIN
  UPDATE pgwarden.assignments a SET revoked_at = pg_catalog.now(), revoked_by = who
  WHERE a.person = NEW.name AND a.revoked_at IS NULL
    AND (a.valid_until IS NULL OR a.valid_until > pg_catalog.now());
  UPDATE pgwarden.team_members m SET revoked_at = pg_catalog.now(), revoked_by = who
  WHERE m.person = NEW.name AND m.revoked_at IS NULL
    AND (m.valid_until IS NULL OR m.valid_until > pg_catalog.now());
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION pgwarden._end_assignments_of_inactive() IS
  'Ends the assignments and team memberships of a person who stops being active.';
REVOKE EXECUTE ON FUNCTION pgwarden._end_assignments_of_inactive() FROM PUBLIC;

CREATE TRIGGER end_assignments_of_inactive AFTER UPDATE OF active ON pgwarden.people
  FOR EACH ROW WHEN (OLD.active AND NOT NEW.active)
  EXECUTE FUNCTION pgwarden._end_assignments_of_inactive();
