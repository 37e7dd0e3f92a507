/** `pgwarden test`: declarative expectations per person, checked in rolled-back transactions. */
export { loadSpec, type ParsedSpec, parseSpec } from './parse.js';
export {
  type ContextOptions,
  checkSpecIn,
  type ExpectationResult,
  formatKeys,
  type RunOptions,
  readSpecContext,
  runSpec,
  type SpecContext,
  type SpecReport,
} from './run.js';
export * from './types.js';
export { checkSpec } from './validate.js';
