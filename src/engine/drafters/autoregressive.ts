// Classic speculative decoding: a small autoregressive draft model (same tokenizer, verifier layout)
// with its own KV cache writes k tokens one pass at a time; its cache follows the verified
// sequence by longest common prefix, so rejected drafts are rolled back.
import { argmax, maxProb, sample, toProbs } from '../acceptance';
import type { DecoderSession } from '../verifier';
import type { Draft, DraftContext, Drafter } from './types';

export class AutoregressiveDrafter implements Drafter {
  readonly name = 'ar' as const;
  /**
   * @param earlyStop stop drafting once the drafted tokens' joint probability (by the draft
   * model's own account) falls below this; 0 = always draft k tokens.
   */
  constructor(
    private readonly model: DecoderSession,
    private readonly earlyStop = 0,
  ) {}

  async begin(ctx: DraftContext): Promise<void> {
    await this.model.prefill(ctx.tokens.slice(0, -1), ctx.signal);
  }

  async draft(ctx: DraftContext, k: number): Promise<Draft> {
    const tokens: number[] = [];
    const probs: Float32Array[] = [];
    const confidence: number[] = [];
    if (k <= 0) return { tokens };
    await this.model.prefill(ctx.tokens.slice(0, -1));
    const vocab = this.model.vocabSize;
    let next = ctx.tokens[ctx.tokens.length - 1];
    let joint = 1;
    for (let i = 0; i < k; i++) {
      const logits = (await this.model.forward([next]))!.subarray(0, vocab);
      let c: number;
      if (ctx.temperature > 0) {
        const p = toProbs(logits, ctx.temperature, ctx.topP);
        next = sample(p, ctx.rng);
        probs.push(p);
        c = p[next];
      } else {
        next = argmax(logits);
        c = maxProb(logits);
      }
      tokens.push(next);
      confidence.push(c);
      joint *= c;
      // Each step costs a pass of the draft model: stop once the rest is unlikely to be kept.
      if (this.earlyStop && joint < this.earlyStop) break;
    }
    return ctx.temperature > 0 ? { tokens, probs, confidence } : { tokens, confidence };
  }

  accept(): void {}

  async dispose(): Promise<void> {
    await this.model.dispose();
  }
}
