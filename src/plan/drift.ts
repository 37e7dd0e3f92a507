/**
 * Drift: the live database against what pgwarden last applied (the applied-object registry).
 * Pure: it reads a LiveState that introspect built with the registry's objects as "desired".
 *
 * Every finding says whether `pgwarden apply` repairs it, or what to do by hand.
 */
import type { CatalogObject } from '../catalog/objects.js';
import { objectKey } from '../catalog/objects.js';
import type { LiveState } from '../introspect/index.js';
import { describe } from '../sql/render.js';

export const DRIFT_KINDS = [
  'dropped',
  'edited',
  'rls_disabled',
  'rls_not_forced',
  'unknown_policy',
  'unknown_grant',
  'public_grant',
  'unknown_trigger',
  'unmanaged_relation',
] as const;
export type DriftKind = (typeof DRIFT_KINDS)[number];

export interface DriftFinding {
  kind: DriftKind;
  /** danger: access may be wider than the model, or evidence may be lost; warning: otherwise */
  severity: 'danger' | 'warning';
  /** the object, as `plan` names it */
  object: string;
  /** registry key, or a key-like name for objects pgwarden does not know */
  key: string;
  message: string;
  /** what repairs it */
  fix: string;
}

const BY_APPLY = 'pgwarden apply restores it';

function droppedSeverity(o: CatalogObject): 'danger' | 'warning' {
  // a dropped permissive policy or grant only takes access away; everything else protects
  if (o.kind === 'policy' && o.permissive) return 'warning';
  if (o.kind === 'grant' || o.kind === 'view' || o.kind === 'function') return 'warning';
  return 'danger';
}

export function driftReport(applied: readonly CatalogObject[], live: LiveState): DriftFinding[] {
  const out: DriftFinding[] = [];
  for (const o of applied) {
    const key = objectKey(o);
    if (live.present.get(key) === true) continue;
    if (o.kind === 'catalog') continue; // versioned files: checked by apply itself
    if (o.kind === 'rls') {
      const flags = live.rlsFlags.get(`${o.schema}.${o.table}`);
      if (!flags) {
        out.push({
          kind: 'dropped',
          severity: 'danger',
          object: `table "${o.schema}"."${o.table}"`,
          key,
          message: 'the protected table is gone (dropped or renamed outside pgwarden)',
          fix: 'Restore the table, or remove it from the model and run pgwarden apply.',
        });
      } else if (!flags.enabled) {
        out.push({
          kind: 'rls_disabled',
          severity: 'danger',
          object: `table "${o.schema}"."${o.table}"`,
          key,
          message: `row level security is DISABLED on "${o.schema}"."${o.table}": its policies are ignored`,
          fix: BY_APPLY,
        });
      } else {
        out.push({
          kind: 'rls_not_forced',
          severity: 'danger',
          object: `table "${o.schema}"."${o.table}"`,
          key,
          message: `row level security is not FORCED on "${o.schema}"."${o.table}": its owner skips the policies`,
          fix: BY_APPLY,
        });
      }
      continue;
    }
    const exists = live.exists.get(key);
    if (exists === false) {
      out.push({
        kind: 'dropped',
        severity: droppedSeverity(o),
        object: describe(o),
        key,
        message: 'dropped outside pgwarden',
        fix: BY_APPLY,
      });
    } else {
      out.push({
        kind: 'edited',
        severity: 'danger',
        object: describe(o),
        key,
        message:
          o.kind === 'revoke_public'
            ? 'PUBLIC was granted privileges here outside pgwarden'
            : o.kind === 'grant'
              ? 'the grant is missing or was changed outside pgwarden'
              : 'changed outside pgwarden: the database no longer has it as applied',
        fix: BY_APPLY,
      });
    }
  }
  for (const p of live.unknownPolicies) {
    const opens = p.permissive;
    out.push({
      kind: 'unknown_policy',
      severity: opens ? 'danger' : 'warning',
      object: describe(p),
      key: objectKey(p),
      message: `not created by pgwarden: ${p.permissive ? 'PERMISSIVE' : 'RESTRICTIVE'} ${p.command} TO ${p.to.join(', ')}${p.using !== null ? ` USING (${p.using})` : ''}${p.check !== null ? ` WITH CHECK (${p.check})` : ''}${opens ? ' — it can open rows to those roles' : ''}`,
      fix: 'pgwarden apply drops it (put the rule in the model instead).',
    });
  }
  for (const g of live.unknownGrants) {
    out.push({
      kind: 'unknown_grant',
      severity: 'danger',
      object: describe(g),
      key: objectKey(g),
      message: 'granted outside pgwarden: that role reaches the data around the model',
      fix: 'pgwarden apply revokes it (give access through a job in the model instead).',
    });
  }
  for (const r of live.unknownPublic) {
    out.push({
      kind: 'public_grant',
      severity: 'danger',
      object: describe(r),
      key: objectKey(r),
      message: 'PUBLIC holds privileges here: every role of the cluster has them',
      fix: 'pgwarden apply revokes them.',
    });
  }
  for (const t of live.unknownTriggers) {
    out.push({
      kind: 'unknown_trigger',
      severity: 'danger',
      object: `trigger "${t.name}" on "${t.schema}"."${t.table}"`,
      key: `trigger:${t.schema}.${t.table}:${t.name}`,
      message: `not created by pgwarden (runs ${t.function}${t.enabled === 'D' ? ', disabled' : ''}): a trigger sees every row written, whoever writes it`,
      fix: 'Review it; if it is meant to be there, keep it (apply leaves it alone), otherwise DROP TRIGGER it by hand.',
    });
  }
  for (const r of live.unmanagedRelations) {
    out.push({
      kind: 'unmanaged_relation',
      severity: r.partitionOf ? 'danger' : 'warning',
      object: `${r.type} "${r.schema}"."${r.name}"`,
      key: `relation:${r.schema}.${r.name}`,
      message: r.partitionOf
        ? `a partition of protected ${r.partitionOf}: queried directly it has no row level security of its own`
        : 'in a schema pgwarden protects, but the model has no rules for it',
      fix: r.partitionOf
        ? 'Revoke direct access to the partition, or enable and force row level security on it by hand.'
        : 'Add it to the model (with its rules), or move it out of the schema.',
    });
  }
  return out;
}
