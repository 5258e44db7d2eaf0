// "Any Hugging Face ONNX decoder plugs in": decoders exported as a user exports them
// (optimum-cli export onnx --task text-generation-with-past, made by training/hf_exports.py into
// .cache/hf-exports by `npm run test:hf`) load without deer.json, and every drafter they have
// gives the verifier's own greedy output.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Engine } from '../../src/engine';
import { readModelFolder } from '../../src/engine/modelFolder';
import { evalPrompts } from '../engine/support';

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
