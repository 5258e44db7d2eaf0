// Bad model folders give an error that names the file and what is wrong; a folder without
// deer.json works as a plain verifier with the n-gram drafter.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, renameSync, rmSync, truncateSync, unlinkSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Engine, ModelFolderError } from '../../src/engine';
import { readModelFolder } from '../../src/engine/modelFolder';
import { CONDITIONED_MODEL, DEFAULT_MODEL, ROOT, TINY_MODEL, evalPrompts, hasModel } from './support';

const SRC = CONDITIONED_MODEL;
const temps: string[] = [];
function copy(edit: (dir: string) => void): string {
  const dir = mkdtempSync(join(tmpdir(), 'deer-folder-'));
  temps.push(dir);
  cpSync(SRC, dir, { recursive: true });
  edit(dir);
  return dir;
}
const json = (dir: string, file: string) => JSON.parse(readFileSync(join(dir, file), 'utf8'));
const write = (dir: string, file: string, value: unknown) => writeFileSync(join(dir, file), typeof value === 'string' ? value : JSON.stringify(value));

async function expectError(dir: string, file: string, pattern: RegExp): Promise<void> {
  const load = Engine.load({ modelDir: dir, threads: 1, calibrate: false });
  await assert.rejects(load, (e: unknown) => {
    assert.ok(e instanceof ModelFolderError, `expected ModelFolderError, got ${e}`);
    assert.equal(e.file, join(dir, file));
    assert.match(e.message, pattern);
    assert.ok(e.message.includes(file), 'the message names the file');
    return true;
  });
}

