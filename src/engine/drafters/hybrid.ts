// DEER plus prompt lookup: each pass, the diffusion draft or the n-gram continuation, whichever
// promises more accepted tokens. The diffusion draft's promise comes from its per-token
// confidence (calibrated against what the verifier accepted); the lookup's from how often
// continuations after an n-token match were accepted so far. Greedy only; lossless like any draft.
import type { AcceptanceCalibration } from '../stats';
import type { DiffusionDrafter } from './diffusion';
import { lookupMatch } from './ngram';
import type { Draft, DraftContext, Drafter } from './types';

export class LookupHybridDrafter implements Drafter {
  readonly name = 'deer' as const;
  /** Per match length n: drafted tokens seen up to the first rejection, and those accepted. */
  private readonly trials = [0, 0, 0, 0];
  private readonly hits = [0, 0, 0, 0];
  private last: { n: number; drafted: number } | null = null;
  /** Passes that used the lookup draft, and all passes (for stats and tests). */
  lookupPasses = 0;
  passes = 0;

  constructor(
    private readonly deer: DiffusionDrafter,
    private readonly calibration: AcceptanceCalibration,
  ) {}

  async begin(): Promise<void> {
    await this.deer.begin();
  }

  /** Estimated per-token acceptance after an n-token match (prior 0.5). */
  private rate(n: number): number {
    return (this.hits[n] + 1) / (this.trials[n] + 2);
  }

  async draft(ctx: DraftContext, k: number): Promise<Draft> {
    this.passes++;
    this.last = null;
    const d = await this.deer.draft(ctx, k);
    const look = lookupMatch(ctx.tokens, k);
    if (ctx.temperature > 0 || look.tokens.length === 0) return d;
    const a = this.rate(look.n);
    let expectLookup = 0;
    for (let j = 1; j <= look.tokens.length; j++) expectLookup += a ** j;
    let expectDeer = 0;
    let survive = 1;
    for (const c of d.confidence ?? d.tokens.map(() => 0.5)) {
      survive *= this.calibration.p(c);
      expectDeer += survive;
    }
    if (expectLookup <= expectDeer) return d;
    this.lookupPasses++;
    this.last = { n: look.n, drafted: look.tokens.length };
    return { tokens: look.tokens };
  }

  accept(accepted: number): void {
    if (this.last) {
      this.trials[this.last.n] += Math.min(this.last.drafted, accepted + 1);
      this.hits[this.last.n] += accepted;
    }
    this.deer.accept();
  }

  async dispose(): Promise<void> {
    // the diffusion drafter is shared with plain 'deer' requests and disposed by the engine
  }
}
