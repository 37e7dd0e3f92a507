/**
 * canonicalJson (src/catalog/canonical-json.ts) writes canonical JSON directly; its definition is
 * slowCanonical, JSON.stringify over copies with sorted entries; the model's hash
 * (src/model/load.ts) writes the same way, with bigints as text. Every registry row stores the
 * text and every plan compares it with the desired object's: one different character would
 * show every object as changed. No database.
 */
import { describe, expect, it } from 'vitest';
import { synthModel } from '../bench/toolchain.js';
import { canonicalJson, slowCanonical } from '../src/catalog/fingerprint.js';
import { compile } from '../src/compile/index.js';
import { loadModel, canonicalJson as modelJson, slowModelJson } from '../src/model/load.js';
import { validateModel } from '../src/model/validate.js';

describe('canonicalJson', () => {
  it('writes the text of its definition for every object of the CRM and of a 200-table model', async () => {
    const crm = await loadModel('examples/crm/model.ts');
    const synth = await validateModel(synthModel(200, 20).input, { requireColumns: true });
    let n = 0;
    for (const model of [crm.model, synth.model]) {
      if (!model) throw new Error('model did not load');
      for (const target of ['postgres', 'citus'] as const) {
        for (const o of compile(model, { rolePrefix: 'p_', target })) {
          expect(canonicalJson(o)).toBe(slowCanonical(o));
          n++;
        }
      }
      expect(canonicalJson(model)).toBe(slowCanonical(model));
      expect(modelJson(model)).toBe(slowModelJson(model));
    }
    const input = synthModel(200, 20).input;
    expect(modelJson(input)).toBe(slowModelJson(input));
    expect(n).toBeGreaterThan(10_000);
  });

  it('writes the text of its definition for edge cases of keys and values', () => {
    const values: unknown[] = [
      null,
      0,
      -0,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      1.5e300,
      '',
      'a"b\\c\n\u0001\u2028é😀',
      true,
      [],
      {},
      [undefined, () => 1, Symbol('s'), null, [[]]],
      { b: 1, a: undefined, c: () => 1, d: Symbol('s'), e: null },
      // keys that are array indexes come first, by number, in a copy; others sorted
      { b: 1, 10: 'ten', 9: 'nine', '09': 'zero nine', a: 2, 4294967294: 'max', 4294967295: 'no' },
      { 'Crm"; DROP': 1, 'api.v1 客户': 2, 'phone; --': 3, '': 4, ' ': 5, Z: 6, a: 7 },
      Object.assign(Object.create(null) as object, { z: 1, y: { x: [1, { w: 2, v: 3 }] } }),
      { date: new Date(0), nested: { toJSON: () => 'custom' } },
      { boxed: new String('x'), n: new Number(1) },
      [{ b: [{ d: 1, c: 2 }], a: 0 }],
    ];
    for (const v of values) {
      expect(canonicalJson(v)).toBe(slowCanonical(v));
      expect(modelJson(v)).toBe(slowModelJson(v));
    }
    // the model's hash writes bigints as their text, also in arrays and under odd keys
    for (const v of [10n, [1n, { b: 2n, 3: -4n }], { big: 2n ** 70n }, undefined])
      expect(modelJson(v)).toBe(slowModelJson(v));
    expect(canonicalJson({ b: 1, a: [2, { d: 3, c: 4 }] })).toBe('{"a":[2,{"c":4,"d":3}],"b":1}');
  });
});