describe('model folder errors', { skip: !hasModel(SRC) && 'fixture missing' }, () => {
  after(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));

  const cases: { name: string; edit: (dir: string) => void; file: string; pattern: RegExp }[] = [
    { name: 'missing config.json', edit: (d) => unlinkSync(join(d, 'config.json')), file: 'config.json', pattern: /missing/ },
    { name: 'corrupt config.json', edit: (d) => write(d, 'config.json', '{"vocab_size": 5,'), file: 'config.json', pattern: /not valid JSON/ },
    { name: 'config.json without hidden_size', edit: (d) => write(d, 'config.json', { ...json(d, 'config.json'), hidden_size: undefined }), file: 'config.json', pattern: /"hidden_size" is missing/ },
    { name: 'missing tokenizer.json', edit: (d) => unlinkSync(join(d, 'tokenizer.json')), file: 'tokenizer.json', pattern: /missing/ },
    { name: 'tokenizer.json that is not a tokenizer', edit: (d) => write(d, 'tokenizer.json', { hello: 1 }), file: 'tokenizer.json', pattern: /no "model" section/ },
    { name: 'deer.json naming a missing drafter', edit: (d) => unlinkSync(join(d, 'onnx', 'drafter.onnx')), file: 'onnx/drafter.onnx', pattern: /missing.*drafters\.deer/ },
    { name: 'deer.json of an unknown format', edit: (d) => write(d, 'deer.json', { ...json(d, 'deer.json'), format: 7 }), file: 'deer.json', pattern: /unknown "format" 7/ },
    { name: 'bad fim_order', edit: (d) => write(d, 'deer.json', { ...json(d, 'deer.json'), fim_order: 'pms' }), file: 'deer.json', pattern: /fim_order/ },
    {
      name: 'a special token not in the vocabulary',
      edit: (d) => {
        const m = json(d, 'deer.json');
        m.special_tokens.mask = '<|no such token|>';
        write(d, 'deer.json', m);
      },
      file: 'deer.json',
      pattern: /mask token "<\|no such token\|>" is not in tokenizer\.json/,
    },
    {
      name: 'a mask given as an id outside the vocabulary',
      edit: (d) => {
        const m = json(d, 'deer.json');
        m.special_tokens.mask = json(d, 'config.json').vocab_size;
        write(d, 'deer.json', m);
      },
      file: 'deer.json',
      pattern: /mask id \d+ is outside the model's vocabulary \(config\.json vocab_size \d+\)/,
    },
    {
      name: 'hidden conditioning without verifier hidden states',
      edit: (d) => {
        const m = json(d, 'deer.json');
        delete m.verifier.hidden_states;
        write(d, 'deer.json', m);
      },
      file: 'deer.json',
      pattern: /conditioned on "hidden"/,
    },
    {
      name: 'tree_attention declared for a verifier without tree_mask',
      edit: (d) => write(d, 'deer.json', { ...json(d, 'deer.json'), verifier: { ...json(d, 'deer.json').verifier, tree_attention: true } }),
      file: 'onnx/model.onnx',
      pattern: /input tree_mask \(declared in deer\.json verifier\.tree_attention\) is missing/,
    },
    {
      name: 'tree_attention that is not a boolean',
      edit: (d) => write(d, 'deer.json', { ...json(d, 'deer.json'), verifier: { ...json(d, 'deer.json').verifier, tree_attention: 'yes' } }),
      file: 'deer.json',
      pattern: /verifier\.tree_attention must be true or false/,
    },
    {
      name: 'min_tokens_per_pass that is not a whole number from 1 to 8',
      edit: (d) => write(d, 'deer.json', { ...json(d, 'deer.json'), verifier: { ...json(d, 'deer.json').verifier, min_tokens_per_pass: 0.5 } }),
      file: 'deer.json',
      pattern: /verifier\.min_tokens_per_pass must be a whole number from 1 to 8/,
    },
    {
      name: 'a draft-tree budget past the engine\'s limit',
      edit: (d) => {
        const m = json(d, 'deer.json');
        m.drafters.deer.tree_budget = 1000;
        write(d, 'deer.json', m);
      },
      file: 'deer.json',
      pattern: /"tree_budget" must be at most 256 nodes, got 1000/,
    },
    { name: 'truncated verifier ONNX', edit: (d) => truncateSync(join(d, 'onnx', 'model.onnx'), 1000), file: 'onnx/model.onnx', pattern: /cannot be loaded by onnxruntime/ },
    { name: 'empty verifier ONNX', edit: (d) => truncateSync(join(d, 'onnx', 'model.onnx'), 0), file: 'onnx/model.onnx', pattern: /empty or truncated/ },
    { name: 'KV heads that disagree with config.json', edit: (d) => write(d, 'config.json', { ...json(d, 'config.json'), num_key_value_heads: 4, head_dim: 4 }), file: 'onnx/model.onnx', pattern: /KV heads but config\.json says 4/ },
    { name: 'layer count that disagrees with config.json', edit: (d) => write(d, 'config.json', { ...json(d, 'config.json'), num_hidden_layers: 3 }), file: 'onnx/model.onnx', pattern: /2 layers .* config\.json says 3/ },
    { name: 'vocab that disagrees with config.json', edit: (d) => write(d, 'config.json', { ...json(d, 'config.json'), vocab_size: 999 }), file: 'onnx/model.onnx', pattern: /vocab/ },
    { name: 'a verifier of unknown layout (the drafter graph)', edit: (d) => copyFileSync(join(d, 'onnx', 'drafter.onnx'), join(d, 'onnx', 'model.onnx')), file: 'onnx/model.onnx', pattern: /unknown layout/ },
  ];
  for (const c of cases) it(c.name, () => expectError(copy(c.edit), c.file, c.pattern));

  // Drafters made for another verifier are refused at load, naming the file and the mismatch.
  const drafterCases: { name: string; edit: (dir: string) => void; file: string; pattern: RegExp }[] = [
    { name: 'a DEER drafter of the wrong layout', edit: (d) => copyFileSync(join(d, 'onnx', 'ar.onnx'), join(d, 'onnx', 'drafter.onnx')), file: 'onnx/drafter.onnx', pattern: /unknown layout/ },
    {
      name: 'a DEER drafter with another vocabulary',
      edit: (d) => {
        copyFileSync(join(TINY_MODEL, 'onnx', 'drafter.onnx'), join(d, 'onnx', 'drafter.onnx'));
        const m = json(d, 'deer.json');
        m.drafters.deer.conditioning = ['context'];
        write(d, 'deer.json', m);
      },
      file: 'onnx/drafter.onnx',
      pattern: new RegExp(`logits have vocabulary ${json(TINY_MODEL, 'config.json').vocab_size} but config\\.json says vocab_size 512`),
    },
    {
      name: 'a DEER drafter with a reduced head made for another vocabulary',
      edit: (d) => {
        copyFileSync(join(ROOT, 'test', 'fixtures', 'samples', 'reduced-head-drafter.onnx'), join(d, 'onnx', 'drafter.onnx'));
        const m = json(d, 'deer.json');
        m.drafters.deer.conditioning = ['context'];
        write(d, 'deer.json', m);
      },
      file: 'onnx/drafter.onnx',
      pattern: /output head_ids holds token id \d+, outside config\.json vocab_size 512: the drafter was made for another verifier/,
    },
    {
      name: 'verifier hidden states of another size than deer.json says',
      edit: (d) => write(d, 'deer.json', { ...json(d, 'deer.json'), verifier: { ...json(d, 'deer.json').verifier, hidden_states: { output: 'hidden_states', size: 16 } } }),
      file: 'onnx/model.onnx',
      pattern: /hidden_states .*deer\.json verifier\.hidden_states\.size says 16/,
    },
    {
      name: 'a mask token outside the vocabulary',
      edit: (d) => write(d, 'config.json', { ...json(d, 'config.json'), vocab_size: 4 }),
      file: 'deer.json',
      pattern: /mask token "<\|mask\|>" has id 4, outside .*vocab_size 4/,
    },
    {
      name: 'a drafter window longer than the drafter graph takes',
      edit: (d) => {
        const m = json(d, 'deer.json');
        m.drafters.deer.context_window = 600;
        write(d, 'deer.json', m);
      },
      file: 'onnx/drafter.onnx',
      pattern: /trial pass failed \(600 context \+ 16 block positions/,
    },
  ];
  for (const c of drafterCases) it(`${c.name}: refused at load`, () => expectError(copy(c.edit), c.file, c.pattern));

  it('a drafter that fails at run time falls back to ngram for that model, said once', async () => {
    const dir = copy((d) => copyFileSync(join(d, 'onnx', 'drafter.onnx'), join(d, 'onnx', 'ar.onnx')));
    const engine = await Engine.load({ modelDir: dir, threads: 1, calibrate: false });
    try {
      const prefix = 'def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n';
      const base = await engine.complete({ prefix, maxNewTokens: 12, drafter: 'none' });
      const chunks: string[] = [];
      const r = await engine.complete({ prefix, maxNewTokens: 12, drafter: 'ar' }, { onChunk: (t) => chunks.push(t) });
      assert.equal(r.warnings?.length, 1);
      assert.match(r.warnings![0], /ar drafter failed: .*ar\.onnx.*uses ngram from now on/);
      assert.equal(r.stats.drafter, 'ngram');
      assert.equal(r.text, base.text, 'the fallback is as lossless as any drafter');
      assert.equal(chunks.join(''), r.text);
      const again = await engine.complete({ prefix, maxNewTokens: 12, drafter: 'ar' });
      assert.equal(again.warnings, undefined, 'said once');
      assert.equal(again.stats.drafter, 'ngram');
      assert.deepEqual(again.tokens, base.tokens);
    } finally {
      await engine.dispose();
    }
  });

  it('the draft-tree budget deer.json declares is the one deer requests use when they do not say', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'deer-folder-'));
    temps.push(dir);
    cpSync(TINY_MODEL, dir, { recursive: true });
    const m = json(dir, 'deer.json');
    m.drafters.deer.tree_budget = 3;
    write(dir, 'deer.json', m);
    const engine = await Engine.load({ modelDir: dir, threads: 1, spinning: false });
    try {
      assert.equal(engine.info.treeBudget, 3);
      const prefix = evalPrompts('mbpp-py-reworded.jsonl', 1)[0].prompt;
      for (const [treeBudget, most] of [[undefined, 3], [6, 6]] as const) {
        const r = await engine.complete({ prefix, maxNewTokens: 24, drafter: 'deer', treeBudget, adaptiveBlock: false });
        assert.ok(r.stats.trees);
        const perPass = (r.stats.draftedTokens ?? 0) / r.stats.passes;
        assert.ok(perPass <= most && perPass > most - 1.5, `${perPass} nodes per pass, budget ${most}`);
      }
    } finally {
      await engine.dispose();
    }
  });

  it('a folder without deer.json is a plain verifier with the n-gram drafter', async () => {
    const dir = copy((d) => {
      unlinkSync(join(d, 'deer.json'));
      unlinkSync(join(d, 'onnx', 'drafter.onnx'));
    });
    const spec = readModelFolder(dir);
    assert.equal(spec.hasManifest, false);
    const engine = await Engine.load({ modelDir: dir, threads: 1, calibrate: false });
    try {
      assert.deepEqual(engine.info.drafters, ['none', 'ngram']);
      assert.equal(engine.info.defaultDrafter, 'ngram');
      assert.equal(engine.info.fim, true, 'FIM tokens found by their usual spellings');
      const prefix = evalPrompts('mbpp-ts-reworded.jsonl', 1)[0]?.prompt ?? 'function f() {\n';
      const a = await engine.complete({ prefix, maxNewTokens: 12, drafter: 'none' });
      const b = await engine.complete({ prefix, maxNewTokens: 12 });
      assert.equal(b.stats.drafter, 'ngram');
      assert.deepEqual(b.tokens, a.tokens);
    } finally {
      await engine.dispose();
    }
  });

  // optimum-cli export onnx writes model.onnx next to config.json (test/hf runs real exports)
  it('a folder without deer.json finds the verifier at the top, as optimum-cli writes it', async () => {
    const dir = copy((d) => {
      unlinkSync(join(d, 'deer.json'));
      renameSync(join(d, 'onnx'), join(d, 'elsewhere'));
      copyFileSync(join(d, 'elsewhere', 'model.onnx'), join(d, 'model.onnx'));
    });
    assert.equal(readModelFolder(dir).verifier.file, join(dir, 'model.onnx'));
    const engine = await Engine.load({ modelDir: dir, threads: 1, calibrate: false });
    try {
      assert.deepEqual(engine.info.drafters, ['none', 'ngram']);
      await assert.rejects(engine.complete({ prefix: 'x = ', maxNewTokens: 2, drafter: 'deer' }), /drafter "deer" is not available for .*: the folder has no deer\.json, so no drafters\.deer .*training\//);
    } finally {
      await engine.dispose();
    }
  });

  it('a folder without deer.json nor a verifier names the places it looked', async () => {
    const dir = copy((d) => {
      unlinkSync(join(d, 'deer.json'));
      rmSync(join(d, 'onnx'), { recursive: true });
    });
    await expectError(dir, 'model.onnx', /without deer\.json the verifier must be one of onnx\/model\.onnx, .*model\.onnx.*optimum-cli/);
  });

  it('a legacy merged Optimum decoder is refused with how to re-export', async () => {
    const dir = copy((d) => {
      unlinkSync(join(d, 'deer.json'));
      renameSync(join(d, 'onnx', 'model.onnx'), join(d, 'onnx', 'decoder_model_merged.onnx'));
    });
    await expectError(dir, 'onnx/decoder_model_merged.onnx', /legacy Optimum export .*use_cache_branch.*without --legacy/);
  });

  it('a missing folder', async () => {
    await assert.rejects(Engine.load({ modelDir: '/nonexistent/model' }), /model folder not found/);
  });
});

