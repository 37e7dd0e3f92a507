/**
 * Field encryption (sql/015_encryption.sql has the contract): the model's `encrypted` columns are
 * stored as 'pgwenc1:<key id>:<base64>' in the base table, encrypted by a BEFORE row trigger that
 * fires after every other BEFORE trigger, and decrypted only inside the masking view (levels full
 * and mask; hidden stays NULL without decrypting), reveal and export.
 *
 *   encrypted: ['id_number']   cells: { id_number: { own: 'mask:id_number', default: 'hidden' } }
 *   ->  CASE WHEN <own> THEN "pgwarden"."_shown"("pgwarden"."mask_id_number"(
 *            "pgwarden"."_decrypt"("customers"."id_number", 'crm.customers.id_number', (SELECT "pgwarden"."_keyring"()))),
 *            "customers"."id_number", 'crm.customers.id_number', (SELECT "pgwarden"."_keyring"()))
 *       ELSE NULL END
 * Every argument of _shown and _decrypt is used once, so both inline (an argument holding a
 * sub-select may not be duplicated); per row the cryptography is one call of pgwarden._open_k.
 *
 * The keyring (subkeys of the keys the session supplied in pgwarden.keys) is an init plan: once
 * per statement. Without the key a value shows as '****' with one NOTICE per transaction.
 */
import type {
  CatalogObject,
  FunctionObject,
  GrantObject,
  TriggerObject,
} from '../catalog/objects.js';
import type { Model, TableModel } from '../model/types.js';
import { ident, join, literal, qualified, type Sql, sql, unsafeRaw } from '../sql/fragment.js';
import type { RoleNames } from './index.js';
import { col } from './predicates.js';

const pw = (fn: string) => qualified('pgwarden', fn);

/** The associated data bound into each value's MAC: '<protected schema>.<table>.<column>'. */
export function encryptionAd(model: Model, table: TableModel, column: string): string {
  return `${model.schemas.protected}.${table.table}.${column}`;
}

export function isEncrypted(table: TableModel, column: string): boolean {
  return table.encrypted.some((e) => e.column === column);
}

const RING = sql`(SELECT ${pw('_keyring')}())`;

/** The plaintext of an encrypted column inside the view (NULL without the key). */
export function decrypted(model: Model, table: TableModel, column: string): Sql {
  return sql`${pw('_decrypt')}(${col(table, column)}, ${literal(encryptionAd(model, table, column))}, ${RING})`;
}

/** An encrypted column at level full: the plaintext, or '****' and a NOTICE without the key. */
export function shownFull(model: Model, table: TableModel, column: string): Sql {
  return shown(model, table, column, decrypted(model, table, column));
}

/** An encrypted column at a mask level: `masked` is the mask over decrypted(...). */
export function shownMasked(model: Model, table: TableModel, column: string, masked: Sql): Sql {
  return shown(model, table, column, masked);
}

function shown(model: Model, table: TableModel, column: string, value: Sql): Sql {
  return sql`${pw('_shown')}(${value}, ${col(table, column)}, ${literal(encryptionAd(model, table, column))}, ${RING})`;
}

export function encryptFunctionName(table: TableModel): string {
  const name = `_encrypt_${table.name}`;
  if (Buffer.byteLength(name, 'utf8') <= 63) return name;
  let h = 0;
  for (const ch of table.name) h = (Math.imul(h, 31) + (ch.codePointAt(0) ?? 0)) >>> 0;
  return `_encrypt_${h.toString(16).padStart(8, '0')}`;
}

/** The trigger that encrypts: named so that it fires after pgwarden's other BEFORE triggers. */
export const ENCRYPT_TRIGGER = 'zz_pgwarden_encrypt';

/** Functions of sql/015 the masking views evaluate as the querying person (inlined SQL). */
const VIEW_FUNCTIONS: readonly { name: string; args: string[] }[] = [
  { name: '_keyring', args: [] },
  { name: '_session_keys', args: [] },
  { name: '_key_id', args: ['bytea'] },
  { name: '_hmac256', args: ['bytea', 'bytea'] },
  { name: '_aes_decrypt', args: ['bytea', 'bytea', 'bytea'] },
  { name: '_tag', args: ['text', 'text', 'bytea', 'bytea'] },
  { name: '_tampered', args: ['text', 'text'] },
  { name: '_open', args: ['text', 'text', 'bytea', 'bytea'] },
  { name: '_open_k', args: ['text', 'text', 'text'] },
  { name: '_decrypt', args: ['text', 'text', 'jsonb'] },
  { name: '_no_key', args: ['text', 'text', 'jsonb'] },
  { name: '_shown', args: ['text', 'text', 'text', 'jsonb'] },
  { name: 'value_key_id', args: ['text'] },
  { name: 'session_key_ids', args: [] },
];

