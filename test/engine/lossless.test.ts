// Lossless: with every drafter, greedy output is token-for-token the verifier's own (drafter 'none'),
// on real prompts from ../shared/eval, with real ONNX models.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { DrafterName, Engine } from '../../src/engine';
import { CONDITIONED_MODEL, DEFAULT_MODEL, evalPrompts, hasModel, TINY_MODEL } from './support';

interface Case {
  dir: string;
  prompts: { name: string; prefix: string; suffix?: string }[];
  maxNewTokens: number;
}

const ts = evalPrompts('mbpp-ts-reworded.jsonl', 3);
const py = evalPrompts('mbpp-py-reworded.jsonl', 3);
const fromEval = (rows: { name: string; prompt: string }[]) => rows.map((r) => ({ name: r.name, prefix: r.prompt }));
// A fill-in-the-middle case: the cursor inside a function, the rest of the file after it.
const fim = py.slice(0, 1).map((r) => ({ name: `${r.name} (FIM)`, prefix: r.prompt, suffix: '\n\ndef check():\n    pass\n' }));

const cases: Case[] = [
  { dir: TINY_MODEL, prompts: [...fromEval(ts), ...fromEval(py), ...fim], maxNewTokens: 48 },
  { dir: CONDITIONED_MODEL, prompts: [...fromEval(ts.slice(0, 2)), ...fim], maxNewTokens: 32 },
  { dir: DEFAULT_MODEL, prompts: [...fromEval(ts.slice(0, 2)), ...fromEval(py.slice(0, 2))], maxNewTokens: 24 },
];

for (const c of cases) {
  const name = c.dir.split('/').slice(-1)[0];
  const skip = !hasModel(c.dir) ? 'model missing' : c.prompts.length === 0 ? '../shared/eval missing' : false;
  describe(`lossless greedy (${name})`, { skip }, () => {
    let engine: Engine;
    before(async () => {
      engine = await Engine.load({ modelDir: c.dir, threads: 1, spinning: false, calibrate: false });
    });
    after(async () => engine?.dispose());

    it('every drafter writes exactly what plain decoding writes', async (t) => {
      const inexact = (engine.info.warnings ?? []).find((w) => w.includes('per tensor'));
      if (inexact) {
        // Not exact by construction (docs/engine.md, "Exactness and int8 models"): reported, not tested.
        t.skip(inexact);
        return;
      }
      for (const p of c.prompts) {
        const base = await engine.complete({ prefix: p.prefix, suffix: p.suffix, maxNewTokens: c.maxNewTokens, drafter: 'none' });
        assert.ok(base.tokens.length > 0 || base.stopReason === 'eos', `${p.name}: no tokens`);
        for (const d of engine.info.drafters.filter((x): x is DrafterName => x !== 'none')) {
          const variants = d === 'ngram' ? [{ blockSize: 4 }, {}] : d === 'deer' ? [{}, { lookup: true }, { adaptiveBlock: false }] : [{}];
          for (const v of variants) {
            const r = await engine.complete({ prefix: p.prefix, suffix: p.suffix, maxNewTokens: c.maxNewTokens, drafter: d, ...v });
            assert.deepEqual(r.tokens, base.tokens, `${p.name}: ${d} ${JSON.stringify(v)} differs from none`);
            assert.equal(r.text, base.text);
            assert.equal(r.stopReason, base.stopReason);
            assert.equal(r.stats.newTokens, base.stats.newTokens);
          }
        }
      }
    });
  });
}

describe('int8 verifiers (models/default when it is quantize_dynamic int8)', () => {
  const file = `${DEFAULT_MODEL}/onnx/model.onnx`;
  const quantized = existsSync(file) && readFileSync(file).includes('DynamicQuantizeLinear');
  it('loads exact by default and warns when told to keep per-tensor quantization', { skip: !quantized && 'no int8 default model' }, async () => {
    const exact = await Engine.load({ modelDir: DEFAULT_MODEL, threads: 1, calibrate: false });
    const raw = await Engine.load({ modelDir: DEFAULT_MODEL, threads: 1, calibrate: false, exactInt8: false });
    try {
      assert.deepEqual(exact.info.warnings, []);
      assert.ok(raw.info.warnings?.some((w) => w.includes('per tensor')));
      // same weights, so plain decoding starts out the same way
      const prompt = evalPrompts('mbpp-py-reworded.jsonl', 1)[0]?.prompt ?? 'def f(x):\n';
      const a = await exact.complete({ prefix: prompt, maxNewTokens: 4, drafter: 'none' });
      const b = await raw.complete({ prefix: prompt, maxNewTokens: 4, drafter: 'none' });
      assert.equal(a.tokens.length, b.tokens.length);
    } finally {
      await exact.dispose();
      await raw.dispose();
    }
  });
});
