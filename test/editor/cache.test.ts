// The suggestion cache and typing through a shown suggestion, table-driven.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { SuggestionCache } from '../../src/editor/cache';

const P = 'function area(r) {\n  return ';
const S = '\n}\n';

const cases: { name: string; stored: [string, string, string][]; prefix: string; suffix: string; expected: string | undefined }[] = [
  { name: 'exact hit', stored: [[P, S, 'Math.PI * r * r;']], prefix: P, suffix: S, expected: 'Math.PI * r * r;' },
  { name: 'exact hit of "nothing"', stored: [[P, S, '']], prefix: P, suffix: S, expected: '' },
  { name: 'typing through: rest of the suggestion', stored: [[P, S, 'Math.PI * r * r;']], prefix: P + 'Math.', suffix: S, expected: 'PI * r * r;' },
  { name: 'typed something else: miss', stored: [[P, S, 'Math.PI * r * r;']], prefix: P + 'r *', suffix: S, expected: undefined },
  { name: 'typed all of it: miss (ask again)', stored: [[P, S, 'x;']], prefix: P + 'x;', suffix: S, expected: undefined },
  { name: 'suffix changed: miss', stored: [[P, S, 'Math.PI * r * r;']], prefix: P + 'Ma', suffix: ')' + S, expected: undefined },
  { name: 'backspace before the cached point: miss', stored: [[P, S, 'Math.PI;']], prefix: P.slice(0, -1), suffix: S, expected: undefined },
  {
    name: 'longest matching prefix wins',
    stored: [
      [P, S, 'Math.PI * r * r;'],
      [P + 'Math.', S, 'pow(r, 2) * Math.PI;'],
    ],
    prefix: P + 'Math.p',
    suffix: S,
    expected: 'ow(r, 2) * Math.PI;',
  },
  { name: 'empty cached suggestion is not typed through', stored: [[P, S, '']], prefix: P + 'x', suffix: S, expected: undefined },
];

for (const c of cases) {
  test(`cache: ${c.name}`, () => {
    const cache = new SuggestionCache();
    for (const [p, s, t] of c.stored) cache.set(p, s, t);
    assert.equal(cache.get(c.prefix, c.suffix), c.expected);
  });
}

test('cache: least recently used entries are evicted', () => {
  const cache = new SuggestionCache(3);
  for (const k of ['a', 'b', 'c']) cache.set(k, '', k.toUpperCase());
  assert.equal(cache.get('a', ''), 'A'); // a is now most recent
  cache.set('d', '', 'D');
  assert.equal(cache.size, 3);
  assert.equal(cache.get('b', ''), undefined, 'b should have been evicted');
  assert.equal(cache.get('a', ''), 'A');
  assert.equal(cache.get('d', ''), 'D');
});

test('cache: typing through keystroke by keystroke', () => {
  const cache = new SuggestionCache();
  const suggestion = 'items.map((x) => x * 2);';
  cache.set(P, S, suggestion);
  for (let i = 1; i < suggestion.length; i++) {
    assert.equal(cache.get(P + suggestion.slice(0, i), S), suggestion.slice(i));
  }
});
