-- pgwarden runtime catalog, version 15: field encryption (issue #11).
--
-- THE CONTRACT (the TypeScript runtime, the CLI and the compiled views code against these names)
--
-- Keys
--   * A key is 32 random bytes written as 64 hex characters. Its id is
--       left(encode(sha256(convert_to('pgwarden-key-id:', 'UTF8') || decode(key, 'hex')), 'hex'), 16)
--   * Keys never live in a table, a log or a backup: the session supplies them in the custom
--     setting `pgwarden.keys`, a comma-separated list of 64-hex keys. withPerson sets it per
--     transaction (set_config('pgwarden.keys', $1, true), the key as a bind parameter); the CLI
--     and the tests pass it as the connection startup parameter `pgwarden.keys`. An entry that is
--     not 64 hex characters is an error (SQLSTATE 22023) that names its position, never its value.
--   * pgwarden.encryption_keys lists key ids only: state 'active' (new values are encrypted with
--     it; at most one), 'retiring' (values may still use it; readable with the key), 'retired'
--     (no value uses it).
--
-- Stored values (the column stays text; the application schema is unchanged)
--     'pgwenc1:' || <key id, 16 hex> || ':' || base64(iv[16] || ciphertext || tag[32])
--   * encrypt-then-MAC: AES-256-CBC (pgcrypto encrypt_iv, PKCS padding) with a random 16-byte IV,
--     then HMAC-SHA256 over
--       convert_to('pgwenc1:' || key_id || ':', 'UTF8') || int4send(octet_length(ad)) || ad || iv || ciphertext
--     with subkeys derived from the key: enc = hmac('pgwarden-enc', key), mac = hmac('pgwarden-mac',
--     key), siv = hmac('pgwarden-siv', key) (HMAC-SHA256, the key as HMAC key).
--   * ad (associated data) = '<protected schema>.<table>.<column>' as stored names (e.g.
--     'crm.customers.id_number'): a value copied into another column fails its MAC.
--   * deterministic columns (the model asks for equality search): iv = the first 16 bytes of
--     HMAC-SHA256(siv, int4send(octet_length(ad)) || ad || plaintext) (SIV-style): the same
--     plaintext in the same column under the same key gives the same stored value.
--   * A value without the 'pgwenc1:' prefix is plaintext stored before the column was encrypted;
--     it is read as it is until `pgwarden keys rotate` encrypts it.
--
-- Catalog (written by apply from the model, like the other catalog rows)
--   pgwarden.encryption_keys(key_id text PK, state text, added_at, added_by, retired_at)
--   pgwarden.encrypted_columns(key text PK '<model table>.<column>', table_name, column_name,
--                              deterministic boolean, associated_data text)
--
-- Functions (schema pgwarden; EXECUTE revoked from PUBLIC; apply grants what each role needs)
--   encrypt_value(value text, ad text, deterministic boolean) RETURNS text
--       with the ACTIVE key, which must be in pgwarden.keys; otherwise SQLSTATE 55000
--       (object_not_in_prerequisite_state) 'pgwarden: cannot encrypt <ad>: ...' naming the key id
--       and how to supply it. NULL stays NULL. Granted to the table owner.
--   decrypt_value(value text, ad text) RETURNS text
--       the plaintext; NULL when value is NULL or its key is not in the session; a value without
--       the prefix is returned as it is; a failed MAC (tampering, a value of another column)
--       raises SQLSTATE XX001 (data_corrupted) naming the column. Granted to the view owner and
--       the table owner.
--   value_key_id(value text) RETURNS text         key id of a stored value; NULL for plaintext/NULL
--   session_key_ids() RETURNS text[]              ids of the keys in pgwarden.keys, in order
--   add_key() RETURNS text                        registers the FIRST key of pgwarden.keys as
--       active (the previous active one becomes 'retiring'); idempotent; returns its id.
--   rotate_batch(tbl text, batch integer) RETURNS integer
--       tbl is the model table name; re-encrypts up to `batch` rows whose encrypted columns hold
--       plaintext or a value under a non-active key, to the active key, in one UPDATE (decrypt and
--       encrypt inside the expression: no plaintext in any table, temp table or log); returns the
--       rows changed, 0 when done. Needs the old key(s) and the new key in pgwarden.keys, and
--       refuses (55000, with counts per key id) before changing anything when one is missing.
--       Commit after each batch: an interrupted rotation resumes where it stopped.
--   retire_key(key_id text) RETURNS void          refuses (55000, counts per column) while any
--       value still uses the key, and refuses the active key; marks it 'retired'.
--   encryption_status() RETURNS TABLE(table_name text, column_name text, key_id text, state text, "values" bigint)
--       one row per column and key id in use (key_id NULL = plaintext values; state NULL = a key
--       id that is not registered).
--   add_key, rotate_batch, retire_key and encryption_status are for the table owner role and
--   superusers (the CLI runs them as a superuser).
--
-- Writes
--   A BEFORE INSERT OR UPDATE row trigger "zz_pgwarden_encrypt" on each base table with encrypted
--   columns (ENABLE ALWAYS; named to fire after every other BEFORE trigger) encrypts each encrypted
--   column whose new value is not already a valid ciphertext of that column; an unchanged value on
--   UPDATE is left as it is (writes of other columns need no key). Without the active key the
--   write is refused (55000, as encrypt_value). A changed value that looks encrypted is accepted
--   only when it is a valid ciphertext of this column under a key of the session (22023 when it
--   is not, e.g. copied from another column; 55000 when its key is not supplied).
--
-- Reads (the masking views)
--   full:   pgwarden._shown(pgwarden._decrypt(col, ad, R), col, ad, R)
--   mask:   pgwarden._shown(pgwarden.mask_x(pgwarden._decrypt(col, ad, R)), col, ad, R)
--           where R = (SELECT pgwarden._keyring()) and ad a literal
--   hidden: NULL, nothing is decrypted.
--   Without the key a non-NULL value shows as '****' and the session gets ONE NOTICE per
--   transaction (each autocommit statement is one):
--     'pgwarden: <ad> is encrypted and this session supplied no key for it (key id <id>): it is shown as ****'
--   with a HINT saying how to supply the key. The keyring (derived subkeys of the session's keys)
--   is computed once per statement (an init plan); per row and column the work is one call of
--   pgwarden._open_k (one HMAC and one AES decryption); the rest inlines.
--
-- Reveal and export
--   pgwarden.reveal(...) adds, to an allowed decision of an encrypted column whose value's key is
--   not in the session, "notice": '<why>' and "masked": true. pgwarden.revealed(id) then returns
--   '****' and raises the same NOTICE; with the key it returns the plaintext. Exports read through
--   the views, so they decrypt (or show '****' with the NOTICE) the same way.
--
-- pgcrypto
--   Resolved at creation time: thin wrappers pgwarden._hmac256, _aes_encrypt, _aes_decrypt and
--   _random_bytes call it in whatever schema it is installed in. When it is not installed, they
--   raise SQLSTATE 0A000 saying how to install it. When apply writes the first encrypted_columns
--   row (as the superuser running apply), pgwarden._ensure_crypto() creates the extension if it is
--   missing (in schema pgwarden_crypto), rebuilds the wrappers, and fails the apply with that error
--   when the server does not have pgcrypto at all.

CREATE TABLE pgwarden.encryption_keys (
  key_id text PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{16}$'),
  state text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'retiring', 'retired')),
  added_at timestamptz NOT NULL DEFAULT now(),
  added_by name NOT NULL DEFAULT session_user,
  retired_at timestamptz,
  CHECK ((state = 'retired') = (retired_at IS NOT NULL))
);
CREATE UNIQUE INDEX encryption_keys_one_active ON pgwarden.encryption_keys ((true)) WHERE state = 'active';
COMMENT ON TABLE pgwarden.encryption_keys IS
  'Ids of the field-encryption keys (never the keys: sessions supply them in pgwarden.keys). At most one is active.';