// --- a verifier with a learned position table, made from the tiny model by protobuf surgery ---

const varint = (n: number): Buffer => {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return Buffer.from(out);
};
const lengthField = (no: number, payload: Buffer): Buffer => Buffer.concat([varint(no * 8 + 2), varint(payload.length), payload]);
const varintField = (no: number, v: number): Buffer => Buffer.concat([varint(no * 8), varint(v)]);
const str = (no: number, s: string) => lengthField(no, Buffer.from(s, 'utf8'));

/** Length-delimited and varint fields of one protobuf message: [field number, whole field bytes, payload]. */
function split(msg: Buffer): { no: number; raw: Buffer; payload?: Buffer }[] {
  const out: { no: number; raw: Buffer; payload?: Buffer }[] = [];
  let pos = 0;
  const read = () => {
    let r = 0;
    let mul = 1;
    for (;;) {
      const b = msg[pos++];
      r += (b & 0x7f) * mul;
      if (b < 0x80) return r;
      mul *= 128;
    }
  };
  while (pos < msg.length) {
    const start = pos;
    const key = read();
    const wire = key & 7;
    let payload: Buffer | undefined;
    if (wire === 0) read();
    else if (wire === 2) {
      const len = read();
      payload = msg.subarray(pos, pos + len);
      pos += len;
    } else pos += wire === 1 ? 8 : 4;
    out.push({ no: Math.floor(key / 8), raw: msg.subarray(start, pos), payload });
  }
  return out;
}

