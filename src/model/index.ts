/** The permission model: types, definition helpers, loading and validation. */
export * from './define.js';
export { checkExpression, type ExpressionCheck } from './expression.js';
export {
  canonicalJson,
  type LoadedInput,
  type LoadOptions,
  type LoadResult,
  loadModel,
  loadModelInput,
  modelHash,
} from './load.js';
export * from './problems.js';
export * from './types.js';
export {
  deepFreeze,
  isTextType,
  normalizeKeyType,
  type ValidateOptions,
  type ValidationResult,
  validateModel,
  withColumns,
} from './validate.js';
