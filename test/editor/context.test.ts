// Context building: the FIM windows around the cursor, their stability while typing, and the
// documents that get no completion.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { buildContext, docFromString, docWithReplacement, DEFAULT_CONTEXT_OPTIONS } from '../../src/editor/context';
import { atCursor } from './helpers';

test('small document: whole prefix and suffix, cursor line split', () => {
  const { doc, offset } = atCursor('function add(a, b) {\n  return a█;\n}\n');
  const r = buildContext(doc, offset);
  assert.ok(r.ok);
  assert.equal(r.context.prefix, 'function add(a, b) {\n  return a');
  assert.equal(r.context.suffix, ';\n}\n');
  assert.equal(r.context.linePrefix, '  return a');
  assert.equal(r.context.lineSuffix, ';');
  assert.equal(r.context.prefixStart, 0);
});

test('long prefix: starts at a line start, within budget', () => {
  const lines = Array.from({ length: 400 }, (_, i) => `const v${i} = ${i};`).join('\n');
  const text = lines + '\nconst last = ';
  const opts = { ...DEFAULT_CONTEXT_OPTIONS, maxPrefixChars: 1000, maxSuffixChars: 200, stride: 256 };
  const r = buildContext(docFromString(text), text.length, opts);
  assert.ok(r.ok);
  assert.ok(r.context.prefix.length <= 1000, `prefix ${r.context.prefix.length} chars`);
  assert.ok(r.context.prefix.length > 1000 - 256 - 20, `prefix ${r.context.prefix.length} chars`);
  assert.ok(r.context.prefix.startsWith('const v'), 'prefix starts mid-line');
  assert.equal(text[r.context.prefixStart - 1], '\n');
  assert.equal(r.context.linePrefix, 'const last = ');
});

test('typing at the cursor keeps the prompt start stable (KV-cache reuse)', () => {
  const lines = Array.from({ length: 400 }, (_, i) => `let x${i} = f(${i});`).join('\n') + '\n';
  const opts = { ...DEFAULT_CONTEXT_OPTIONS, maxPrefixChars: 1000, maxSuffixChars: 300, stride: 256 };
  const after = '\n}\n' + 'tail();\n'.repeat(100);
  let typed = '';
  const starts = new Set<number>();
  const suffixes = new Set<string>();
  for (const ch of 'const result = compute(alpha, beta);') {
    typed += ch;
    const text = lines + typed + after;
    const r = buildContext(docFromString(text), lines.length + typed.length, opts);
    assert.ok(r.ok);
    starts.add(r.context.prefixStart);
    suffixes.add(r.context.suffix);
  }
  // The window start sits on a 256-char grid: 36 typed characters cross at most one grid line.
  assert.ok(starts.size <= 2, `the prefix window moved ${starts.size - 1} times while typing one line`);
  assert.equal(suffixes.size, 1, 'the suffix changed while typing');
});

test('suffix: whole lines within budget', () => {
  const text = 'a = █' + 'x = 1\n'.repeat(1000);
  const { doc, offset } = atCursor(text);
  const r = buildContext(doc, offset, { ...DEFAULT_CONTEXT_OPTIONS, maxSuffixChars: 100 });
  assert.ok(r.ok);
  assert.ok(r.context.suffix.length <= 100);
  assert.ok(r.context.suffix.endsWith('\n'));
});

test('binary and huge documents get no context', () => {
  const bin = buildContext(docFromString('abc\u0000def'), 3);
  assert.equal(bin.ok, false);
  const huge = buildContext(docFromString('x'.repeat(100)), 50, { ...DEFAULT_CONTEXT_OPTIONS, maxDocChars: 99 });
  assert.equal(huge.ok, false);
});

test('CRLF: the cursor line suffix has no carriage return', () => {
  const { doc, offset } = atCursor('if (a) {\r\n  foo(█)\r\n}\r\n');
  const r = buildContext(doc, offset);
  assert.ok(r.ok);
  assert.equal(r.context.lineSuffix, ')');
});

test('docWithReplacement reads every range as the edited text would', () => {
  const original = 'const n = items.le;\nconsole.log(n);\n';
  const start = original.indexOf('le;');
  for (const [end, text] of [[start + 2, 'length'], [start, 'x'], [start + 2, ''], [original.length, 'tail']] as const) {
    const edited = original.slice(0, start) + text + original.slice(end);
    const doc = docWithReplacement(docFromString(original), start, end, text);
    assert.equal(doc.length, edited.length);
    for (let a = 0; a <= edited.length + 2; a++) {
      for (let b = a; b <= edited.length + 2; b++) assert.equal(doc.slice(a, b), edited.slice(a, b), `[${a}, ${b}) of ${JSON.stringify(edited)}`);
    }
  }
});