/**
 * The verifier `file` with a learned position embedding of `positions` rows added to its token
 * embedding (zeros, so its outputs are unchanged while positions stay inside the table).
 */
function withPositionTable(file: string, positions: number, width: number): Buffer {
  const model = split(readFileSync(file));
  const graphField = model.find((f) => f.no === 7)!;
  const graph = split(graphField.payload!);
  const out: Buffer[] = [];
  let done = false;
  for (const f of graph) {
    if (f.no !== 1 || done) {
      out.push(f.raw);
      continue;
    }
    const node = split(f.payload!);
    const ins = node.filter((x) => x.no === 1).map((x) => x.payload!.toString());
    const op = node.find((x) => x.no === 4)?.payload?.toString();
    if (op !== 'Gather' || ins[1] !== 'input_ids') {
      out.push(f.raw);
      continue;
    }
    const embedded = node.find((x) => x.no === 2)!.payload!.toString();
    const tokens = `${embedded}/tokens`;
    out.push(lengthField(1, Buffer.concat(node.map((x) => (x.no === 2 ? str(2, tokens) : x.raw)))));
    out.push(lengthField(1, Buffer.concat([str(1, 'test.position_table'), str(1, 'position_ids'), str(2, 'test.positions'), str(4, 'Gather')])));
    out.push(lengthField(1, Buffer.concat([str(1, tokens), str(1, 'test.positions'), str(2, embedded), str(4, 'Add')])));
    done = true;
  }
  assert.ok(done, 'the token embedding Gather was found');
  const table = Buffer.concat([varintField(1, positions), varintField(1, width), varintField(2, 1), str(8, 'test.position_table'), lengthField(9, Buffer.alloc(positions * width * 4))]);
  out.push(lengthField(5, table));
  return Buffer.concat(model.map((f) => (f.no === 7 ? lengthField(7, Buffer.concat(out)) : f.raw)));
}