function grant(target: GrantObject['target'], privileges: string[], grantee: string): GrantObject {
  return { kind: 'grant', target, privileges, grantee };
}

const fnTarget = (name: string, args: string[]): GrantObject['target'] => ({
  kind: 'function',
  schema: 'pgwarden',
  name,
  args,
});

/** Grants for a model that encrypts any column (none otherwise). */
export function encryptionGrants(model: Model, roles: RoleNames): CatalogObject[] {
  if (!model.tables.some((t) => t.encrypted.length > 0)) return [];
  const out: CatalogObject[] = [];
  for (const f of VIEW_FUNCTIONS) {
    out.push(
      grant(fnTarget(f.name, f.args), ['EXECUTE'], roles.people),
      grant(fnTarget(f.name, f.args), ['EXECUTE'], roles.viewOwner),
    );
  }
  out.push(
    grant(fnTarget('decrypt_value', ['text', 'text']), ['EXECUTE'], roles.viewOwner),
    grant(fnTarget('decrypt_value', ['text', 'text']), ['EXECUTE'], roles.tableOwner),
    grant(fnTarget('encrypt_value', ['text', 'text', 'boolean']), ['EXECUTE'], roles.tableOwner),
  );
  for (const name of ['add_key', 'encryption_status', 'session_key_ids', 'value_key_id']) {
    const args = name === 'value_key_id' ? ['text'] : [];
    out.push(grant(fnTarget(name, args), ['EXECUTE'], roles.tableOwner));
  }
  out.push(
    grant(fnTarget('rotate_batch', ['text', 'integer']), ['EXECUTE'], roles.tableOwner),
    grant(fnTarget('retire_key', ['text']), ['EXECUTE'], roles.tableOwner),
  );
  return out;
}

/** Catalog rows, the encrypting trigger function and its trigger, for one table. */
export function encryptionObjects(
  model: Model,
  table: TableModel,
  roles: RoleNames,
): CatalogObject[] {
  if (table.encrypted.length === 0) return [];
  const out: CatalogObject[] = [];
  for (const e of table.encrypted) {
    out.push({
      kind: 'catalog_row',
      table: 'encrypted_columns',
      keyColumn: 'key',
      key: `${table.name}.${e.column}`,
      values: {
        table_name: table.name,
        column_name: e.column,
        deterministic: e.deterministic,
        associated_data: encryptionAd(model, table, e.column),
      },
    });
  }
  const steps = table.encrypted.map((e) => {
    const C = ident(e.column);
    const call = sql`${pw('_encrypt_column')}(NEW.${C}, ${literal(encryptionAd(model, table, e.column))}, ${unsafeRaw(e.deterministic ? 'true' : 'false')})`;
    return sql`  IF TG_OP = 'INSERT' OR NEW.${C} IS DISTINCT FROM OLD.${C} THEN
    NEW.${C} := ${call};
  END IF;`;
  });
  const fn: FunctionObject = {
    kind: 'function',
    schema: 'pgwarden',
    name: encryptFunctionName(table),
    args: [],
    returns: 'trigger',
    language: 'plpgsql',
    volatility: 'volatile',
    securityDefiner: true,
    owner: roles.catalogOwner,
    body: `\nBEGIN\n${join(steps, '\n').text}\n  RETURN NEW;\nEND\n`,
    comment: `pgwarden: encrypts ${table.encrypted.map((e) => e.column).join(', ')} of ${model.schemas.protected}.${table.table} before they are stored (an unchanged value is left as it is)`,
  };
  const trigger: TriggerObject = {
    kind: 'trigger',
    schema: model.schemas.protected,
    table: table.table,
    name: ENCRYPT_TRIGGER,
    timing: 'before',
    level: 'row',
    events: ['insert', 'update'],
    function: { schema: 'pgwarden', name: fn.name },
    always: true,
  };
  out.push(fn, trigger);
  return out;
}
