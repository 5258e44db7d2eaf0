// The prompt budget, in tokens, owned by the engine: what the editor sends (a bounded window of
// text around the cursor) is cut here to what the model takes, at line boundaries, and so that
// typing at the cursor keeps the prompt's start where it was (the KV cache then still holds it).
import type { DeerTokenizer } from './tokenizer';

/** The prefix start is moved this share of the budget further than needed, so typing does not move it again at once. */
const SLACK = 1 / 4;
/** Characters of the kept prefix remembered to find the same start in the next request. */
const ANCHOR_CHARS = 256;

export class PromptWindow {
  /** The start of the prefix kept last time (its first characters), or '' when it was whole. */
  private anchor = '';

  constructor(private readonly tokenizer: DeerTokenizer) {}

  /** Forgets the last cut (the next long prompt is cut afresh). */
  reset(): void {
    this.anchor = '';
  }

  /**
   * Prompt tokens for prefix + suffix within `budget` tokens (FIM layout when there is a suffix).
   * Over budget, the suffix keeps its first whole lines (a third of the budget at most) and the
   * prefix its last whole lines: it starts where the previous request's did when that still fits
   * (typing at the end), else a line start that leaves SLACK of the budget free.
   */
  build(prefixIn: string, suffixIn: string, budget: number): number[] {
    const t = this.tokenizer;
    const { prefix, suffix } = t.boundText(prefixIn, suffixIn, budget);
    const fim = suffix.length > 0 && t.fim;
    let s = fim ? t.encode(suffix) : [];
    const whole = t.encode(prefix);
    if (fim && whole.length + s.length + 3 > budget) s = this.headLines(suffix, s, Math.floor(budget / 3));
    const room = Math.max(1, budget - (fim ? s.length + 3 : 0));
    const p = whole.length <= room ? (this.reset(), whole) : this.tailLines(prefix, whole, room);
    return fim ? t.fimPrompt(p, s) : p;
  }

  /** The prefix's last whole lines within `room` tokens, starting where the last cut did if it still fits. */
  private tailLines(prefix: string, ids: number[], room: number): number[] {
    const t = this.tokenizer;
    if (this.anchor !== '') {
      const at = prefix.lastIndexOf(this.anchor);
      if (at > 0 && prefix[at - 1] === '\n') {
        const kept = t.encode(prefix.slice(at));
        if (kept.length <= room) return kept;
      }
    }
    const target = Math.max(1, room - Math.floor(room * SLACK));
    const dropped = t.decode(ids.slice(0, ids.length - target)).length;
    const start = prefix.indexOf('\n', Math.max(0, dropped - 1)) + 1;
    const kept = start > 0 && start < prefix.length ? t.encode(prefix.slice(start)) : [];
    if (kept.length === 0 || kept.length > room) {
      // No line start to cut at (one long line): the last tokens.
      this.anchor = '';
      return ids.slice(ids.length - target);
    }
    this.anchor = prefix.slice(start, start + ANCHOR_CHARS);
    return kept;
  }

  /** The suffix's first whole lines within `room` tokens (the first tokens when its first line is longer). */
  private headLines(suffix: string, ids: number[], room: number): number[] {
    const t = this.tokenizer;
    if (ids.length <= room) return ids;
    const text = t.decode(ids.slice(0, room));
    const end = text.lastIndexOf('\n');
    if (end <= 0) return ids.slice(0, room);
    const kept = t.encode(suffix.slice(0, end + 1));
    return kept.length <= room ? kept : ids.slice(0, room);
  }
}
