/**
 * pgwarden's library API. The CLI (`pgwarden`) is built on exactly these functions.
 *
 *   import { defineModel, table, withPerson } from 'pgwarden';
 */
export { type ApplyOptions, type ApplyResult, apply, planAgainst } from './apply/index.js';
export type { CatalogObject, ObjectKind } from './catalog/objects.js';
export { type CompileOptions, compile, type RoleNames, roleNames } from './compile/index.js';
export { PgwardenError } from './errors.js';
export { type GeneratedFile, generate } from './generate/index.js';
export { defineModel, table } from './model/define.js';
export { loadModel } from './model/load.js';
export type { Problem } from './model/problems.js';
export type { Model, ModelInput } from './model/types.js';
export { validateModel, withColumns } from './model/validate.js';
export { diff, type Plan, type PlanStep } from './plan/index.js';
export { withPersonDrizzle } from './runtime/drizzle.js';
export {
  envKey,
  fileKey,
  generateKey,
  type KeyProvider,
  type KeySpec,
  keyConnectionOptions,
  keyId,
  kmsKey,
  parseKeyRef,
  resolveKeys,
} from './runtime/keys.js';
export {
  type ExportRequest,
  type ExportStarted,
  exportBatches,
  parseWhere,
  type RevealOptions,
  type RevealResult,
  reveal,
  revealCell,
  startExport,
} from './runtime/reveal-export.js';
export { type PersonOptions, withPerson } from './runtime/with-person.js';
