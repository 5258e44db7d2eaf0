// The engine's prompt budget (PromptWindow): cut in tokens at line boundaries, the text nearest
// the cursor kept, and a start that stays put while the user types (KV-cache reuse).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readModelFolder } from '../../src/engine/modelFolder';
import { PromptWindow } from '../../src/engine/prompt';
import { DeerTokenizer } from '../../src/engine/tokenizer';
import { CONDITIONED_MODEL, hasModel, TINY_MODEL } from './support';

const lines = (n: number) => Array.from({ length: n }, (_, i) => `total_${i} = values[${i}] * ${i % 7} + offset\n`).join('');

for (const dir of [TINY_MODEL, CONDITIONED_MODEL]) {
  describe(`prompt window (${dir.split('/').slice(-1)[0]})`, { skip: !hasModel(dir) && 'fixture missing' }, () => {
    const tok = new DeerTokenizer(readModelFolder(dir));
    /** The prefix part of a prompt's text (plain prompts: all of it). */
    const prefixText = (ids: number[]) => {
      const { fimPrefix, fimMiddle } = tok.special;
      const from = ids.indexOf(fimPrefix!);
      return tok.decode(from < 0 ? ids : ids.slice(from + 1, tok.fimOrder === 'psm' ? ids.indexOf(tok.special.fimSuffix!) : ids.indexOf(fimMiddle!)));
    };

    it('a prompt that fits is the whole layout', () => {
      const w = new PromptWindow(tok);
      assert.deepEqual(w.build('def f(x):\n    ', '\n    return y\n', 1000), tok.buildPrompt('def f(x):\n    ', '\n    return y\n'));
      assert.deepEqual(w.build('x = 1\n', '', 1000), tok.encode('x = 1\n'));
    });

    it('over budget: the prefix keeps its last whole lines, the text at the cursor included', () => {
      const w = new PromptWindow(tok);
      const prefix = lines(200) + 'result = ';
      const p = w.build(prefix, '', 120);
      assert.ok(p.length <= 120 && p.length >= 60, `${p.length} tokens`);
      const kept = tok.decode(p);
      assert.ok(prefix.endsWith(kept), 'the end of the prefix is kept');
      assert.equal(prefix[prefix.length - kept.length - 1], '\n', 'it starts at a line start');
    });

    it('typing at the cursor keeps the prompt start until the slack is used up', () => {
      const w = new PromptWindow(tok);
      const base = lines(200);
      const first = prefixText(w.build(base, '', 120));
      let typed = '';
      let moved = -1;
      for (let i = 0; i < 40; i++) {
        typed += 'ab ';
        const now = prefixText(w.build(base + typed, '', 120));
        if (!now.startsWith(first.slice(0, 40))) {
          moved = i;
          break;
        }
        assert.ok(now.endsWith(typed));
      }
      assert.ok(moved === -1 || moved >= 5, `the start moved after ${moved + 1} keystrokes`);
      // A fresh window cuts a longer prefix further on: the kept start is the window's memory, not chance.
      const fresh = prefixText(new PromptWindow(tok).build(base + 'ab '.repeat(30), '', 120));
      assert.ok(!fresh.startsWith(first.slice(0, 40)), 'a fresh cut of 30 more keystrokes starts elsewhere');
    });

    it('with a suffix: its first whole lines, a third of the budget at most, and the prefix end', { skip: !tok.fim && 'no FIM tokens' }, () => {
      const w = new PromptWindow(tok);
      const suffix = '\n' + lines(100);
      const p = w.build(lines(100) + 'y = ', suffix, 150);
      assert.ok(p.length <= 150, `${p.length} tokens`);
      const { fimSuffix, fimPrefix, fimMiddle } = tok.special as Required<typeof tok.special>;
      const s = tok.fimOrder === 'psm' ? p.slice(p.indexOf(fimSuffix) + 1, p.indexOf(fimMiddle)) : p.slice(p.indexOf(fimSuffix) + 1, p.indexOf(fimPrefix));
      const sText = tok.decode(s);
      assert.ok(s.length <= 50 && s.length > 0, `${s.length} suffix tokens`);
      assert.ok(suffix.startsWith(sText) && sText.endsWith('\n'), 'whole lines from the cursor on');
      assert.ok(prefixText(p).endsWith('y = '));
    });
  });
}
