// DEER plus prompt lookup: each pass, the diffusion draft or the n-gram continuation, whichever
// promises more accepted tokens. The diffusion draft's promise comes from its per-token
// confidence (calibrated against what the verifier accepted); the lookup's from how often
// continuations after an n-token match were accepted so far. Lossless like any draft; the engine
// uses it for greedy requests, and for sampled ones in draft trees only.
// With draft trees (ctx.candidates > 0) the lookup continuation is grafted onto the diffusion
// tree as one more branch, so both are verified in the same pass; the drafter pass is skipped,
// as above, when the lookup alone promises what the trees have been earning. In both modes the
// drafter is skipped (but for the policy's probes) while the passes that ran it have been making
// fewer tokens per millisecond than the passes that did not, or than a plain pass would.
import type { DraftPolicy } from '../draftPolicy';
import type { DiffusionDrafter } from './diffusion';
import { lookupMatch, lookupMatches } from './ngram';
import type { Draft, DraftContext, Drafter, PassTiming } from './types';

export class LookupHybridDrafter implements Drafter {
  readonly name = 'deer' as const;
  /** Per match length n and branch rank r ([n][r]; chains: r = 0): drafted tokens seen up to the first rejection, and those accepted. */
  private readonly trials: number[][];
  private readonly hits: number[][];
  private last: { n: number; drafted: number } | null = null;
  /** Tree mode: the lookup branches sent with the last pass. */
  private grafted: { n: number; rank: number; tokens: number[] }[] = [];
  private usedDeer = false;
  /** Moving average of drafted tokens accepted per pass when the diffusion draft was sent. */
  private deerEarned = 1;
  /**
   * Moving averages of new tokens per ms (drafting and verifying) over the passes that ran the
   * drafter (whichever draft they sent) and over those that did not; null before the first.
   */
  private deerTokensPerMs: number | null = null;
  private skippedTokensPerMs: number | null = null;
  private ranDeer = false;
  private sinceSkip = 0;
  /** Passes that used the lookup draft, and all passes (for stats and tests). */
  lookupPasses = 0;
  passes = 0;

  constructor(
    private readonly deer: DiffusionDrafter,
    /** Its calibration (deer's) rates the diffusion draft; its probe schedule decides when to draft anyway. */
    private readonly policy: DraftPolicy,
    /** Different lookup continuations per draft tree (lookupMatches); chains take one. */
    private readonly treeBranches = 1,
  ) {
    this.trials = [0, 1, 2, 3].map(() => new Array<number>(Math.max(1, treeBranches)).fill(0));
    this.hits = this.trials.map((row) => row.slice());
  }

  async begin(): Promise<void> {
    await this.deer.begin();
  }

  /** Estimated per-token acceptance after an n-token match, for the rank-th branch (prior 0.5). */
  private rate(n: number, rank = 0): number {
    return (this.hits[n][rank] + 1) / (this.trials[n][rank] + 2);
  }

  async draft(ctx: DraftContext, k: number): Promise<Draft> {
    this.passes++;
    this.ranDeer = false;
    this.last = null;
    this.grafted = [];
    if (ctx.candidates > 0) return this.draftTree(ctx, k);
    const look = ctx.temperature > 0 ? { tokens: [], n: 0 } : lookupMatch(ctx.tokens, k);
    const a = this.rate(look.n);
    let expectLookup = 0;
    for (let j = 1; j <= look.tokens.length; j++) expectLookup += a ** j;
    // At least what the diffusion drafts have been earning: skip the drafter pass.
    if (look.tokens.length > 0 && expectLookup >= this.deerEarned) return this.useLookup(look);
    if (this.skipDeer(ctx)) return this.useLookup(look);
    const d = await this.deer.draft(ctx, k);
    this.usedDeer = this.ranDeer = true;
    if (look.tokens.length === 0) return d;
    let expectDeer = 0;
    let survive = 1;
    for (const c of d.confidence ?? d.tokens.map(() => 0.5)) {
      survive *= this.policy.calibration.p(c);
      expectDeer += survive;
    }
    if (expectLookup <= expectDeer) return d;
    return this.useLookup(look);
  }

  private async draftTree(ctx: DraftContext, k: number): Promise<Draft> {
    const looks = lookupMatches(ctx.tokens, k, this.treeBranches);
    const branches = looks.map((l) => {
      const a = this.rate(l.n, l.rank);
      return { tokens: l.tokens, gains: l.tokens.map((_, j) => a ** (j + 1)) };
    });
    const expectLookup = branches.length > 0 ? branches[0].gains.reduce((x, y) => x + y, 0) : 0;
    // The lookup alone promises what the diffusion trees have been earning: skip the drafter pass.
    const skip = (branches.length > 0 && expectLookup >= this.deerEarned) || this.skipDeer(ctx);
    const d: Draft = skip ? { tokens: [] } : await this.deer.draft(ctx, k);
    this.usedDeer = this.ranDeer = !skip;
    if (looks.length > 0) {
      this.grafted = looks;
      this.lookupPasses++;
      d.branches = branches;
    }
    return d;
  }

  /**
   * The passes that ran the drafter have made fewer tokens per ms than those that did not (lookup
   * or plain), or than a plain pass at this cache length would, and this pass is not one of the
   * policy's probes (which keep the measure fresh).
   */
  private skipDeer(ctx: DraftContext): boolean {
    const passTime = this.policy.passTime;
    if (this.deerTokensPerMs === null || !passTime.calibrated) return false;
    const without = Math.max(1 / passTime.predict(ctx.tokens.length - 1), this.skippedTokensPerMs ?? 0);
    if (this.deerTokensPerMs >= without) {
      // the other arm is measured too: every 16th such pass goes without the drafter
      if (++this.sinceSkip < 16) return false;
      this.sinceSkip = 0;
      return true;
    }
    return !this.policy.probe();
  }

  /** The lookup continuation as this pass's draft; with none, a plain pass. */
  private useLookup(look: { tokens: number[]; n: number }): Draft {
    this.usedDeer = false;
    if (look.tokens.length === 0) return { tokens: [] };
    this.lookupPasses++;
    this.last = { n: look.n, drafted: look.tokens.length };
    return { tokens: look.tokens };
  }

  accept(accepted: number, added: readonly number[] = [], timing?: PassTiming): void {
    if (timing) {
      const rate = (accepted + 1) / Math.max(1e-3, timing.draftMs + timing.verifyMs);
      const ema = (avg: number | null) => (avg === null ? rate : avg + 0.1 * (rate - avg));
      if (this.ranDeer) this.deerTokensPerMs = ema(this.deerTokensPerMs);
      else this.skippedTokensPerMs = ema(this.skippedTokensPerMs);
    }
    for (const { n, rank, tokens } of this.grafted) {
      let m = 0;
      while (m < tokens.length && m < added.length && tokens[m] === added[m]) m++;
      // the branch's tokens that the verifier wrote (the bonus included) count as hits
      this.trials[n][rank] += Math.min(tokens.length, m + 1);
      this.hits[n][rank] += Math.min(m, tokens.length);
    }
    if (this.last) {
      this.trials[this.last.n][0] += Math.min(this.last.drafted, accepted + 1);
      this.hits[this.last.n][0] += accepted;
    } else if (this.usedDeer) {
      this.deerEarned += 0.1 * (accepted - this.deerEarned);
    }
    this.deer.accept();
  }

  async dispose(): Promise<void> {
    // the diffusion drafter is shared with plain 'deer' requests and disposed by the engine
  }
}
