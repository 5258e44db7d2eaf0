// Token healing: a prefix that ends in a blank or a half-typed word is completed as the model
// would continue the whole token, on the embedded model and real prompts.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Engine, healingText } from '../../src/engine';
import { readModelFolder } from '../../src/engine/modelFolder';
import { DeerTokenizer } from '../../src/engine/tokenizer';
import { DEFAULT_MODEL, evalPrompts, hasModel } from './support';

describe('healingText', () => {
  it('takes trailing whitespace (with the line break before an indent) or the word being typed', () => {
    assert.equal(healingText('  return '), ' ');
    assert.equal(healingText('if (x) {\n    '), '\n    ');
    assert.equal(healingText('def f():\n'), '\n');
    assert.equal(healingText('  return tot'), ' tot');
    assert.equal(healingText('foo.ba'), 'ba');
    assert.equal(healingText('call(a'), 'a');
    assert.equal(healingText('call('), '');
    assert.equal(healingText('x = 42'), ' 42');
    assert.equal(healingText(''), '');
  });
});

describe('token healing (embedded model)', { skip: !hasModel(DEFAULT_MODEL) && 'models/default missing' }, () => {
  let engine: Engine;
  const prompts = [...evalPrompts('mbpp-ts-reworded.jsonl', 4), ...evalPrompts('mbpp-py-reworded.jsonl', 4)].map((p) => p.prompt);

  before(async () => {
    engine = await Engine.load({ modelDir: DEFAULT_MODEL, threads: 1, spinning: false });
  });
  after(async () => engine?.dispose());

  it('the tokenizer can spell any typed text again; healing ids agree with what is owed', () => {
    const tok = new DeerTokenizer(readModelFolder(DEFAULT_MODEL));
    assert.ok(tok.canHeal);
    const ids = tok.healingIds(' ');
    const [spaceReturn] = tok.encode(' return');
    const [bareReturn] = tok.encode('return');
    assert.ok(ids.has(spaceReturn), '" return" starts with the owed blank');
    assert.ok(!ids.has(bareReturn), '"return" does not');
    for (const id of tok.healingIds('\n    ')) {
      const text = tok.tokenText(id);
      assert.ok(tok.special.eos.has(id) || text.startsWith('\n    ') || '\n    '.startsWith(text), JSON.stringify(text));
    }
  });

  it("a prefix cut inside one of the model's own tokens continues exactly as the model did, with every drafter", async () => {
    const tok = new DeerTokenizer(readModelFolder(DEFAULT_MODEL));
    const N = 32;
    const checked = { blank: 0, word: 0 };
    for (const prompt of prompts) {
      const g = await engine.complete({ prefix: prompt, maxNewTokens: N, drafter: 'none', heal: false, stopOnRepeat: false });
      for (let k = 1; k < g.tokens.length - 4; k++) {
        // Type the first k tokens and all but the last character of token k.
        const text = tok.tokenText(g.tokens[k]);
        const typed = prompt + tok.decode(g.tokens.slice(0, k));
        const partial = text.slice(0, -1);
        if (partial.length === 0 || healingText(typed + partial) !== partial) continue;
        // Only where the tokenizer splits the typed text as the model wrote it (the prompts then agree).
        if (tok.encode(typed).join() !== [...tok.encode(prompt), ...g.tokens.slice(0, k)].join()) continue;
        const want = g.text.slice(typed.length - prompt.length + partial.length);
        for (const drafter of ['none', 'deer'] as const) {
          const r = await engine.complete({ prefix: typed + partial, maxNewTokens: N - k, drafter, lookup: true, stopOnRepeat: false });
          assert.equal(r.text, want, `${drafter}: after ${JSON.stringify(typed.slice(-30) + partial)}`);
          assert.equal(r.healed, partial);
          assert.equal(tok.decode(r.tokens), partial + r.text, 'the result tokens spell the healed text, then the output');
        }
        checked[/\S/.test(partial) ? 'word' : 'blank']++;
      }
    }
    assert.ok(checked.blank >= 2 && checked.word >= 2, `too few cases: ${JSON.stringify(checked)}`);
  });

  it('whatever the model would have written, the tokens spell the healed end of the prefix first', async () => {
    const tok = new DeerTokenizer(readModelFolder(DEFAULT_MODEL));
    for (const [i, prompt] of prompts.entries()) {
      for (const typed of ['  return ', ' x', ' zq', '\n\t', '(a, b']) {
        const prefix = prompt + typed;
        const r = await engine.complete({ prefix, maxNewTokens: 12, drafter: i % 2 ? 'deer' : 'none', lookup: true });
        if (r.stopReason === 'eos' && r.tokens.length === 0) continue;
        assert.equal(r.healed, healingText(prefix), JSON.stringify(prefix.slice(-20)));
        const spelled = tok.decode(r.tokens);
        if (r.stopReason === 'repeat') assert.ok(spelled.startsWith(r.healed + r.text));
        else assert.equal(spelled, r.healed + r.text);
      }
    }
  });

  it('heal: false leaves the prompt as typed', async () => {
    const prefix = prompts[0] + '  ';
    const tok = new DeerTokenizer(readModelFolder(DEFAULT_MODEL));
    const healed = await engine.complete({ prefix, maxNewTokens: 8, drafter: 'none' });
    const raw = await engine.complete({ prefix, maxNewTokens: 8, drafter: 'none', heal: false });
    assert.equal(raw.stats.promptTokens, tok.encode(prefix).length);
    assert.equal(healed.stats.promptTokens, tok.encode(prefix.slice(0, -healingText(prefix).length)).length);
    assert.equal(raw.healed, undefined);
  });
});
