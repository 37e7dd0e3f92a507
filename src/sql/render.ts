/**
 * One renderer per catalog object kind. The registry's type forces every kind to be handled.
 * Renderers only build text; they never touch a database.
 */
import type {
  CatalogObject,
  CatalogValue,
  GrantTarget,
  ObjectKind,
  ObjectOf,
} from '../catalog/objects.js';
import {
  dollar,
  ident,
  int,
  join,
  literal,
  qualified,
  type Sql,
  sql,
  textArray,
  unsafeRaw,
} from './fragment.js';

export type Effect = 'widens' | 'narrows' | 'neutral' | 'destructive';

export interface Renderer<K extends ObjectKind> {
  /** statements that create the object, idempotently where Postgres allows it */
  create(o: ObjectOf<K>): Sql[];
  /** statements that remove it; [] when pgwarden never removes this kind by itself */
  drop(o: ObjectOf<K>): Sql[];
  /** one line for humans */
  describe(o: ObjectOf<K>): string;
  /** how creating / dropping it changes access */
  effect: { create: Effect; drop: Effect };
}

/** Type names come from drizzle, YAML or the server's format_type(); only plain type names pass. */
export function typeName(t: string): Sql {
  if (!/^[a-z_][a-z0-9_ ]*(\([0-9, ]+\))?(\[\])?$/i.test(t)) {
    throw new Error(`unsupported SQL type name ${JSON.stringify(t)}`);
  }
  return unsafeRaw(t);
}

function target(t: GrantTarget): Sql {
  switch (t.kind) {
    case 'schema':
      return sql`SCHEMA ${ident(t.name)}`;
    case 'table':
      return sql`TABLE ${qualified(t.schema, t.name)}`;
    case 'function':
      return sql`FUNCTION ${qualified(t.schema, t.name)}(${join(t.args.map(typeName), ', ')})`;
  }
}

function describeTarget(t: GrantTarget): string {
  switch (t.kind) {
    case 'schema':
      return `schema "${t.name}"`;
    case 'table':
      return `"${t.schema}"."${t.name}"`;
    case 'function':
      return `function "${t.schema}"."${t.name}"(${t.args.join(', ')})`;
  }
}

