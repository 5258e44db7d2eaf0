// Lossless: with every drafter, greedy output is token-for-token the verifier's own (drafter 'none'),
// on real prompts from ../shared/eval (or, in a plain clone, the repository's own samples), with
// real ONNX models.
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CompletionRequest, DrafterName, Engine } from '../../src/engine';
import { CONDITIONED_MODEL, DEFAULT_MODEL, evalPrompts, hasModel, INT8_ACTIVATIONS_VERIFIER, INT8_MODEL, PER_TENSOR_VERIFIER, TINY_MODEL } from './support';

interface Case {
  dir: string;
  prompts: { name: string; prefix: string; suffix?: string }[];
  maxNewTokens: number;
  /** Also run deer with draft trees of each of TREE_BUDGETS nodes (the fixture and the default model). */
  treeBudgets?: boolean;
  /** Load the engine with this many prompt-lookup branches per tree, and run deer+lookup at each of TREE_BUDGETS. */
  lookupTreeBranches?: number;
}

const ts = evalPrompts('mbpp-ts-reworded.jsonl', 3);
const py = evalPrompts('mbpp-py-reworded.jsonl', 3);
const fromEval = (rows: { name: string; prompt: string }[]) => rows.map((r) => ({ name: r.name, prefix: r.prompt }));
// A fill-in-the-middle case: the cursor inside a function, the rest of the file after it.
const fim = py.slice(0, 1).map((r) => ({ name: `${r.name} (FIM)`, prefix: r.prompt, suffix: '\n\ndef check():\n    pass\n' }));

/** Node budgets per pass that greedy output must not depend on. */
const TREE_BUDGETS = [1, 4, 16, 32, 64];

const cases: Case[] = [
  { dir: TINY_MODEL, prompts: [...fromEval(ts), ...fromEval(py), ...fim], maxNewTokens: 48, treeBudgets: true },
  // weight-only int8 (float activations): exact by construction, as shipped models are
  { dir: INT8_MODEL, prompts: [...fromEval(ts), ...fromEval(py), ...fim], maxNewTokens: 48 },
  { dir: CONDITIONED_MODEL, prompts: [...fromEval(ts.slice(0, 2)), ...fim], maxNewTokens: 32 },
  { dir: DEFAULT_MODEL, prompts: [...fromEval(ts.slice(0, 2)), ...fromEval(py.slice(0, 2))], maxNewTokens: 24, treeBudgets: true },
  { dir: DEFAULT_MODEL, prompts: [...fromEval(ts.slice(2, 3)), ...fromEval(py.slice(2, 3))], maxNewTokens: 48, lookupTreeBranches: 3 },
];

for (const c of cases) {
  const name = c.dir.split('/').slice(-1)[0] + (c.lookupTreeBranches ? `, ${c.lookupTreeBranches} lookup branches per tree` : '');
  const skip = !hasModel(c.dir) ? 'model missing' : false;
  describe(`lossless greedy (${name})`, { skip }, () => {
    let engine: Engine;
    before(async () => {
      engine = await Engine.load({ modelDir: c.dir, threads: 1, spinning: false, calibrate: false, lookupTreeBranches: c.lookupTreeBranches });
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
        assert.ok(base.tokens.length > 0 || base.stopReason === 'eos' || base.stopReason === 'control', `${p.name}: no tokens`);
        for (const d of engine.info.drafters.filter((x): x is DrafterName => x !== 'none')) {
          const variants: Partial<CompletionRequest>[] =
            d === 'ngram'
              ? [{ blockSize: 4 }, {}]
              : d === 'deer'
                ? [
                    {},
                    { lookup: true },
                    { treeBudget: 0 },
                    { treeBudget: 0, lookup: true },
                    { treeBudget: 0, adaptiveBlock: false },
                    ...(c.treeBudgets ? TREE_BUDGETS.map((b) => ({ treeBudget: b, adaptiveBlock: false })) : []),
                    ...(c.lookupTreeBranches ? TREE_BUDGETS.map((b) => ({ treeBudget: b, lookup: true })) : []),
                  ]
                : [{}];
          for (const v of variants) {
            const r = await engine.complete({ prefix: p.prefix, suffix: p.suffix, maxNewTokens: c.maxNewTokens, drafter: d, ...v });
            // draft trees are verified whenever the verifier takes tree_mask (else chains: the fallback)
            assert.equal(r.stats.trees, d === 'deer' && v.treeBudget !== 0 && engine.info.treeAttention === true, `${p.name}: ${d} ${JSON.stringify(v)} trees`);
            assert.deepEqual(r.tokens, base.tokens, `${p.name}: ${d} ${JSON.stringify(v)} differs from none`);
            assert.equal(r.text, base.text);
            assert.equal(r.stopReason, base.stopReason);
            // A pass that runs past a stop rule decodes tokens that are then cut: counted, not returned.
            if (['rule', 'stop', 'repeat'].includes(r.stopReason)) assert.ok(r.stats.newTokens >= r.tokens.length, `${p.name}: ${d} newTokens`);
            else assert.equal(r.stats.newTokens, base.stats.newTokens, `${p.name}: ${d} ${JSON.stringify(v)} newTokens`);
          }
        }
      }
    });
  });
}

