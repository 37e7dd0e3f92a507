-- Issue 8: the keyring of the session, derived once per statement without planning a query.
--
-- Every view with an encrypted column evaluates (SELECT pgwarden._keyring()) once per statement
-- for each place a shown cell needs it (two per CASE branch that decrypts). sql/015 wrote it in
-- SQL; its body aggregates, so PostgreSQL cannot inline it and plans that body again in every
-- statement that calls it: about 0.1 ms per call site, measured with pgbench (prepared
-- statements) on PostgreSQL 15, with no key set. The same body in PL/pgSQL is planned once per
-- session: 0.03 ms with no key, 0.07 ms with one key (0.12 and 0.16 ms before). A rep's point
-- lookup through crm_api.customers, which decrypts id_number on her own row, pays it twice.
-- sql/016 made the same change to the policy helpers.
--
-- The result is unchanged: the same derivation from the same setting (pgwarden.keys, read by
-- _session_keys()), the same jsonb. No SET clause and no SECURITY DEFINER, as before: it reads
-- only the caller's own setting and calls only schema-qualified functions.

CREATE OR REPLACE FUNCTION pgwarden._keyring() RETURNS jsonb
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
BEGIN
  RETURN (SELECT COALESCE(pg_catalog.jsonb_object_agg(pgwarden._key_id(x.k), pg_catalog.encode(
                   pgwarden._hmac256(pg_catalog.convert_to('pgwarden-enc', 'UTF8'), x.k)
                   OPERATOR(pg_catalog.||) pgwarden._hmac256(pg_catalog.convert_to('pgwarden-mac', 'UTF8'), x.k)
                   OPERATOR(pg_catalog.||) pgwarden._hmac256(pg_catalog.convert_to('pgwarden-siv', 'UTF8'), x.k), 'hex')), '{}')
          FROM pg_catalog.unnest(pgwarden._session_keys()) AS x(k));
END
$$;
