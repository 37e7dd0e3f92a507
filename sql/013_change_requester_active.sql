-- pgwarden runtime catalog, version 13: a pending change dies with its requester's access.
--
-- A change waits for a second person; if its requester is deactivated or offboarded before
-- that, approving it would still apply (and record) an edit in the name of someone who no
-- longer works here. Such a change now reads as 'void' (not pending): it can no longer be
-- approved and no longer shows as waiting (an approver may still reject it).
--
-- Same rules as 001: run as the catalog owner; search_path pinned.

CREATE OR REPLACE FUNCTION pgwarden._change_state(r pgwarden.change_requests) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE
    WHEN r.status = 'pending' AND r.expires_at <= pg_catalog.now() THEN 'expired'
    WHEN r.status = 'pending' AND NOT EXISTS (
      SELECT FROM pgwarden.people p WHERE p.name = r.requested_by AND p.active) THEN 'void'
    ELSE r.status
  END
$$;
COMMENT ON FUNCTION pgwarden._change_state(pgwarden.change_requests) IS
  'A change''s state now: its status, or expired (past its window), or void (its requester is no longer an active person).';
REVOKE EXECUTE ON FUNCTION pgwarden._change_state(pgwarden.change_requests) FROM PUBLIC;
