/** The library entry point exports what the README documents. */
import { describe, expect, it } from 'vitest';
import * as pgwarden from '../src/index.js';

describe('package entry point', () => {
  it('exports the documented API', () => {
    for (const name of [
      'defineModel',
      'table',
      'loadModel',
      'validateModel',
      'withColumns',
      'compile',
      'generate',
      'planAgainst',
      'apply',
      'diff',
      'withPerson',
      'withPersonDrizzle',
      'PgwardenError',
      'roleNames',
    ]) {
      expect(typeof (pgwarden as Record<string, unknown>)[name], name).toBe('function');
    }
  });
});
