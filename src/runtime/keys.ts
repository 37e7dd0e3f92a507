/**
 * Encryption keys for encrypted columns (sql/015_encryption.sql). A key is 32 random bytes
 * written as 64 hex characters; the database never stores it. The application supplies it per
 * transaction (withPerson's `keys` option) or per connection (a startup parameter, see
 * `keyConnectionOptions`), from a provider:
 *
 *   envKey()                      // $PGWARDEN_KEY (one key, or several comma-separated)
 *   fileKey('/run/secrets/pgw')   // a file holding the key(s); refused when world-readable
 *   kmsKey(() => kms.decrypt(..)) // any async callback (cached for ttlMs, default 5 minutes)
 *   'env:NAME' | 'file:PATH' | '<64 hex>'   // the same as a string reference
 *   [newKey, oldKey]              // several: during a rotation, the new key first
 *
 *   await withPerson(sql, 'alice', (tx) => tx`SELECT id_number FROM crm_api.customers`,
 *     { keys: envKey() });
 *   -- BEGIN; SELECT set_config('role', $1, true); SELECT set_config('pgwarden.keys', $1, true); ...
 *
 * No error of this module contains a key: they name the provider (`environment variable
 * PGWARDEN_KEY`, `file /run/secrets/pgw`) and what is wrong with its content.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { PgwardenError } from '../errors.js';

/** The custom setting the database reads the session's keys from. */
export const KEYS_SETTING = 'pgwarden.keys';

/** The environment variable the CLI reads keys from when no --key is given. */
export const KEY_ENV = 'PGWARDEN_KEY';

type Loaded = string | readonly string[];

/** Where keys come from. `source` describes it for messages and never contains a key. */
export interface KeyProvider {
  readonly kind: 'env' | 'file' | 'kms' | 'literal';
  readonly source: string;
  /** Synchronous for env, file and literal; a KMS callback may return a promise. */
  load(): Loaded | Promise<Loaded>;
}

/** A provider, a string reference (`env:NAME`, `file:PATH`, hex keys), or a list of them. */
export type KeySource = string | KeyProvider;
export type KeySpec = KeySource | readonly KeySource[];

const HEX_KEY = /^[0-9a-f]{64}$/;
const GENERATE_HINT = 'Generate a key with `pgwarden keys generate` (64 hex characters, 32 bytes).';

/** A new random key: 32 bytes from the system's CSPRNG, as 64 lowercase hex characters. */
export function generateKey(): string {
  return randomBytes(32).toString('hex');
}

/**
 * The key's public id, as the database computes it:
 * left(encode(sha256('pgwarden-key-id:' || key bytes), 'hex'), 16).
 */
export function keyId(key: string): string {
  const k = normalizeKey(key, 'the key');
  return createHash('sha256')
    .update(Buffer.from('pgwarden-key-id:', 'utf8'))
    .update(Buffer.from(k, 'hex'))
    .digest('hex')
    .slice(0, 16);
}

/** Checks one key's format; the error says what is wrong without showing the value. */
function normalizeKey(raw: string, source: string): string {
  const k = raw.trim().toLowerCase();
  if (HEX_KEY.test(k)) return k;
  const what =
    k.length === 0
      ? 'is empty'
      : /^[0-9a-f]*$/.test(k)
        ? `has ${k.length} hex characters, not 64`
        : `has ${k.length} characters, some of them not hex (0-9, a-f)`;
  throw new PgwardenError(
    'invalid_key',
    `the key from ${source} is not a pgwarden key: it ${what}`,
    `${GENERATE_HINT} Several keys are separated by commas. The value itself is not shown.`,
  );
}

/** Splits a text holding keys: commas, whitespace or newlines; `#` starts a comment line. */
function splitKeys(text: string): string[] {
  return text
    .split('\n')
    .filter((line) => !line.trim().startsWith('#'))
    .join(',')
    .split(/[\s,]+/)
    .filter(Boolean);
}

/** Keys from an environment variable: one, or several separated by commas (new key first). */
export function envKey(name: string = KEY_ENV): KeyProvider {
  return {
    kind: 'env',
    source: `environment variable ${name}`,
    load() {
      const v = process.env[name];
      if (v === undefined || v.trim() === '')
        throw new PgwardenError(
          'key_missing',
          `environment variable ${name} is not set (or empty): no encryption key`,
          `Set ${name} to the key (64 hex characters; several separated by commas), or pass another key reference.`,
        );
      return splitKeys(v);
    },
  };
}

/**
 * Keys from a file (one or several, separated by newlines or commas; `#` comment lines).
 * A file readable by every user of the machine is refused: chmod 600 (or 640 for a group).
 */
export function fileKey(path: string): KeyProvider {
  return {
    kind: 'file',
    source: `file ${path}`,
    load() {
      let text: string;
      try {
        const st = statSync(path);
        if (process.platform !== 'win32' && (st.mode & 0o004) !== 0)
          throw new PgwardenError(
            'key_file_readable',
            `key file ${path} is readable by every user of this machine (mode ${(st.mode & 0o777).toString(8)})`,
            `Restrict it: chmod 600 ${path} (or 640 to share it with a group), then run again.`,
          );
        text = readFileSync(path, 'utf8');
      } catch (e) {
        if (e instanceof PgwardenError) throw e;
        const code = (e as { code?: string }).code;
        throw new PgwardenError(
          'key_file_unreadable',
          `key file ${path} cannot be read${code ? ` (${code})` : ''}`,
          'Check the path and that this user may read it.',
          e,
        );
      }
      const keys = splitKeys(text);
      if (keys.length === 0)
        throw new PgwardenError('invalid_key', `key file ${path} holds no key`, GENERATE_HINT);
      return keys;
    },
  };
}

