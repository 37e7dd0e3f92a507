-- pgwarden:owner audit
-- pgwarden runtime catalog, version 4: audit records for reveals, exports and refused attempts.
-- Run as the audit owner. EXECUTE is granted to the catalog owner only (whose reveal and export
-- functions call it).

CREATE FUNCTION pgwarden_audit.record_event(kind text, tbl text, row_key text, detail jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  id bigint;
BEGIN
  IF kind NOT IN ('reveal', 'export', 'denied') THEN
    RAISE EXCEPTION 'unknown audit event kind %', kind USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO pgwarden_audit.records (kind, table_name, operation, row_key, person, actor, authenticator, detail)
  VALUES (kind, tbl, pg_catalog.upper(kind), row_key, pgwarden_audit._person(), pgwarden.caller(), session_user, detail)
  RETURNING records.id INTO id;
  RETURN id;
END
$$;
COMMENT ON FUNCTION pgwarden_audit.record_event(text, text, text, jsonb) IS
  'Records a reveal, an export or a refused attempt (detail: what was asked, never a customer value).';

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgwarden_audit FROM PUBLIC;
