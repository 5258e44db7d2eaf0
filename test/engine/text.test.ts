// Pure parts of the text pipeline: streaming UTF-8-safe decoding, stop strings and stop rules,
// prompt lookup.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lookupMatches, promptLookup } from '../../src/engine/drafters/ngram';
import { repetitionCut, repetitionHoldback } from '../../src/engine/repetition';
import { TextTracker } from '../../src/engine/speculative';
import { StreamDecoder } from '../../src/engine/tokenizer';

/** A byte-level "tokenizer": one token per UTF-8 byte, decoded like a byte-level BPE (U+FFFD for broken bytes). */
const bytes = {
  encode: (s: string) => Array.from(Buffer.from(s, 'utf8')),
  decode: (ids: readonly number[]) => Buffer.from(ids).toString('utf8'),
};

describe('StreamDecoder', () => {
  const texts = ['plain ascii', 'héllo wörld', 'emoji 🦌🚀 and 漢字', '👩‍👩‍👧 family', 'ends in emoji 🎉'];
  for (const text of texts) {
    for (const step of [1, 2, 3, 5]) {
      it(`${JSON.stringify(text)} in chunks of ${step} bytes`, () => {
        const ids = bytes.encode(text);
        const dec = new StreamDecoder(bytes);
        let out = '';
        for (let i = 0; i < ids.length; i += step) {
          const piece = dec.push(ids.slice(i, i + step));
          assert.ok(!piece.includes('\uFFFD'), `broken character emitted: ${JSON.stringify(piece)}`);
          out += piece;
        }
        out += dec.flush();
        assert.equal(out, text);
      });
    }
  }
  it('flushes a truly broken tail at the end', () => {
    const dec = new StreamDecoder(bytes);
    assert.equal(dec.push([0x61, 0xf0, 0x9f]), 'a');
    assert.equal(dec.flush(), '\uFFFD');
  });
});

describe('TextTracker: stop strings and rules', () => {
  function run(chunks: string[], stops: string[], rule?: (s: string) => number | null) {
    const emitted: string[] = [];
    const t = new TextTracker(stops, rule, (c) => emitted.push(c));
    let reason: string | null = null;
    for (const c of chunks) {
      reason = t.add(c);
      if (reason) break;
    }
    if (!reason) reason = t.add('', true);
    return { text: t.text, emitted: emitted.join(''), reason, pieces: emitted };
  }
  const cases = [
    { name: 'no stop', chunks: ['ab', 'cd'], stops: [], text: 'abcd', reason: null },
    { name: 'stop inside a chunk', chunks: ['ab\nfunc', 'tion x'], stops: ['\nfunction'], text: 'ab', reason: 'stop' },
    { name: 'stop across chunks', chunks: ['return 1;\n', '}\n', 'func', 'tion'], stops: ['\nfunction'], text: 'return 1;\n}', reason: 'stop' },
    { name: 'earliest of several stops', chunks: ['x\n//c\nclass'], stops: ['\nclass', '\n//'], text: 'x', reason: 'stop' },
    { name: 'partial stop at the end is released', chunks: ['a\nfun'], stops: ['\nfunction'], text: 'a\nfun', reason: null },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = run(c.chunks, c.stops);
      assert.equal(r.text, c.text);
      assert.equal(r.emitted, c.text, 'streamed text equals the final text');
      assert.equal(r.reason, c.reason);
    });
  }
  it('never streams text that a stop string later cuts', () => {
    const r = run(['ab\n', 'fu', 'nction'], ['\nfunction']);
    assert.deepEqual(r.pieces, ['ab']);
  });
  it('a caller rule: end of line', () => {
    const eol = (s: string) => (s.indexOf('\n') >= 0 ? s.indexOf('\n') : null);
    const r = run(['const x', ' = 1;\nconst y'], [], eol);
    assert.equal(r.text, 'const x = 1;');
    assert.equal(r.emitted, 'const x = 1;');
    assert.equal(r.reason, 'rule');
  });
});