const PRIVILEGES = new Set(['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'USAGE', 'EXECUTE', 'CREATE']);
function privileges(list: readonly string[]): Sql {
  for (const p of list) if (!PRIVILEGES.has(p)) throw new Error(`unknown privilege ${p}`);
  return unsafeRaw(list.join(', '));
}

const COMMAND_SQL = {
  select: 'SELECT',
  insert: 'INSERT',
  update: 'UPDATE',
  delete: 'DELETE',
  all: 'ALL',
} as const;
const VOLATILITY = { immutable: 'IMMUTABLE', stable: 'STABLE', volatile: 'VOLATILE' } as const;

export function catalogValue(v: CatalogValue): Sql {
  if (v === null) return unsafeRaw('NULL');
  if (typeof v === 'boolean') return unsafeRaw(v ? 'true' : 'false');
  if (typeof v === 'number') return int(v);
  if (typeof v === 'string') return literal(v);
  if (isJson(v)) return sql`${literal(v.json)}::jsonb`;
  return textArray(v);
}

function isJson(v: CatalogValue): v is { json: string } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && 'json' in v;
}

export const renderers: { readonly [K in ObjectKind]: Renderer<K> } = {
  role: {
    create: (o) => [
      sql`DO ${dollar(
        sql`BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = ${literal(o.name)}) THEN
    CREATE ROLE ${ident(o.name)};
  END IF;
END`,
      )}`,
      sql`ALTER ROLE ${ident(o.name)} WITH ${unsafeRaw(
        [
          o.login ? 'LOGIN' : 'NOLOGIN',
          o.inherit ? 'INHERIT' : 'NOINHERIT',
          o.bypassrls ? 'BYPASSRLS' : 'NOBYPASSRLS',
          o.createrole ? 'CREATEROLE' : 'NOCREATEROLE',
          'NOSUPERUSER NOCREATEDB NOREPLICATION',
        ].join(' '),
      )}`,
      sql`COMMENT ON ROLE ${ident(o.name)} IS ${literal(o.comment)}`,
    ],
    // Roles are cluster-wide and may own things elsewhere: never dropped automatically.
    drop: () => [],
    describe: (o) =>
      `role "${o.name}" (${o.login ? 'LOGIN' : 'NOLOGIN'}${o.inherit ? '' : ', NOINHERIT'})`,
    effect: { create: 'neutral', drop: 'neutral' },
  },
  membership: {
    create: (o) =>
      o.admin
        ? [
            // PG16+: the member may grant the role without holding its privileges. On PG15 the
            // member's CREATEROLE already allows granting it, so nothing is needed.
            sql`DO ${dollar(
              sql`BEGIN
  IF pg_catalog.current_setting('server_version_num')::int >= 160000 THEN
    EXECUTE ${literal(`GRANT ${ident(o.role).text} TO ${ident(o.member).text} WITH ADMIN TRUE, INHERIT FALSE, SET FALSE`)};
  END IF;
END`,
            )}`,
          ]
        : [sql`GRANT ${ident(o.role)} TO ${ident(o.member)}`],
    drop: (o) => [
      sql`DO ${dollar(
        sql`BEGIN
  IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = ${literal(o.role)})
     AND EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = ${literal(o.member)}) THEN
    EXECUTE ${literal(`REVOKE ${ident(o.role).text} FROM ${ident(o.member).text}`)};
  END IF;
END`,
      )}`,
    ],
    describe: (o) => `"${o.member}" ${o.admin ? 'administers' : 'may act as'} "${o.role}"`,
    effect: { create: 'widens', drop: 'narrows' },
  },
  schema: {
    create: (o) =>
      o.create
        ? [
            sql`CREATE SCHEMA IF NOT EXISTS ${ident(o.name)}`,
            sql`ALTER SCHEMA ${ident(o.name)} OWNER TO ${ident(o.owner)}`,
            sql`REVOKE ALL ON SCHEMA ${ident(o.name)} FROM PUBLIC`,
          ]
        : [
            sql`ALTER SCHEMA ${ident(o.name)} OWNER TO ${ident(o.owner)}`,
            sql`REVOKE ALL ON SCHEMA ${ident(o.name)} FROM PUBLIC`,
          ],
    // Schemas hold data: never dropped automatically.
    drop: () => [],
    describe: (o) => `schema "${o.name}" owned by "${o.owner}"`,
    effect: { create: 'narrows', drop: 'neutral' },
  },
  catalog: {
    create: (o) => [
      sql`SET LOCAL ROLE ${ident(o.owner)}`,
      unsafeRaw(`-- ${o.file}\n${o.sql.trim()}`),
      sql`RESET ROLE`,
    ],
    drop: () => [],
    describe: (o) => `pgwarden runtime catalog ${o.file}`,
    effect: { create: 'neutral', drop: 'neutral' },
  },
  catalog_row: {
    create: (o) => {
      const cols = [o.keyColumn, ...Object.keys(o.values)];
      const vals = [literal(o.key), ...Object.values(o.values).map(catalogValue)];
      const updates = Object.keys(o.values).map((c) => sql`${ident(c)} = EXCLUDED.${ident(c)}`);
      return [
        sql`INSERT INTO ${qualified('pgwarden', o.table)} (${join(cols.map(ident), ', ')}) VALUES (${join(vals, ', ')}) ON CONFLICT (${ident(o.keyColumn)}) DO ${
          updates.length ? sql`UPDATE SET ${join(updates, ', ')}` : unsafeRaw('NOTHING')
        }`,
      ];
    },
    drop: (o) => [
      sql`DELETE FROM ${qualified('pgwarden', o.table)} WHERE ${ident(o.keyColumn)} = ${literal(o.key)}`,
    ],
    describe: (o) => `pgwarden.${o.table} row "${o.key}"`,
    effect: { create: 'neutral', drop: 'neutral' },
  },
  audit_log: {
    create: (o) => [
      sql`SET LOCAL ROLE ${ident(o.owner)}`,
      sql`SELECT pgwarden_audit.ensure_data_log(${literal(o.log)}, ${literal(o.schema)}, ${literal(o.table)}, ${literal(o.key)}, ${literal(JSON.stringify(o.columns))}::jsonb)`,
      sql`RESET ROLE`,
    ],
    // The log holds audit records: never dropped (a table leaving the model keeps its log).
    drop: () => [],
    describe: (o) => `audit log "pgwarden_audit"."${o.log}" of "${o.schema}"."${o.table}"`,
    effect: { create: 'neutral', drop: 'neutral' },
  },
  table_owner: {
    create: (o) => [sql`ALTER TABLE ${qualified(o.schema, o.table)} OWNER TO ${ident(o.owner)}`],
    drop: () => [],
    describe: (o) => `table "${o.schema}"."${o.table}" owned by "${o.owner}"`,
    effect: { create: 'narrows', drop: 'neutral' },
  },
  revoke_public: {
    create: (o) => [sql`REVOKE ALL ON ${target(o.target)} FROM PUBLIC`],
    drop: () => [],
    describe: (o) => `nothing for PUBLIC on ${describeTarget(o.target)}`,
    effect: { create: 'narrows', drop: 'neutral' },
  },
  rls: {
    create: (o) => [
      sql`ALTER TABLE ${qualified(o.schema, o.table)} ENABLE ROW LEVEL SECURITY`,
      sql`ALTER TABLE ${qualified(o.schema, o.table)} FORCE ROW LEVEL SECURITY`,
    ],
    drop: (o) => [
      sql`ALTER TABLE ${qualified(o.schema, o.table)} NO FORCE ROW LEVEL SECURITY`,
      sql`ALTER TABLE ${qualified(o.schema, o.table)} DISABLE ROW LEVEL SECURITY`,
    ],
    describe: (o) => `row level security enabled and forced on "${o.schema}"."${o.table}"`,
    effect: { create: 'narrows', drop: 'destructive' },
  },
  function: {
    create: (o) => {
      const args = join(
        o.args.map((a) => sql`${ident(a.name)} ${typeName(a.type)}`),
        ', ',
      );
      const argTypes = join(
        o.args.map((a) => typeName(a.type)),
        ', ',
      );
      const fn = qualified(o.schema, o.name);
      return [
        sql`CREATE OR REPLACE FUNCTION ${fn}(${args}) RETURNS ${typeName(o.returns)}
LANGUAGE ${unsafeRaw(o.language)} ${unsafeRaw(VOLATILITY[o.volatility])}${unsafeRaw(o.securityDefiner ? ' SECURITY DEFINER' : '')}
SET search_path = pg_catalog, pg_temp${unsafeRaw(
          Object.entries(o.config ?? {})
            .map(([k, v]) => {
              if (!/^[a-z_]+$/.test(k) || !/^[a-z_0-9]+$/.test(v))
                throw new Error(`unsupported function setting ${k} = ${v}`);
              return `\nSET ${k} = ${v}`;
            })
            .join(''),
        )}
AS ${dollar(unsafeRaw(o.body))}`,
        sql`ALTER FUNCTION ${fn}(${argTypes}) OWNER TO ${ident(o.owner)}`,
        sql`REVOKE ALL ON FUNCTION ${fn}(${argTypes}) FROM PUBLIC`,
        sql`COMMENT ON FUNCTION ${fn}(${argTypes}) IS ${literal(o.comment)}`,
      ];
    },
    drop: (o) => [
      sql`DROP FUNCTION IF EXISTS ${qualified(o.schema, o.name)}(${join(
        o.args.map((a) => typeName(a.type)),
        ', ',
      )})`,
    ],
    describe: (o) => `function "${o.schema}"."${o.name}"(${o.args.map((a) => a.type).join(', ')})`,
    effect: { create: 'neutral', drop: 'neutral' },
  },
  view: {
    create: (o) => {
      const v = qualified(o.schema, o.name);
      return [
        // pgwarden's own views (the `_rows_*` lookups) are named in policies and in the exposed
        // views, which PostgreSQL does not let a view be dropped under: replaced in place. A
        // security barrier: people may read them (`pgwarden explain`), and a function of theirs
        // in the WHERE must not see the rows of the owner's scan before the view's own filter.
        ...(isHelperView(o)
          ? [sql`CREATE OR REPLACE VIEW ${v} WITH (security_barrier) AS\n${unsafeRaw(o.query)}`]
          : [sql`DROP VIEW IF EXISTS ${v}`, sql`CREATE VIEW ${v} AS\n${unsafeRaw(o.query)}`]),
        sql`ALTER VIEW ${v} OWNER TO ${ident(o.owner)}`,
        sql`REVOKE ALL ON TABLE ${v} FROM PUBLIC`,
        ...Object.entries(o.defaults).map(
          ([col, expr]) =>
            sql`ALTER VIEW ${v} ALTER COLUMN ${ident(col)} SET DEFAULT ${unsafeRaw(expr)}`,
        ),
        sql`COMMENT ON VIEW ${v} IS ${literal(o.comment)}`,
      ];
    },
    drop: (o) => [sql`DROP VIEW IF EXISTS ${qualified(o.schema, o.name)}`],
    describe: (o) => `view "${o.schema}"."${o.name}"`,
    effect: { create: 'widens', drop: 'narrows' },
  },
  policy: {
    create: (o) => {
      const t = qualified(o.schema, o.table);
      const parts: Sql[] = [
        sql`CREATE POLICY ${ident(o.name)} ON ${t}`,
        unsafeRaw(
          `  AS ${o.permissive ? 'PERMISSIVE' : 'RESTRICTIVE'} FOR ${COMMAND_SQL[o.command]}`,
        ),
        sql`  TO ${join(o.to.map(ident), ', ')}`,
      ];
      if (o.using !== null) parts.push(sql`  USING (${unsafeRaw(o.using)})`);
      if (o.check !== null) parts.push(sql`  WITH CHECK (${unsafeRaw(o.check)})`);
      return [sql`DROP POLICY IF EXISTS ${ident(o.name)} ON ${t}`, join(parts, '\n')];
    },
    drop: (o) => [sql`DROP POLICY IF EXISTS ${ident(o.name)} ON ${qualified(o.schema, o.table)}`],
    describe: (o) => `policy "${o.name}" on "${o.schema}"."${o.table}" for ${o.command}`,
    effect: { create: 'widens', drop: 'narrows' },
  },
  trigger: {
    create: (o) => {
      const on = qualified(o.schema, o.table);
      const events = unsafeRaw(o.events.map((e) => e.toUpperCase()).join(' OR '));
      const timing = unsafeRaw(o.timing.toUpperCase());
      const referencing: string[] = [];
      if (o.transition?.old) referencing.push(`OLD TABLE AS ${ident(o.transition.old).text}`);
      if (o.transition?.new) referencing.push(`NEW TABLE AS ${ident(o.transition.new).text}`);
      const ref = referencing.length
        ? unsafeRaw(`\n  REFERENCING ${referencing.join(' ')}`)
        : unsafeRaw('');
      const args = join((o.args ?? []).map(literal), ', ');
      const out = [
        sql`DROP TRIGGER IF EXISTS ${ident(o.name)} ON ${on}`,
        sql`CREATE TRIGGER ${ident(o.name)} ${timing} ${events} ON ${on}${ref}
  FOR EACH ${unsafeRaw(o.level === 'row' ? 'ROW' : 'STATEMENT')} EXECUTE FUNCTION ${qualified(o.function.schema, o.function.name)}(${args})`,
      ];
      if (o.always) out.push(sql`ALTER TABLE ${on} ENABLE ALWAYS TRIGGER ${ident(o.name)}`);
      return out;
    },
    drop: (o) => [sql`DROP TRIGGER IF EXISTS ${ident(o.name)} ON ${qualified(o.schema, o.table)}`],
    describe: (o) =>
      `trigger "${o.name}" (${o.timing} ${o.events.join(', ')}, per ${o.level}${o.always ? ', always' : ''}) on "${o.schema}"."${o.table}"`,
    effect: { create: 'narrows', drop: 'destructive' },
  },
  grant: {
    create: (o) =>
      o.columns
        ? [
            // exactly these columns: revoking the table privilege revokes it on every column
            sql`REVOKE ${privileges(o.privileges)} ON ${target(o.target)} FROM ${ident(o.grantee)}`,
            sql`GRANT ${privileges(o.privileges)} (${join(o.columns.map(ident), ', ')}) ON ${target(o.target)} TO ${ident(o.grantee)}`,
          ]
        : [sql`GRANT ${privileges(o.privileges)} ON ${target(o.target)} TO ${ident(o.grantee)}`],
    drop: (o) => [
      sql`DO ${dollar(
        sql`BEGIN
  IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = ${literal(o.grantee)}) THEN
    EXECUTE ${literal(`REVOKE ${o.privileges.join(', ')}${o.columns ? ` (${join(o.columns.map(ident), ', ').text})` : ''} ON ${target(o.target).text} FROM ${ident(o.grantee).text}`)};
  END IF;
END`,
      )}`,
    ],
    describe: (o) =>
      `${o.privileges.join(', ')}${o.columns ? ` (${o.columns.join(', ')})` : ''} on ${describeTarget(o.target)} to "${o.grantee}"`,
    effect: { create: 'widens', drop: 'narrows' },
  },
};

export function renderCreate(o: CatalogObject): Sql[] {
  return (renderers[o.kind] as Renderer<typeof o.kind>).create(o as never);
}
export function renderDrop(o: CatalogObject): Sql[] {
  return (renderers[o.kind] as Renderer<typeof o.kind>).drop(o as never);
}
export function describe(o: CatalogObject): string {
  return (renderers[o.kind] as Renderer<typeof o.kind>).describe(o as never);
}
/**
 * A view of pgwarden's own schema (the `_rows_*` lookups of child tables' policies): other
 * objects depend on it, so it is replaced in place, and dropped only after what used it changed.
 */
export function isHelperView(o: CatalogObject): boolean {
  return o.kind === 'view' && o.schema === 'pgwarden';
}

export function effectOf(o: CatalogObject, action: 'create' | 'drop'): Effect {
  return renderers[o.kind].effect[action];
}

/** Statements as one script, each terminated. */
export function toScript(statements: readonly Sql[]): string {
  return statements.map((s) => `${s.text};\n`).join('');
}
