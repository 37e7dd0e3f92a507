/**
 * Fixed field-encryption keys for the tests (never use these anywhere else). A key is 32 bytes as
 * 64 hex characters; sessions supply keys in the setting `pgwarden.keys` (sql/015_encryption.sql).
 * The test database helpers pass TEST_KEY as a connection startup parameter by default, so the
 * reference CRM's encrypted id_number reads and writes as before; pass `keys: null` for a
 * connection without a key.
 */
import { createHash } from 'node:crypto';

export const TEST_KEY = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';
/** A second key, for rotation tests. */
export const TEST_KEY_2 = 'ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100';

/** The key id pgwarden computes for a key (sql/015: sha256('pgwarden-key-id:' || key), 16 hex). */
export function keyId(key: string): string {
  return createHash('sha256')
    .update(Buffer.concat([Buffer.from('pgwarden-key-id:', 'utf8'), Buffer.from(key, 'hex')]))
    .digest('hex')
    .slice(0, 16);
}

/** postgres.js options that send the keys as the startup parameter `pgwarden.keys`. */
export function keyConnection(keys: string | null | undefined): {
  connection?: Record<string, string>;
} {
  const k = keys === undefined ? TEST_KEY : keys;
  return k ? { connection: { 'pgwarden.keys': k } } : {};
}