describe('prompt lookup (ngram drafter)', () => {
  it('proposes what followed the latest match of the longest suffix n-gram', () => {
    //           0  1  2  3  4  5  6  7  8  9
    const toks = [1, 2, 3, 4, 5, 9, 1, 2, 3, 7, 8, 1, 2, 3];
    assert.deepEqual(promptLookup(toks, 3), [7, 8, 1]);
    assert.deepEqual(promptLookup(toks, 10), [7, 8, 1, 2, 3]);
  });
  it('falls back to shorter n-grams', () => {
    assert.deepEqual(promptLookup([5, 6, 7, 1, 2, 6], 2), [7, 1]);
  });
  it('proposes nothing without a match', () => {
    assert.deepEqual(promptLookup([1, 2, 3, 4], 4), []);
    assert.deepEqual(promptLookup([1], 4), []);
  });  it('for draft trees: the latest match first, then earlier matches that continue differently, then shorter matches', () => {
    //            match [1 2 3]→7 8    →4 5       →7 8 (known)     [2 3]→6   suffix
    const toks = [1, 2, 3, 4, 5, 1, 2, 3, 7, 8, 0, 1, 2, 3, 7, 8, 9, 2, 3, 6, 1, 2, 3];
    const found = lookupMatches(toks, 2, 4);
    assert.deepEqual(found, [
      { tokens: [7, 8], n: 3, rank: 0 },
      { tokens: [4, 5], n: 3, rank: 1 },
      { tokens: [6, 1], n: 2, rank: 2 },
    ]);
    assert.deepEqual(found[0].tokens, promptLookup(toks, 2), 'rank 0 is the chain drafter\'s');
    assert.deepEqual(lookupMatches(toks, 2, 1), [{ tokens: [7, 8], n: 3, rank: 0 }]);
    assert.deepEqual(lookupMatches([1, 2, 3, 4], 4, 3), []);
  });
});

describe('repetition guard', () => {
  const cases: { name: string; text: string; cut: number | null }[] = [
    { name: 'one line three times: one copy kept', text: 'a = 1\nx.push(0);\nx.push(0);\nx.push(0);\n', cut: 'a = 1\nx.push(0);\n'.length },
    { name: 'a two-line block three times', text: 'f()\nif (x) {\n}\nif (x) {\n}\nif (x) {\n}\n', cut: 'f()\nif (x) {\n}\n'.length },
    { name: 'one line twice is fine', text: 'x.push(0);\nx.push(0);\n', cut: null },
    { name: 'closing braces at different depths are fine', text: '      }\n    }\n  }\n}\n', cut: null },
    { name: 'ordinary code is fine', text: 'def f(a, b):\n    if a:\n        return b\n    return a + b\n\n\ndef g():\n    pass\n', cut: null },
    { name: 'a few characters over and over on one line', text: 'const s = ' + 'foo(1), '.repeat(60), cut: 'const s = foo(1),'.length },
    { name: 'a long run of one character', text: 'x' + '='.repeat(300), cut: 2 },
    { name: 'an 80-column rule is fine', text: '# ' + '='.repeat(80) + '\n', cut: null },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(repetitionCut(c.text), c.cut));
  }

  it('holds back the line being written and lines that repeat the ones before', () => {
    assert.equal(repetitionHoldback('a\nb\nc'), 1, 'the partial line');
    assert.equal(repetitionHoldback('a\nb\n'), 0);
    assert.equal(repetitionHoldback('a\nb\nb\n'), 2, 'the second b may start a loop');
    assert.equal(repetitionHoldback('a\nb\na\nb\nc'), 'a\nb\nc'.length, 'a second copy of a two-line block, and the partial line');
    // Whatever the guard cuts was held back, so a stream never shows what the result drops.
    for (const c of cases) {
      if (c.cut === null) continue;
      for (let n = 1; n < c.text.length; n++) {
        const prefix = c.text.slice(0, n);
        if (repetitionCut(prefix) !== null) break;
        assert.ok(prefix.length - repetitionHoldback(prefix) <= c.cut, `${c.name}: streamed past the cut at ${n}`);
      }
    }
  });
});

describe('TextTracker: where the repetition guard cuts does not depend on chunking', () => {
  const looping = 'if (x) {\n  return a;\n  return a;\n  return a;\n  return a;\n  return a;\n}\n';
  const run = (chunks: string[]) => {
    const t = new TextTracker([], repetitionCut, undefined, repetitionHoldback);
    for (const c of chunks) if (t.add(c)) break;
    return t.text;
  };
  it('one big chunk (a drafted pass) and one character at a time (plain decoding) agree', () => {
    const byChar = run([...looping]);
    assert.equal(run([looping]), byChar);
    assert.equal(run([looping.slice(0, 13), looping.slice(13, 40), looping.slice(40)]), byChar);
    assert.ok(byChar.length < looping.length, 'the loop is cut');
  });
});
