// "Any Hugging Face ONNX decoder plugs in": decoders exported as a user exports them
// (optimum-cli export onnx --task text-generation-with-past, made by training/hf_exports.py into
// .cache/hf-exports by `npm run test:hf`) load without deer.json, and every drafter they have
// gives the verifier's own greedy output.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Engine } from '../../src/engine';
import { readModelFolder } from '../../src/engine/modelFolder';
import { DEFAULT_MODEL, evalPrompts } from '../engine/support';

const EXPORTS = process.env.DEER_HF_EXPORTS ?? resolve(__dirname, '..', '..', '..', '.cache', 'hf-exports');
const MODELS = ['llama-random', 'qwen2-random', 'default-hf'];

const prompts = [
  ...evalPrompts('mbpp-ts-reworded.jsonl', 2).map((r) => ({ prefix: r.prompt, suffix: '' })),
  { prefix: 'def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n', suffix: '\n\ndef mul(a, b):\n    return a * b\n' },
];

for (const name of MODELS) {
  const dir = join(EXPORTS, name);
  describe(`Optimum export ${name}`, () => {
    let engine: Engine;
    before(async () => {
      assert.ok(existsSync(join(dir, 'model.onnx')), `${dir}/model.onnx is missing: npm run test:hf exports it (training/hf_exports.sh)`);
      engine = await Engine.load({ modelDir: dir, threads: 1, calibrate: false });
    });
    after(() => engine?.dispose());

    it('loads from config.json and the graph alone (model.onnx at the top, no deer.json)', () => {
      const spec = readModelFolder(dir);
      assert.equal(spec.hasManifest, false);
      assert.equal(spec.verifier.file, join(dir, 'model.onnx'));
      const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      assert.equal(spec.verifier.numLayers, config.num_hidden_layers);
      assert.deepEqual(engine.info.drafters, ['none', 'ngram']);
      assert.equal(engine.info.defaultDrafter, 'ngram');
      assert.equal(engine.info.treeAttention, false, 'a plain export verifies chains');
      assert.equal(engine.info.fim, true, "FIM tokens found in the embedded model's tokenizer");
    });

    it('ngram gives the same tokens as plain decoding', async (t) => {
      let written = 0;
      for (const p of prompts) {
        const req = { ...p, maxNewTokens: 32, stopOnRepeat: false };
        const plain = await engine.complete({ ...req, drafter: 'none' });
        const ngram = await engine.complete({ ...req, drafter: 'ngram' });
        assert.deepEqual(ngram.tokens, plain.tokens);
        assert.equal(ngram.text, plain.text);
        written += plain.tokens.length;
        t.diagnostic(`${plain.tokens.length} tokens (${plain.stopReason}), ngram ${ngram.stats.meanAccepted.toFixed(2)} tokens/pass`);
      }
      // a random model may write EOS at once on one prompt, not on all of them
      assert.ok(written >= 32, `the model wrote ${written} tokens in all`);
    });

    it('deer is refused with the reason and where to get a drafter', async () => {
      await assert.rejects(engine.complete({ prefix: 'x = ', maxNewTokens: 4, drafter: 'deer' }), /drafter "deer" is not available .*no deer\.json.*training\//);
    });
  });
}

// The embedded model's small autoregressive drafter shares the verifier's tokenizer, so a deer.json
// next to the Optimum export of the same verifier makes it usable: drafters plug into such folders.
// (Its DEER drafter is conditioned on hidden states, which an Optimum graph does not output.)
describe('Optimum export default-hf with a deer.json naming a drafter', () => {
  const src = join(EXPORTS, 'default-hf');
  let dir = '';
  let engine: Engine;
  before(async () => {
    assert.ok(existsSync(join(src, 'model.onnx')), `${src}/model.onnx is missing: npm run test:hf exports it`);
    dir = mkdtempSync(join(tmpdir(), 'deer-hf-ar-'));
    for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.onnx']) copyFileSync(join(src, f), join(dir, f));
    mkdirSync(join(dir, 'onnx'));
    copyFileSync(join(DEFAULT_MODEL, 'onnx', 'ar.onnx'), join(dir, 'onnx', 'ar.onnx'));
    const shipped = JSON.parse(readFileSync(join(DEFAULT_MODEL, 'deer.json'), 'utf8'));
    const manifest = { format: 1, verifier: { file: 'model.onnx' }, drafters: { ar: shipped.drafters.ar }, special_tokens: shipped.special_tokens, fim_order: 'psm' };
    writeFileSync(join(dir, 'deer.json'), JSON.stringify(manifest));
    engine = await Engine.load({ modelDir: dir, threads: 1, calibrate: false });
  });
  after(async () => {
    await engine?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('ar gives the same tokens as plain decoding and accepts drafted tokens', async (t) => {
    assert.deepEqual(engine.info.drafters, ['none', 'ngram', 'ar']);
    let accepted = 0;
    for (const p of prompts) {
      const req = { ...p, maxNewTokens: 32, stopOnRepeat: false };
      const plain = await engine.complete({ ...req, drafter: 'none' });
      // full blocks: the block policy may otherwise stop drafting where it does not pay on this machine
      const ar = await engine.complete({ ...req, drafter: 'ar', adaptiveBlock: false });
      assert.equal(ar.stats.drafter, 'ar');
      assert.deepEqual(ar.tokens, plain.tokens);
      accepted += ar.stats.newTokens - ar.stats.passes;
      t.diagnostic(`${plain.tokens.length} tokens, ar ${ar.stats.meanAccepted.toFixed(2)} tokens/pass`);
    }
    assert.ok(accepted > 0, 'the drafter trained for this verifier got drafted tokens accepted');
  });
});

// A DEER drafter trained for a foreign verifier, as a user trains one for their model
// (training/hf_drafter.py: distilled from the transformers model, context-only, the mask token an
// embedding row the tokenizer does not use): the Optimum export with it gives the verifier's own
// output and gets drafted tokens accepted.
describe('Optimum export qwen2-random with a DEER drafter trained for it (training/hf_drafter.py)', () => {
  const dir = join(EXPORTS, 'qwen2-random-deer');
  let engine: Engine;
  before(async () => {
    assert.ok(existsSync(join(dir, 'deer.json')), `${dir}/deer.json is missing: npm run test:hf trains it (training/hf_exports.sh)`);
    engine = await Engine.load({ modelDir: dir, threads: 1, calibrate: false });
  });
  after(() => engine?.dispose());

  it('loads with deer.json: the mask is an unused embedding row given by id', () => {
    const spec = readModelFolder(dir);
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    const tokenizer = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
    const tokenizerSize = Object.keys(tokenizer.model.vocab).length;
    assert.equal(spec.hasManifest, true);
    assert.equal(spec.deer?.conditioning.join(), 'context');
    assert.equal(typeof spec.special.mask, 'number');
    assert.ok((spec.special.mask as number) >= tokenizerSize && (spec.special.mask as number) < config.vocab_size);
    assert.deepEqual(engine.info.drafters, ['none', 'ngram', 'deer']);
  });

  it('deer gives the same tokens as plain decoding and accepts drafted tokens', async (t) => {
    let accepted = 0;
    for (const p of prompts) {
      const req = { ...p, maxNewTokens: 32, stopOnRepeat: false };
      const plain = await engine.complete({ ...req, drafter: 'none' });
      for (const lookup of [false, true]) {
        const deer = await engine.complete({ ...req, drafter: 'deer', lookup, adaptiveBlock: false });
        assert.deepEqual(deer.tokens, plain.tokens, `lookup ${lookup}`);
        assert.equal(deer.text, plain.text);
        if (!lookup) accepted += deer.stats.acceptedHistogram.reduce((sum, passes, n) => sum + passes * n, 0);
        t.diagnostic(`${plain.tokens.length} tokens, deer${lookup ? '+lookup' : ''} ${deer.stats.meanAccepted.toFixed(2)} tokens/pass`);
      }
    }
    assert.ok(accepted > 0, 'no drafted token was accepted');
  });
});