CREATE TABLE pgwarden.encrypted_columns (
  key text PRIMARY KEY,
  table_name text NOT NULL REFERENCES pgwarden.tables (name) ON DELETE CASCADE,
  column_name text NOT NULL,
  deterministic boolean NOT NULL DEFAULT false,
  associated_data text NOT NULL,
  UNIQUE (table_name, column_name)
);
COMMENT ON TABLE pgwarden.encrypted_columns IS
  'Columns stored encrypted (model: tables.<t>.encrypted). associated_data = schema.table.column, bound into each value''s MAC. Written by apply.';

-- ------------------------------------------------------------------ pgcrypto wrappers

CREATE FUNCTION pgwarden._crypto_schema() RETURNS name
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
  WHERE e.extname = 'pgcrypto'
$$;

-- (Re)creates the thin wrappers over pgcrypto in the schema it is installed in, or stubs that say
-- how to install it. The wrappers are plain SQL functions (inlined into the views' expressions).
CREATE FUNCTION pgwarden._build_crypto() RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  s name := pgwarden._crypto_schema();
  stub text := $stub$
BEGIN
  RAISE EXCEPTION 'pgwarden: encrypted columns need the pgcrypto extension, which is not installed in database %', pg_catalog.current_database()
    USING ERRCODE = 'feature_not_supported',
          HINT = 'Run CREATE EXTENSION pgcrypto as a superuser (its files come with PostgreSQL''s contrib package, e.g. postgresql-contrib), then pgwarden apply again.';
END
$stub$;
BEGIN
  IF s IS NULL THEN
    EXECUTE pg_catalog.format('CREATE OR REPLACE FUNCTION pgwarden._hmac256(data bytea, key bytea) RETURNS bytea LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS %L', stub);
    EXECUTE pg_catalog.format('CREATE OR REPLACE FUNCTION pgwarden._aes_encrypt(data bytea, key bytea, iv bytea) RETURNS bytea LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS %L', stub);
    EXECUTE pg_catalog.format('CREATE OR REPLACE FUNCTION pgwarden._aes_decrypt(data bytea, key bytea, iv bytea) RETURNS bytea LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS %L', stub);
    EXECUTE pg_catalog.format('CREATE OR REPLACE FUNCTION pgwarden._random_bytes(n integer) RETURNS bytea LANGUAGE plpgsql VOLATILE PARALLEL SAFE AS %L', stub);
  ELSE
    EXECUTE pg_catalog.format('CREATE OR REPLACE FUNCTION pgwarden._hmac256(data bytea, key bytea) RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS %L',
      pg_catalog.format('SELECT %I.hmac(data, key, %L)', s, 'sha256'));
    EXECUTE pg_catalog.format('CREATE OR REPLACE FUNCTION pgwarden._aes_encrypt(data bytea, key bytea, iv bytea) RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS %L',
      pg_catalog.format('SELECT %I.encrypt_iv(data, key, iv, %L)', s, 'aes-cbc/pad:pkcs'));
    EXECUTE pg_catalog.format('CREATE OR REPLACE FUNCTION pgwarden._aes_decrypt(data bytea, key bytea, iv bytea) RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS %L',
      pg_catalog.format('SELECT %I.decrypt_iv(data, key, iv, %L)', s, 'aes-cbc/pad:pkcs'));
    EXECUTE pg_catalog.format('CREATE OR REPLACE FUNCTION pgwarden._random_bytes(n integer) RETURNS bytea LANGUAGE sql VOLATILE PARALLEL SAFE AS %L',
      pg_catalog.format('SELECT %I.gen_random_bytes(n)', s));
  END IF;
  RETURN s IS NOT NULL;
END
$$;

SELECT pgwarden._build_crypto();

-- Run (as the superuser applying the model) when the model declares an encrypted column: creates
-- pgcrypto when it is missing, rebuilds the wrappers, and lets the roles that evaluate the views
-- resolve pgcrypto's schema (SQL functions are inlined as the querying role).
CREATE FUNCTION pgwarden._ensure_crypto() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  s name := pgwarden._crypto_schema();
  r text;
BEGIN
  IF s IS NULL THEN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_available_extensions WHERE name = 'pgcrypto') THEN
      RAISE EXCEPTION 'pgwarden: the model encrypts columns, but this server has no pgcrypto extension'
        USING ERRCODE = 'feature_not_supported',
              HINT = 'Install PostgreSQL''s contrib package (e.g. postgresql-contrib) on the server, or remove "encrypted" from the model, then pgwarden apply again.';
    END IF;
    BEGIN
      CREATE SCHEMA IF NOT EXISTS pgwarden_crypto;
      CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA pgwarden_crypto;
      GRANT USAGE ON SCHEMA pgwarden_crypto TO PUBLIC;
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE EXCEPTION 'pgwarden: the model encrypts columns and pgcrypto is not installed; % may not create it (%)', session_user, SQLERRM
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Run CREATE EXTENSION pgcrypto as a superuser, or apply as a superuser.';
    END;
    s := pgwarden._crypto_schema();
  END IF;
  PERFORM pgwarden._build_crypto();
  -- the views call the wrappers as the person (and the definer functions as pgwarden's roles)
  IF NOT pg_catalog.has_schema_privilege('public', s, 'USAGE') THEN
    FOR r IN SELECT v.value FROM pgwarden.settings v
             WHERE v.key IN ('people_role', 'view_owner', 'table_owner', 'catalog_owner')
               AND EXISTS (SELECT FROM pg_catalog.pg_roles x WHERE x.rolname = v.value) LOOP
      EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA %I TO %I', s, r);
    END LOOP;
  END IF;
END
$$;

CREATE FUNCTION pgwarden._encrypted_columns_ready() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM pgwarden._ensure_crypto();
  RETURN NEW;
END
$$;
CREATE TRIGGER crypto_ready BEFORE INSERT OR UPDATE ON pgwarden.encrypted_columns
  FOR EACH ROW EXECUTE FUNCTION pgwarden._encrypted_columns_ready();

-- ------------------------------------------------------------------ keys of the session

CREATE FUNCTION pgwarden._key_id(k bytea) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT pg_catalog.left(pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to('pgwarden-key-id:', 'UTF8') OPERATOR(pg_catalog.||) k), 'hex'), 16)
$$;

