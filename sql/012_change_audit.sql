-- pgwarden:owner audit
-- pgwarden runtime catalog, version 12: audit of approved changes.
-- Run as the audit owner. The generated data-change triggers call this while
-- pgwarden.approve_change() applies a change: the record names the requester as the person and
-- the approver in its detail. A session cannot forge it: the setting only points at a change
-- that pgwarden.approve_change() is applying in this very transaction (status 'applying', set
-- and cleared by it, its transaction id recorded); anything else gives NULL.

CREATE FUNCTION pgwarden_audit.applying_change() RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  s text := pg_catalog.current_setting('pgwarden.applying_change', true);
  out jsonb;
BEGIN
  IF s IS NULL OR s !~ '^[0-9]{1,18}$' THEN
    RETURN NULL;
  END IF;
  SELECT pg_catalog.jsonb_build_object('change', c.id, 'row_key', c.row_key, 'requested_by', c.requested_by, 'approved_by', c.decided_by)
    INTO out
  FROM pgwarden.change_requests c
  WHERE c.id = s::bigint AND c.status = 'applying' AND c.applied_txid = pg_catalog.pg_current_xact_id();
  RETURN out;
END
$$;
COMMENT ON FUNCTION pgwarden_audit.applying_change() IS
  'The change pgwarden.approve_change() is applying in this transaction ({change, row_key, requested_by, approved_by}), else NULL.';

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgwarden_audit FROM PUBLIC;