describe('a verifier whose position table is smaller than config.json says', { skip: !hasModel(TINY_MODEL) && 'fixture missing' }, () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  const folder = (tablePositions: number, configPositions: number): string => {
    const dir = mkdtempSync(join(tmpdir(), 'deer-positions-'));
    dirs.push(dir);
    cpSync(TINY_MODEL, dir, { recursive: true });
    const config = json(dir, 'config.json');
    writeFileSync(join(dir, 'onnx', 'model.onnx'), withPositionTable(join(TINY_MODEL, 'onnx', 'model.onnx'), tablePositions, config.hidden_size));
    write(dir, 'config.json', { ...config, max_position_embeddings: configPositions });
    return dir;
  };

  it('is refused at load, naming the graph and both numbers', () =>
    expectError(folder(64, 256), 'onnx/model.onnx', /position ids up in a table of 64 positions \(test\.position_table\) but config\.json max_position_embeddings says 256/));

  it('loads and runs when the table covers the configured positions', async () => {
    const prefix = 'def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n';
    const load = (dir: string) => Engine.load({ modelDir: dir, threads: 1, calibrate: false });
    const withTable = await load(folder(64, 64));
    const reference = await load(TINY_MODEL);
    try {
      const a = await withTable.complete({ prefix, maxNewTokens: 12, drafter: 'none' });
      const b = await reference.complete({ prefix, maxNewTokens: 12, drafter: 'none' });
      assert.deepEqual(a.tokens, b.tokens, 'the zero table changes nothing: the doctored graph is a working verifier');
    } finally {
      await withTable.dispose();
      await reference.dispose();
    }
  });
});
