// Multi-line policy and the stop rule, table-driven: a fixture with a cursor (█), what the model
// generates, and what is kept.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { buildContext } from '../../src/editor/context';
import { makeStopRule, type StopSpec } from '../../src/engine/stopRule';
import { decideMode, opensBlock } from '../../src/editor/policy';
import { postprocess } from '../../src/editor/postprocess';
import { atCursor } from './helpers';

function specAt(fixture: string): { spec: StopSpec | null; suffix: string } {
  const { doc, offset } = atCursor(fixture);
  const r = buildContext(doc, offset);
  assert.ok(r.ok);
  return { spec: decideMode(r.context), suffix: r.context.suffix };
}

const modeCases: { name: string; fixture: string; mode: 'single' | 'multi' | null }[] = [
  { name: 'end of a statement line', fixture: 'const x = █\n', mode: 'single' },
  { name: 'after a line that opens a block, at its end', fixture: 'function f(a) {█\n}\n', mode: 'multi' },
  { name: 'empty line inside a block', fixture: 'function f(a) {\n  █\n}\n', mode: 'multi' },
  { name: 'empty line right after an opener, not indented yet', fixture: 'def f(a):\n█\n', mode: 'multi' },
  { name: 'empty top-level line', fixture: 'import x from "y";\n█\n', mode: 'single' },
  { name: 'python block opener', fixture: 'for i in range(10):█\n', mode: 'multi' },
  { name: 'object literal key is not a block', fixture: 'const o = { a:█ };\n', mode: 'single' },
  { name: 'before closing brackets', fixture: 'foo(█)\n', mode: 'single' },
  { name: 'inside a word', fixture: 'const val█ue = 1;\n', mode: null },
  { name: 'arrow function body', fixture: 'const f = () =>█\n', mode: 'multi' },
];

for (const c of modeCases) {
  test(`mode: ${c.name}`, () => {
    assert.equal(specAt(c.fixture).spec?.mode ?? null, c.mode);
  });
}

test('opensBlock ignores trailing comments', () => {
  assert.equal(opensBlock('if (x) { // start'), true);
  assert.equal(opensBlock('x = 1 # note'), false);
  assert.equal(opensBlock('else:'), true);
  assert.equal(opensBlock('case 1:'), true);
  assert.equal(opensBlock('label: {'), true);
});

/** fixture, generated text, expected suggestion after stop rule + postprocessing */
const cases: { name: string; fixture: string; generated: string; expected: string }[] = [
  { name: 'single line stops at the newline', fixture: 'const x = █\n', generated: '42;\nconst y = 1;\n', expected: '42;' },
  { name: 'single line trims trailing spaces', fixture: 'let s = █\n', generated: '"hi";   \n', expected: '"hi";' },
  { name: 'nothing when the model starts a new line', fixture: 'const x = 1;█\n', generated: '\nconst y = 2;', expected: '' },
  { name: 'nothing when only whitespace', fixture: 'x = █\n', generated: '   \n', expected: '' },
  { name: 'suffix dedup: closing paren already there', fixture: 'foo(█)\n', generated: 'a, b);\n', expected: 'a, b' },
  { name: 'suffix dedup: nested call keeps its own paren', fixture: 'foo(█)\n', generated: 'bar(1), 2);\n', expected: 'bar(1), 2' },
  { name: 'suffix dedup: closing quote', fixture: 'say("█")\n', generated: 'hello")\n', expected: 'hello' },
  { name: 'suffix dedup: model repeats only the suffix', fixture: 'foo(█)\n', generated: ');\n', expected: '' },
  {
    name: 'block body stops at the closing brace already in the file',
    fixture: 'function f(a) {█\n}\n',
    generated: '\n  const b = a * 2;\n  return b;\n}\n\nfunction g() {',
    expected: '\n  const b = a * 2;\n  return b;',
  },
  {
    name: 'block body keeps a closing brace the file lacks',
    fixture: 'function f(a) {█',
    generated: '\n  return a;\n}\nfunction g() {}\n',
    expected: '\n  return a;\n}',
  },
  {
    name: 'empty line in a block: stops at dedent',
    fixture: 'def f(a):\n    █\n\nprint(f(1))\n',
    generated: 'b = a + 1\n    return b\n\ndef g():\n    pass\n',
    expected: 'b = a + 1\n    return b',
  },
  {
    name: 'block stops before repeating the next line of the file',
    fixture: 'if (ok) {\n  █\n  done();\n}\n',
    generated: 'step();\n  done();\n}\n',
    expected: 'step();',
  },
  {
    name: 'nested closing brace is kept inside the block',
    fixture: 'function f(a) {█\n}\n',
    generated: '\n  if (a) {\n    return 1;\n  }\n  return 0;\n}\n',
    expected: '\n  if (a) {\n    return 1;\n  }\n  return 0;',
  },
  {
    name: 'block: trailing whitespace on lines is trimmed',
    fixture: 'while (x) {█\n}\n',
    generated: '\n  x--;   \n  y++;\t\n}\n',
    expected: '\n  x--;\n  y++;',
  },
];

for (const c of cases) {
  test(`stop + postprocess: ${c.name}`, () => {
    const { spec, suffix } = specAt(c.fixture);
    assert.ok(spec, 'no spec');
    // As the engine would: feed growing text, stop at the first cut.
    const rule = makeStopRule(spec);
    let out = c.generated;
    for (let n = 1; n <= c.generated.length; n++) {
      const cut = rule(c.generated.slice(0, n));
      if (cut !== null) {
        out = c.generated.slice(0, cut);
        break;
      }
    }
    assert.equal(postprocess(out, spec, suffix), c.expected);
    // Postprocessing alone (text from a cache or an engine that overshot) agrees.
    assert.equal(postprocess(c.generated, spec, suffix), c.expected);
  });
}

test('block stops after maxLines lines', () => {
  const { spec } = specAt('function f() {█\n}\n');
  assert.ok(spec);
  const many = '\n' + Array.from({ length: 40 }, (_, i) => `  s${i}();`).join('\n') + '\n';
  const text = postprocess(many, spec, '\n}\n');
  assert.equal(text.split('\n').length, spec.maxLines);
});