-- The keys of pgwarden.keys, decoded, in order. Malformed entries are an error naming their
-- position (never their value).
CREATE FUNCTION pgwarden._session_keys() RETURNS bytea[]
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
DECLARE
  raw text := pg_catalog.current_setting('pgwarden.keys', true);
  parts text[];
  out bytea[] := '{}';
  k text;
  i integer := 0;
BEGIN
  IF raw IS NULL OR pg_catalog.btrim(raw) = '' THEN
    RETURN out;
  END IF;
  parts := pg_catalog.string_to_array(raw, ',');
  FOREACH k IN ARRAY parts LOOP
    i := i + 1;
    k := pg_catalog.lower(pg_catalog.btrim(k));
    CONTINUE WHEN k = '';
    IF k !~ '^[0-9a-f]{64}$' THEN
      RAISE EXCEPTION 'pgwarden: entry % of the setting pgwarden.keys is not a key (a key is 64 hexadecimal characters: 32 random bytes)', i
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'Generate one with pgwarden keys generate (or openssl rand -hex 32); separate several keys with commas.';
    END IF;
    out := out || pg_catalog.decode(k, 'hex');
  END LOOP;
  RETURN out;
END
$$;

CREATE FUNCTION pgwarden.session_key_ids() RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT COALESCE(pg_catalog.array_agg(pgwarden._key_id(x.k) ORDER BY x.o), '{}')
  FROM pg_catalog.unnest(pgwarden._session_keys()) WITH ORDINALITY AS x(k, o)
$$;