describe('int8 verifiers', () => {
  it('loads weight-only int8 without a warning', async () => {
    const engine = await Engine.load({ modelDir: INT8_MODEL, threads: 1, calibrate: false });
    try {
      assert.deepEqual(engine.info.warnings, []);
    } finally {
      await engine.dispose();
    }
  });

  it('warns at load when an int8-compute verifier is not row-independent on this CPU', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'deer-int8-rows-'));
    try {
      cpSync(TINY_MODEL, dir, { recursive: true });
      copyFileSync(INT8_ACTIVATIONS_VERIFIER, join(dir, 'onnx', 'model.onnx')); // per-tensor scales: rows depend on each other
      const manifest = JSON.parse(readFileSync(join(dir, 'deer.json'), 'utf8'));
      manifest.verifier.min_tokens_per_pass = 2;
      writeFileSync(join(dir, 'deer.json'), JSON.stringify(manifest));
      const engine = await Engine.load({ modelDir: dir, threads: 1, calibrate: false });
      try {
        const warning = (engine.info.warnings ?? []).find((w) => w.includes('on this CPU'));
        assert.ok(warning, JSON.stringify(engine.info.warnings));
        assert.match(warning, /without --int8-compute/);
      } finally {
        await engine.dispose();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const [sample, op] of [
    [PER_TENSOR_VERIFIER, 'DynamicQuantizeLinear -> MatMulInteger'],
    [INT8_ACTIVATIONS_VERIFIER, 'DynamicQuantizeMatMul'],
  ]) {
    it(`names a per-tensor quantized verifier (${op}) and what to do about it, and still loads it`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'deer-per-tensor-'));
      try {
        cpSync(TINY_MODEL, dir, { recursive: true });
        const file = join(dir, 'onnx', 'model.onnx');
        copyFileSync(sample, file);
        const engine = await Engine.load({ modelDir: dir, threads: 1, calibrate: false });
        try {
          const [warning, ...rest] = engine.info.warnings ?? [];
          assert.deepEqual(rest, []);
          assert.ok(warning.includes(`quantizes activations per tensor (${op})`), warning);
          assert.ok(warning.includes(file), warning);
          assert.match(warning, /weight-only int8 \(python -m training\.export .*--quantize\)/);
          const r = await engine.complete({ prefix: 'def add(a, b):\n', maxNewTokens: 4, drafter: 'none' });
          assert.ok(r.tokens.length > 0 || r.stopReason === 'eos' || r.stopReason === 'control');
        } finally {
          await engine.dispose();
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

describe('token log-probabilities (tiny model)', { skip: !hasModel(TINY_MODEL) && 'model missing' }, () => {
  let engine: Engine;
  before(async () => {
    engine = await Engine.load({ modelDir: TINY_MODEL, threads: 1, spinning: false, calibrate: false });
  });
  after(async () => engine?.dispose());

  it('are the same with every drafter: each comes from the pass row that predicted its token', async () => {
    const prompt = { prefix: ts[0].prompt, maxNewTokens: 32, logprobs: true };
    const base = await engine.complete({ ...prompt, drafter: 'none' });
    assert.equal(base.tokenLogprobs?.length, base.tokens.length);
    assert.ok(base.tokenLogprobs!.every((lp) => lp <= 0 && lp > -50), `out of range: ${base.tokenLogprobs}`);
    assert.equal((await engine.complete({ prefix: ts[0].prompt, maxNewTokens: 8, drafter: 'none' })).tokenLogprobs, undefined);
    const variants = engine.info.drafters.filter((x) => x !== 'none').map((d) => ({ drafter: d, treeBudget: 0 }));
    if (engine.info.treeAttention && engine.info.drafters.includes('deer')) variants.push({ drafter: 'deer', treeBudget: 24 });
    for (const v of variants) {
      const r = await engine.complete({ ...prompt, ...v });
      assert.deepEqual(r.tokens, base.tokens);
      if (v.treeBudget > 0) assert.equal(r.stats.trees, true, 'the tree variant verified no trees');
      r.tokenLogprobs!.forEach((lp, i) => assert.ok(Math.abs(lp - base.tokenLogprobs![i]) < 1e-3, `${JSON.stringify(v)}: token ${i}: ${lp} vs ${base.tokenLogprobs![i]}`));
    }
  });
});
