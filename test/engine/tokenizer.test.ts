// The model tokenizer: round trips (non-ASCII, emoji), FIM prompt layouts, streaming decode with
// real byte-level BPE tokens.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readModelFolder } from '../../src/engine/modelFolder';
import { DeerTokenizer, StreamDecoder } from '../../src/engine/tokenizer';
import { CONDITIONED_MODEL, hasModel, TINY_MODEL } from './support';

const TEXTS = [
  'def add(a, b):\n    return a + b\n',
  'const s = "héllo wörld — ½ ≤ ∞";\n',
  '// 漢字とかな 🦌🚀 emoji\tand\ttabs\r\n',
  '👩‍👩‍👧 ZWJ family, e\u0301 combining, 🇫🇷 flag',
  '',
];

for (const dir of [TINY_MODEL, CONDITIONED_MODEL]) {
  describe(`tokenizer (${dir.split('/').slice(-1)[0]})`, { skip: !hasModel(dir) && 'fixture missing' }, () => {
    const tok = () => new DeerTokenizer(readModelFolder(dir));

    it('round-trips text, including non-ASCII and emoji', () => {
      const t = tok();
      for (const text of TEXTS) assert.equal(t.decode(t.encode(text)), text);
    });

    it('streams every text token by token without broken characters', () => {
      const t = tok();
      for (const text of TEXTS) {
        const dec = new StreamDecoder(t);
        let out = '';
        for (const id of t.encode(text)) {
          const piece = dec.push([id]);
          assert.ok(!piece.includes('\uFFFD'), JSON.stringify(piece));
          out += piece;
        }
        assert.equal(out + dec.flush(), text);
      }
    });

    it('lays out fill-in-the-middle prompts in the declared order', () => {
      const t = tok();
      assert.ok(t.fim);
      const { fimPrefix: P, fimSuffix: S, fimMiddle: M } = t.special as Required<typeof t.special>;
      const p = t.encode('def f(x):\n    ');
      const s = t.encode('\n    return y\n');
      const prompt = t.buildPrompt('def f(x):\n    ', '\n    return y\n');
      const expected = t.fimOrder === 'psm' ? [P, ...p, S, ...s, M] : [S, ...s, P, ...p, M];
      assert.deepEqual(prompt, expected);
      assert.deepEqual(t.buildPrompt('def f(x):\n    ', ''), p, 'no suffix: the plain prefix');
    });

    it('spm keeps typing at the cursor a change at the end of the prompt', () => {
      const t = tok();
      if (t.fimOrder !== 'spm') return;
      const a = t.buildPrompt('x = 1\ny = ', '\nprint(x)\n');
      const b = t.buildPrompt('x = 1\ny = 2', '\nprint(x)\n');
      let common = 0;
      while (a[common] === b[common]) common++;
      assert.ok(common >= a.length - 3, `common prefix ${common} of ${a.length}`);
    });

    it('encodes special-token strings in user text as plain text, never as control ids', () => {
      const t = tok();
      const spec = readModelFolder(dir);
      const added = (spec.tokenizerJson as { added_tokens: { id: number; content: string; special: boolean }[] }).added_tokens.filter((a) => a.special);
      assert.ok(added.length > 0);
      const doc = `x = "${added.map((a) => a.content).join('" + "')}";\n${added.map((a) => a.content).join('')}\n`;
      const ids = t.encode(doc);
      for (const a of added) assert.ok(!ids.includes(a.id), `${a.content} encoded as its control id ${a.id}`);
      assert.ok(ids.every((id) => !t.isControl(id)));
      assert.equal(t.decode(ids), doc, 'the special-token strings round-trip as text');
      // The prompt holds exactly the engine's own three FIM tokens.
      const prompt = t.buildPrompt(doc, doc);
      const { fimPrefix: P, fimSuffix: S, fimMiddle: M } = t.special as Required<typeof t.special>;
      assert.deepEqual(prompt.filter((id) => t.isControl(id)), t.fimOrder === 'psm' ? [P, S, M] : [S, P, M]);
    });
  });
}