-- {key id: hex(enc subkey || mac subkey || siv subkey)} for the session's keys. The views compute
-- it once per statement: (SELECT pgwarden._keyring()).
CREATE FUNCTION pgwarden._keyring() RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT COALESCE(pg_catalog.jsonb_object_agg(pgwarden._key_id(x.k), pg_catalog.encode(
           pgwarden._hmac256(pg_catalog.convert_to('pgwarden-enc', 'UTF8'), x.k)
           || pgwarden._hmac256(pg_catalog.convert_to('pgwarden-mac', 'UTF8'), x.k)
           || pgwarden._hmac256(pg_catalog.convert_to('pgwarden-siv', 'UTF8'), x.k), 'hex')), '{}')
  FROM pg_catalog.unnest(pgwarden._session_keys()) AS x(k)
$$;

-- ------------------------------------------------------------------ values

CREATE FUNCTION pgwarden.value_key_id(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE WHEN pg_catalog.left(value, 8) OPERATOR(pg_catalog.=) 'pgwenc1:' THEN pg_catalog.substr(value, 9, 16) END
$$;

-- The MAC of a value: binds version, key id, column (associated data), IV and ciphertext.
CREATE FUNCTION pgwarden._tag(kid text, ad text, body bytea, mac_key bytea) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT pgwarden._hmac256(
    pg_catalog.convert_to('pgwenc1:' OPERATOR(pg_catalog.||) kid OPERATOR(pg_catalog.||) ':', 'UTF8')
      OPERATOR(pg_catalog.||) pg_catalog.int4send(pg_catalog.octet_length(pg_catalog.convert_to(ad, 'UTF8')))
      OPERATOR(pg_catalog.||) pg_catalog.convert_to(ad, 'UTF8')
      OPERATOR(pg_catalog.||) body,
    mac_key)
$$;

-- Raised when a stored value's MAC does not match (changed, or copied from another column).
-- Not volatile, so that the expressions around it stay inlinable; it only ever runs on bad data.
CREATE FUNCTION pgwarden._tampered(value text, ad text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RAISE EXCEPTION 'pgwarden: the encrypted value of % (key id %) fails its integrity check: it was changed, or copied from another column', ad, pgwarden.value_key_id(value)
    USING ERRCODE = 'data_corrupted',
          HINT = 'Restore the value from a backup or write it again; the audit log shows when it changed.';
END
$$;

-- p = iv || ciphertext || tag; k = enc || mac || siv subkeys.
CREATE FUNCTION pgwarden._open(value text, ad text, k bytea, p bytea) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT CASE
    WHEN pg_catalog.length(p) OPERATOR(pg_catalog.>=) 64
     AND pg_catalog.length(p) OPERATOR(pg_catalog.%) 16 OPERATOR(pg_catalog.=) 0
     AND pgwarden._tag(pg_catalog.substr(value, 9, 16), ad,
           pg_catalog.substr(p, 1, pg_catalog.length(p) OPERATOR(pg_catalog.-) 32), pg_catalog.substr(k, 33, 32))
         OPERATOR(pg_catalog.=) pg_catalog.substr(p, pg_catalog.length(p) OPERATOR(pg_catalog.-) 31, 32)
    THEN pg_catalog.convert_from(pgwarden._aes_decrypt(
           pg_catalog.substr(p, 17, pg_catalog.length(p) OPERATOR(pg_catalog.-) 48), pg_catalog.substr(k, 1, 32), pg_catalog.substr(p, 1, 16)), 'UTF8')
    ELSE pgwarden._tampered(value, ad)
  END
$$;

-- The plaintext of value, given the hex subkeys of its key (khex, NULL when the session lacks
-- it: then NULL); plaintext stored before encryption as it is. The one call per row and column
-- that does the cryptography (PL/pgSQL: its expressions inline _open, _tag and the wrappers).
CREATE FUNCTION pgwarden._open_k(value text, ad text, khex text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
BEGIN
  IF value IS NULL THEN
    RETURN NULL;
  ELSIF pg_catalog.left(value, 8) OPERATOR(pg_catalog.<>) 'pgwenc1:' THEN
    RETURN value;
  ELSIF khex IS NULL THEN
    RETURN NULL;
  END IF;
  RETURN pgwarden._open(value, ad, pg_catalog.decode(khex, 'hex'), pg_catalog.decode(pg_catalog.substr(value, 26), 'base64'));
END
$$;

-- The plaintext of value under the keyring (NULL when its key is not there; plaintext stored
-- before encryption as it is). Inlined into the views: ring (an init plan) is used once.
CREATE FUNCTION pgwarden._decrypt(value text, ad text, ring jsonb) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT pgwarden._open_k(value, ad, ring OPERATOR(pg_catalog.->>) pgwarden.value_key_id(value))
$$;

CREATE FUNCTION pgwarden.decrypt_value(value text, ad text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgwarden._decrypt(value, ad, pgwarden._keyring()) $$;

-- A value shown without its key: '****', and one NOTICE per transaction. NULL when the key is
-- there after all (the value decrypted, and a mask made it NULL). STABLE (not volatile) so that a
-- view column nobody selects is not computed; it sets a transaction-local flag.
CREATE FUNCTION pgwarden._no_key(value text, ad text, ring jsonb) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  kid text := pgwarden.value_key_id(value);
BEGIN
  IF value IS NULL OR kid IS NULL OR ring ? kid THEN
    RETURN NULL;
  END IF;
  IF COALESCE(pg_catalog.current_setting('pgwarden.key_notice', true), '') = '' THEN
    PERFORM pg_catalog.set_config('pgwarden.key_notice', kid, true);
    RAISE NOTICE 'pgwarden: % is encrypted and this session supplied no key for it (key id %): it is shown as ****', ad, kid
      USING HINT = 'Supply the key: withPerson(..., { keys }) in the application, --key or PGWARDEN_KEY for the pgwarden CLI (both set pgwarden.keys for the session).';
  END IF;
  RETURN '****';
END
$$;

-- A view column of an encrypted column at level full (shown = _decrypt(value, ad, ring)) or at a
-- mask level (shown = mask(_decrypt(value, ad, ring))): shown, or '****' and the NOTICE when the
-- key is missing. Each argument is used once, so it inlines.
CREATE FUNCTION pgwarden._shown(shown text, value text, ad text, ring jsonb) RETURNS text
LANGUAGE sql STABLE
AS $$
  SELECT CASE WHEN value IS NULL THEN NULL ELSE COALESCE(shown, pgwarden._no_key(value, ad, ring)) END
$$;

-- Seal plaintext under key kid (k = its subkeys).
CREATE FUNCTION pgwarden._seal(value text, ad text, deterministic boolean, kid text, k bytea) RETURNS text
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  pt bytea := pg_catalog.convert_to(value, 'UTF8');
  adb bytea := pg_catalog.convert_to(ad, 'UTF8');
  iv bytea;
  body bytea;
BEGIN
  IF value IS NULL THEN
    RETURN NULL;
  END IF;
  IF deterministic THEN
    iv := pg_catalog.substr(pgwarden._hmac256(pg_catalog.int4send(pg_catalog.octet_length(adb)) || adb || pt, pg_catalog.substr(k, 65, 32)), 1, 16);
  ELSE
    iv := pgwarden._random_bytes(16);
  END IF;
  body := iv || pgwarden._aes_encrypt(pt, pg_catalog.substr(k, 1, 32), iv);
  RETURN 'pgwenc1:' || kid || ':'
    || pg_catalog.translate(pg_catalog.encode(body || pgwarden._tag(kid, ad, body, pg_catalog.substr(k, 33, 32)), 'base64'), E'\n', '');
END
$$;

-- The active key id and its subkeys from the session, or the clear error. Not a definer: it runs
-- inside pgwarden's definer functions and triggers (owner only; no search_path of its own, so
-- that the per-row write path stays cheap: every name is qualified).
CREATE FUNCTION pgwarden._active_key(ad text, ring jsonb, OUT kid text, OUT k bytea)
LANGUAGE plpgsql STABLE
AS $$
BEGIN
  SELECT x.key_id INTO kid FROM pgwarden.encryption_keys x WHERE x.state = 'active';
  IF kid IS NULL THEN
    RAISE EXCEPTION 'pgwarden: cannot encrypt %: no encryption key is registered', ad
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Register one: pgwarden keys add --key <64 hex> (or PGWARDEN_KEY); keep the key outside the database.';
  END IF;
  IF NOT ring ? kid THEN
    RAISE EXCEPTION 'pgwarden: cannot write %: the column is encrypted and this session has not supplied the active key (key id %)', ad, kid
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Supply the key: withPerson(..., { keys }) in the application, --key or PGWARDEN_KEY for the pgwarden CLI (both set pgwarden.keys for the session).';
  END IF;
  k := pg_catalog.decode(ring ->> kid, 'hex');
END
$$;

CREATE FUNCTION pgwarden.encrypt_value(value text, ad text, deterministic boolean) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  a record;
BEGIN
  IF value IS NULL THEN
    RETURN NULL;
  END IF;
  SELECT * INTO a FROM pgwarden._active_key(ad, pgwarden._keyring());
  RETURN pgwarden._seal(value, ad, COALESCE(deterministic, false), a.kid, a.k);
END
$$;

-- Is value a valid ciphertext of column ad under a key of the ring? NULL when its key is not there.
CREATE FUNCTION pgwarden._valid_for(value text, ad text, ring jsonb) RETURNS boolean
LANGUAGE plpgsql STABLE
AS $$
BEGIN
  IF value !~ '^pgwenc1:[0-9a-f]{16}:[A-Za-z0-9+/=]+$' THEN
    RETURN false;
  END IF;
  IF NOT ring ? pg_catalog.substr(value, 9, 16) THEN
    RETURN NULL;
  END IF;
  PERFORM pgwarden._decrypt(value, ad, ring);
  RETURN true;
EXCEPTION WHEN data_corrupted OR invalid_parameter_value OR external_routine_invocation_exception THEN
  RETURN false;
END
$$;

-- The value to store in an encrypted column for a write: called by the generated definer trigger
-- functions "zz_pgwarden_encrypt" (owner only).
CREATE FUNCTION pgwarden._encrypt_column(value text, ad text, deterministic boolean) RETURNS text
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  ring jsonb;
  ok boolean;
  a record;
BEGIN
  IF value IS NULL THEN
    RETURN NULL;
  END IF;
  ring := pgwarden._keyring();
  IF pg_catalog.left(value, 8) = 'pgwenc1:' THEN
    ok := pgwarden._valid_for(value, ad, ring);
    IF ok IS NULL THEN
      RAISE EXCEPTION 'pgwarden: cannot write %: the new value is encrypted under key id %, which this session has not supplied', ad, pgwarden.value_key_id(value)
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'Supply the key: withPerson(..., { keys }) in the application, --key or PGWARDEN_KEY for the pgwarden CLI.';
    ELSIF NOT ok THEN
      RAISE EXCEPTION 'pgwarden: cannot write %: the new value looks encrypted (pgwenc1:) but is not a valid ciphertext of this column (changed, or copied from another column)', ad
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'Write the plaintext: pgwarden encrypts it.';
    END IF;
    RETURN value;
  END IF;
  SELECT * INTO a FROM pgwarden._active_key(ad, ring);
  RETURN pgwarden._seal(value, ad, deterministic, a.kid, a.k);
END
$$;

-- ------------------------------------------------------------------ keys: add, rotate, retire

CREATE FUNCTION pgwarden.add_key() RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  keys bytea[] := pgwarden._session_keys();
  kid text;
  previous text;
BEGIN
  IF pg_catalog.cardinality(keys) = 0 THEN
    RAISE EXCEPTION 'pgwarden: no key to add: the session supplied none in pgwarden.keys'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'pgwarden keys add --key <64 hex> (or PGWARDEN_KEY); the first key given becomes the active one.';
  END IF;
  kid := pgwarden._key_id(keys[1]);
  PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('pgwarden.encryption_keys', 0));
  SELECT x.key_id INTO previous FROM pgwarden.encryption_keys x WHERE x.state = 'active';
  IF previous = kid THEN
    RETURN kid;
  END IF;
  UPDATE pgwarden.encryption_keys x SET state = 'retiring' WHERE x.state = 'active';
  INSERT INTO pgwarden.encryption_keys AS x (key_id, state, added_by) VALUES (kid, 'active', pgwarden.caller())
  ON CONFLICT (key_id) DO UPDATE SET state = 'active', retired_at = NULL;
  RETURN kid;
END
$$;

-- Re-encrypt: plaintext of value (under any key of the ring) sealed under the active key.
CREATE FUNCTION pgwarden._reencrypt(value text, ad text, deterministic boolean, ring jsonb, kid text, k bytea) RETURNS text
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  pt text;
BEGIN
  IF value IS NULL THEN
    RETURN NULL;
  END IF;
  pt := pgwarden._decrypt(value, ad, ring);
  IF pt IS NULL THEN
    RAISE EXCEPTION 'pgwarden: cannot re-encrypt %: its key id % is not supplied', ad, pgwarden.value_key_id(value)
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  RETURN pgwarden._seal(pt, ad, deterministic, kid, k);
END
$$;

-- Internal: the encrypted columns of a model table.
CREATE FUNCTION pgwarden._encrypted_of(tbl text) RETURNS SETOF pgwarden.encrypted_columns
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM pgwarden.encrypted_columns c WHERE c.table_name = tbl ORDER BY c.column_name $$;

CREATE FUNCTION pgwarden.rotate_batch(tbl text, batch integer) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t pgwarden.tables := pgwarden._table(tbl);
  c pgwarden.encrypted_columns;
  ring jsonb := pgwarden._keyring();
  a record;
  pending text[] := '{}';
  sets text[] := '{}';
  missing text;
  n integer;
BEGIN
  IF batch IS NULL OR batch < 1 THEN
    RAISE EXCEPTION 'pgwarden: rotate_batch needs a batch size of at least 1' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT EXISTS (SELECT FROM pgwarden._encrypted_of(tbl)) THEN
    RAISE EXCEPTION 'pgwarden: table "%" has no encrypted columns', tbl USING ERRCODE = 'invalid_parameter_value',
      HINT = 'Mark columns with encrypted: [...] in the model and apply it.';
  END IF;
  SELECT * INTO a FROM pgwarden._active_key(pg_catalog.format('%s.%s', t.schema_name, t.table_name), ring);
  -- every key the remaining values use must be supplied too: nothing changes otherwise
  FOR c IN SELECT * FROM pgwarden._encrypted_of(tbl) LOOP
    EXECUTE pg_catalog.format(
      'SELECT pg_catalog.string_agg(pg_catalog.format(%L, k, n), %L ORDER BY k) FROM (SELECT pgwarden.value_key_id(%I) AS k, count(*) AS n FROM %I.%I WHERE pgwarden.value_key_id(%I) IS NOT NULL AND NOT ($1 ? pgwarden.value_key_id(%I)) GROUP BY 1) s',
      '%s (%s values)', ', ', c.column_name, t.schema_name, t.table_name, c.column_name, c.column_name)
      INTO missing USING ring;
    IF missing IS NOT NULL THEN
      RAISE EXCEPTION 'pgwarden: cannot rotate %.%: values are encrypted under key id(s) the session has not supplied: %', tbl, c.column_name, missing
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'Supply the new key first and the old key(s) after it: --key NEW,OLD (or PGWARDEN_KEY=NEW,OLD).';
    END IF;
    pending := pending || pg_catalog.format('(%I IS NOT NULL AND pgwarden.value_key_id(%I) IS DISTINCT FROM $2)', c.column_name, c.column_name);
    sets := sets || pg_catalog.format('%I = CASE WHEN %I IS NOT NULL AND pgwarden.value_key_id(%I) IS DISTINCT FROM $2 THEN pgwarden._reencrypt(%I, %L, %L, $1, $2, $3) ELSE %I END',
      c.column_name, c.column_name, c.column_name, c.column_name, c.associated_data, c.deterministic, c.column_name);
  END LOOP;
  EXECUTE pg_catalog.format('UPDATE %I.%I SET %s WHERE %I IN (SELECT %I FROM %I.%I WHERE %s LIMIT %s FOR UPDATE)',
    t.schema_name, t.table_name, pg_catalog.array_to_string(sets, ', '), t.key_column, t.key_column, t.schema_name, t.table_name,
    pg_catalog.array_to_string(pending, ' OR '), batch)
    USING ring, a.kid, a.k;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;

CREATE FUNCTION pgwarden.retire_key(key_id text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  k pgwarden.encryption_keys;
  c record;
  n bigint;
  uses text[] := '{}';
BEGIN
  SELECT * INTO k FROM pgwarden.encryption_keys x WHERE x.key_id = retire_key.key_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'pgwarden: key id % is not registered', retire_key.key_id USING ERRCODE = 'no_data_found',
      HINT = 'pgwarden keys status lists the registered key ids.';
  END IF;
  IF k.state = 'active' THEN
    RAISE EXCEPTION 'pgwarden: key id % is the active key and cannot be retired', retire_key.key_id
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Add a new key (pgwarden keys add), rotate (pgwarden keys rotate), then retire this one.';
  END IF;
  FOR c IN SELECT e.*, t.schema_name, t.table_name AS base FROM pgwarden.encrypted_columns e JOIN pgwarden.tables t ON t.name = e.table_name
           ORDER BY e.table_name, e.column_name LOOP
    EXECUTE pg_catalog.format('SELECT count(*) FROM %I.%I WHERE pgwarden.value_key_id(%I) = $1', c.schema_name, c.base, c.column_name)
      INTO n USING retire_key.key_id;
    IF n > 0 THEN
      uses := uses || pg_catalog.format('%s.%s: %s', c.table_name, c.column_name, n);
    END IF;
  END LOOP;
  IF pg_catalog.cardinality(uses) > 0 THEN
    RAISE EXCEPTION 'pgwarden: key id % still encrypts values (%)', retire_key.key_id, pg_catalog.array_to_string(uses, ', ')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Rotate them to the active key first: pgwarden keys rotate (with the old and the new key).';
  END IF;
  UPDATE pgwarden.encryption_keys x SET state = 'retired', retired_at = pg_catalog.now() WHERE x.key_id = retire_key.key_id;
END
$$;

CREATE FUNCTION pgwarden.encryption_status()
RETURNS TABLE (table_name text, column_name text, key_id text, state text, "values" bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  c record;
BEGIN
  FOR c IN SELECT e.table_name AS model_table, e.column_name AS col, t.schema_name, t.table_name AS base
           FROM pgwarden.encrypted_columns e JOIN pgwarden.tables t ON t.name = e.table_name
           ORDER BY e.table_name, e.column_name LOOP
    RETURN QUERY EXECUTE pg_catalog.format(
      'SELECT %L::text, %L::text, s.k, x.state, s.n FROM (SELECT pgwarden.value_key_id(%I) AS k, count(*) AS n FROM %I.%I WHERE %I IS NOT NULL GROUP BY 1) s
       LEFT JOIN pgwarden.encryption_keys x ON x.key_id = s.k ORDER BY s.k NULLS FIRST',
      c.model_table, c.col, c.col, c.schema_name, c.base, c.col);
  END LOOP;
END
$$;

-- ------------------------------------------------------------------ reveal of encrypted cells

-- Why a cell of an encrypted column cannot be shown in this session (NULL when it can).
CREATE FUNCTION pgwarden._cell_key_missing(t pgwarden.tables, col text, row_key text) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  e pgwarden.encrypted_columns;
  v text;
BEGIN
  SELECT * INTO e FROM pgwarden.encrypted_columns x WHERE x.table_name = t.name AND x.column_name = col;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  EXECUTE pg_catalog.format('SELECT %I::text FROM %I.%I WHERE %I = $1::%s', col, t.schema_name, t.table_name, t.key_column, t.key_type)
    INTO v USING row_key;
  IF pgwarden.value_key_id(v) IS NULL OR pgwarden._keyring() ? pgwarden.value_key_id(v) THEN
    RETURN NULL;
  END IF;
  RETURN pg_catalog.format('%s is encrypted and this session supplied no key for it (key id %s): the value is shown masked (****); supply the key with withPerson(..., { keys }) in the application, --key or PGWARDEN_KEY for the pgwarden CLI',
    e.associated_data, pgwarden.value_key_id(v));
END
$$;

-- As in 005, plus: an allowed reveal of an encrypted cell whose key the session lacks says so
-- ("notice", "masked": true).
CREATE OR REPLACE FUNCTION pgwarden.reveal(tbl text, row_key text, col text) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who text := pgwarden._require_caller();
  caller name := pgwarden.caller();
  t pgwarden.tables := pgwarden._table(tbl);
  r pgwarden.reveal_rules;
  used integer;
  visible boolean;
  related boolean := false;
  h text;
  why text;
  code text := 'denied';
  new_id bigint;
  notice text;
BEGIN
  SELECT * INTO r FROM pgwarden.reveal_rules x WHERE x.table_name = tbl AND x.column_name = col;
  IF NOT FOUND THEN
    why := pg_catalog.format('no reveal rule of the model covers %s.%s', tbl, col);
  ELSE
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('pgwarden.reveal:' || who, 0));
    SELECT count(*) INTO used FROM pgwarden.reveals v WHERE v.person = who AND v.table_name = tbl AND v.granted AND v.at >= pgwarden._today();
    IF used >= r.per_day THEN
      why := pg_catalog.format('%s has revealed %s of %s cells allowed today (UTC)', who, used, r.per_day);
      code := 'quota';
    ELSE
      BEGIN
        EXECUTE pg_catalog.format('SELECT EXISTS (SELECT FROM %I.%I v WHERE v.%I = $1::%s)',
            pgwarden._setting('exposed_schema'), t.name, t.key_column, t.key_type) INTO visible USING row_key;
      EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
        visible := false;
      END;
      IF visible THEN
        FOREACH h IN ARRAY r.helpers LOOP
          EXECUTE pg_catalog.format('SELECT $1::%s = ANY (pgwarden.%I($2))', t.key_type, h) INTO related USING row_key, caller;
          EXIT WHEN related;
        END LOOP;
      END IF;
      IF NOT COALESCE(related, false) THEN
        why := pg_catalog.format('reveal of %s.%s needs the row to be %s to %s (rule reveal.columns.%s)',
          tbl, col, pg_catalog.array_to_string(r.relations, ' or '), who, col);
      END IF;
    END IF;
  END IF;
  INSERT INTO pgwarden.reveals (person, table_name, row_key, column_name, granted, reason)
  VALUES (who, tbl, row_key, col, why IS NULL, why) RETURNING reveals.id INTO new_id;
  IF why IS NULL THEN
    PERFORM pgwarden_audit.record_event('reveal', t.schema_name || '.' || t.table_name, row_key, pg_catalog.jsonb_build_object('column', col, 'reveal', new_id));
    notice := pgwarden._cell_key_missing(t, col, row_key);
    IF notice IS NOT NULL THEN
      RETURN pg_catalog.jsonb_build_object('ok', true, 'reveal', new_id, 'masked', true, 'notice', notice);
    END IF;
    RETURN pg_catalog.jsonb_build_object('ok', true, 'reveal', new_id);
  END IF;
  PERFORM pgwarden_audit.record_event('denied', t.schema_name || '.' || t.table_name, row_key,
    pg_catalog.jsonb_build_object('action', 'reveal', 'column', col, 'reason', why, 'code', code));
  PERFORM pgwarden._alert(CASE code WHEN 'quota' THEN 'reveal_quota' ELSE 'reveal_refused' END, who, tbl,
    pg_catalog.jsonb_build_object('row_key', row_key, 'column', col, 'reveal', new_id));
  RETURN pg_catalog.jsonb_build_object('ok', false, 'reason', why, 'code', code, 'reveal', new_id);
END
$$;

-- As in 005, plus: an encrypted cell is decrypted with the session's key; without it the masked
-- value '****' is returned with a NOTICE saying why.
CREATE OR REPLACE FUNCTION pgwarden.revealed(reveal_id bigint) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  who text := pgwarden._require_caller();
  r record;
  t pgwarden.tables;
  v text;
  e pgwarden.encrypted_columns;
  notice text;
BEGIN
  SELECT x.*, x.xmin AS row_xmin INTO r FROM pgwarden.reveals x WHERE x.id = reveal_id FOR UPDATE;
  IF NOT FOUND OR r.person <> who OR NOT r.granted THEN
    RAISE EXCEPTION 'permission denied: reveal % is not a granted reveal of %', reveal_id, who
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF NOT pgwarden._committed_before(r.row_xmin) THEN
    RAISE EXCEPTION 'reveal % is not committed yet: commit the transaction that asked for it, then read it',
      reveal_id USING ERRCODE = 'object_not_in_prerequisite_state',
      HINT = 'The record of a reveal must be committed before the cell is returned.';
  END IF;
  IF r.at < pg_catalog.now() - interval '10 minutes' THEN
    RAISE EXCEPTION 'reveal % has expired: ask again', reveal_id USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  t := pgwarden._table(r.table_name);
  EXECUTE pg_catalog.format('SELECT %I::text FROM %I.%I WHERE %I = $1::%s', r.column_name, t.schema_name, t.table_name, t.key_column, t.key_type)
    INTO v USING r.row_key;
  UPDATE pgwarden.reveals x SET read_at = COALESCE(x.read_at, pg_catalog.now()) WHERE x.id = reveal_id;
  SELECT * INTO e FROM pgwarden.encrypted_columns x WHERE x.table_name = r.table_name AND x.column_name = r.column_name;
  IF FOUND AND v IS NOT NULL THEN
    notice := pgwarden._cell_key_missing(t, r.column_name, r.row_key);
    IF notice IS NOT NULL THEN
      RAISE NOTICE 'pgwarden: %', notice;
      RETURN '****';
    END IF;
    RETURN pgwarden.decrypt_value(v, e.associated_data);
  END IF;
  RETURN v;
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA pgwarden FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgwarden FROM PUBLIC;