/**
 * Keys from a callback, typically a KMS or secret manager (unwrap a data key, read a secret).
 * The result is kept for `ttlMs` (default 5 minutes; 0 asks every time), since withPerson
 * resolves its keys on every transaction; a failed call is not kept.
 */
export function kmsKey(
  fetch: () => Loaded | Promise<Loaded>,
  options: { ttlMs?: number; label?: string } = {},
): KeyProvider {
  const ttl = options.ttlMs ?? 300_000;
  let cached: { at: number; value: Promise<Loaded> } | undefined;
  return {
    kind: 'kms',
    source: options.label ?? 'the key callback (kmsKey)',
    load() {
      if (cached && ttl > 0 && Date.now() - cached.at < ttl) return cached.value;
      const value = Promise.resolve().then(fetch);
      cached = { at: Date.now(), value };
      value.catch(() => {
        if (cached?.value === value) cached = undefined;
      });
      return value;
    },
  };
}

/**
 * A string reference: `env:NAME`, `file:PATH`, or the key itself (several separated by
 * commas). A key written on a command line ends up in the shell's history: prefer env: or file:.
 */
export function parseKeyRef(ref: string): KeyProvider {
  if (ref.startsWith('env:')) {
    const name = ref.slice(4);
    if (!name)
      throw new PgwardenError('invalid_key_ref', 'key reference env: names no variable', REF_HINT);
    return envKey(name);
  }
  if (ref.startsWith('file:')) {
    const path = ref.slice(5);
    if (!path)
      throw new PgwardenError('invalid_key_ref', 'key reference file: names no file', REF_HINT);
    return fileKey(path);
  }
  return {
    kind: 'literal',
    source: 'a key given literally',
    load: () => splitKeys(ref),
  };
}

const REF_HINT =
  'Use env:NAME (an environment variable), file:PATH (a file, chmod 600) or the 64-hex key itself.';

function providers(spec: KeySpec): KeyProvider[] {
  const list: readonly KeySource[] = typeof spec === 'string' || !isList(spec) ? [spec] : spec;
  return list.map((s) => (typeof s === 'string' ? parseKeyRef(s) : s));
}

function isList(spec: KeySpec): spec is readonly KeySource[] {
  return Array.isArray(spec);
}

function collect(out: string[], p: KeyProvider, loaded: Loaded): void {
  const items = typeof loaded === 'string' ? splitKeys(loaded) : loaded;
  if (!Array.isArray(items) && typeof loaded !== 'string')
    throw new PgwardenError(
      'invalid_key',
      `${p.source} returned neither a string nor a list of strings`,
      'Return the key as 64 hex characters (or a list of them, new key first).',
    );
  for (const raw of items) {
    if (typeof raw !== 'string')
      throw new PgwardenError(
        'invalid_key',
        `${p.source} returned a key that is not a string`,
        'Return the key as 64 hex characters.',
      );
    const k = normalizeKey(raw, p.source);
    if (!out.includes(k)) out.push(k);
  }
}

/**
 * The keys of a spec, validated, lowercase, without duplicates, in the order given (the
 * first is the one new values are encrypted with, once registered). Never logs a key.
 */
export async function resolveKeys(spec: KeySpec): Promise<string[]> {
  const out: string[] = [];
  for (const p of providers(spec)) collect(out, p, await p.load());
  return out;
}

/** resolveKeys for env, file and literal providers only (the CLI); a KMS callback is refused. */
export function resolveKeysSync(spec: KeySpec): string[] {
  const out: string[] = [];
  for (const p of providers(spec)) {
    const loaded = p.load();
    if (loaded instanceof Promise)
      throw new PgwardenError(
        'invalid_key',
        `${p.source} is asynchronous and cannot be used here`,
        'Resolve it first (await resolveKeys(spec)) and pass the keys.',
      );
    collect(out, p, loaded);
  }
  return out;
}

/**
 * Connection options that give every session of a pool the keys as a startup parameter (never
 * written to the server log, unlike statements and their bind parameters):
 *
 *   const sql = postgres(url, { connection: { ...keyConnectionOptions(await resolveKeys(envKey())) } });
 */
export function keyConnectionOptions(keys: readonly string[]): Record<string, string> {
  return keys.length ? { [KEYS_SETTING]: keys.join(',') } : {};
}

/**
 * Sets the keys for the current transaction only (set_config(..., true), a bind parameter).
 * Used by withPerson and withPersonDrizzle. An error of this statement is stripped of its
 * parameters, so that logging the error object does not log the key.
 */
export async function setTransactionKeys(
  run: (value: string) => Promise<unknown>,
  keys: readonly string[],
): Promise<void> {
  const value = keys.join(',');
  try {
    await run(value);
  } catch (e) {
    throw redactKeys(e, value);
  }
}

/** Removes `value` (joined keys) from an error's message, stack, cause and parameters. */
function redactKeys(e: unknown, value: string): unknown {
  if (!e || typeof e !== 'object' || value === '') return e;
  const scrub = (s: unknown) => (typeof s === 'string' ? s.split(value).join('[redacted]') : s);
  const err = e as Record<string, unknown>;
  for (const prop of ['message', 'stack'])
    if (typeof err[prop] === 'string')
      Object.defineProperty(e, prop, {
        value: scrub(err[prop]),
        writable: true,
        configurable: true,
      });
  for (const prop of ['parameters', 'params', 'args'])
    if (prop in err)
      Object.defineProperty(e, prop, { value: '[redacted]', writable: true, configurable: true });
  if (err.cause && err.cause !== e) redactKeys(err.cause, value);
  return e;
}
