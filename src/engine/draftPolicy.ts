// How much to draft: one policy per drafter, asked twice a pass and told what happened after it.
// Every choice depends only on the drafter's output and measured times, never on what the
// verifier will say, so the output stays exactly the verifier's whatever the policy picks.
import { treeDepth, type DraftTree } from './tree';
import { AcceptanceCalibration, type PassTimeModel } from './stats';

/**
 * The one sizing rule: the n in 0..gains.length that maximizes expected new tokens per
 * millisecond, (1 + sum_{i<n} gains_i) / cost(n + 1), where gains_i is the chance the i-th drafted
 * token (or tree node, best first so that every prefix is a tree) is accepted and cost(q) the
 * time of a pass that sends q tokens (the pending one included). `mustDraft`: n = 0 is not an
 * option (a probe).
 */
export function chooseNodeCount(gains: readonly number[], cost: (q: number) => number, mustDraft = false): number {
  let best = 0;
  let bestRate = mustDraft ? -1 : 1 / cost(1);
  let expected = 1;
  for (let n = 1; n <= gains.length; n++) {
    expected += gains[n - 1];
    const rate = expected / cost(n + 1);
    if (rate > bestRate) {
      best = n;
      bestRate = rate;
    }
  }
  return best;
}

export interface DraftPolicyOptions {
  /**
   * The drafter costs a pass of its own (deer, ar): size the block before drafting from what its
   * passes have earned, down to 0 (a plain pass) when drafting does not pay. Others (ngram, the
   * lookup hybrid) are asked for the whole block.
   */
  sizeBeforeDraft: boolean;
  /** Learned acceptance of the drafter's confidence; shared by policies of the same drafter (deer, deer+lookup). */
  calibration?: AcceptanceCalibration;
}

/**
 * Per drafter, over the engine's life:
 * - `draftLength` (before drafting): how many tokens to ask for: the k with the best expected
 *   tokens per ms from the learned chance s_j that drafted token j survives once 1..j-1 did (an
 *   optimistic prior keeps long blocks tried until the passes show otherwise) and a line fitted
 *   to the drafter's own timings; 0 when drafting does not pay, with probes (`probe`);
 * - `nodeCount` (after drafting): how many of the drafted nodes to send, from the drafter's
 *   calibrated confidence (drafters without confidence send everything);
 * - `probe`: whether this pass drafts although drafting has not been paying: every 8th pass, then
 *   every 16th, 32nd, ... (at most every 128th) while probes keep failing; back to every 8th after
 *   one that is accepted. The lookup hybrid skips its drafter by the same schedule.
 * - `observe` (after the pass): what was asked, sent and accepted.
 */
export class DraftPolicy {
  readonly calibration: AcceptanceCalibration;
  private readonly reached: number[] = [];
  private readonly kept: number[] = [];
  // exponentially forgotten least squares for draft ms = a + b * k
  private n = 0;
  private sx = 0;
  private sy = 0;
  private sxx = 0;
  private sxy = 0;
  private sincePause = 0;
  private probeEvery = 8;
  private probing = false;

  constructor(
    readonly passTime: PassTimeModel,
    private readonly opts: DraftPolicyOptions = { sizeBeforeDraft: true },
    private readonly prior = 0.8,
    private readonly priorWeight = 3,
  ) {
    this.calibration = opts.calibration ?? new AcceptanceCalibration();
  }

  /** The pass-time model has been fitted: sizing by time means something. */
  get timed(): boolean {
    return this.passTime.calibrated;
  }

  survival(j: number): number {
    return ((this.kept[j] ?? 0) + this.prior * this.priorWeight) / ((this.reached[j] ?? 0) + this.priorWeight);
  }

  draftMs(k: number): number {
    if (this.n < 1) return 0;
    const mx = this.sx / this.n;
    const my = this.sy / this.n;
    const vx = this.sxx / this.n - mx * mx;
    const b = vx > 1e-9 ? Math.max(0, (this.sxy / this.n - mx * my) / vx) : 0;
    return Math.max(0, my + b * (k - mx));
  }

  /** True on a pass that should draft although drafting has not paid (see the class comment). */
  probe(): boolean {
    const explore = ++this.sincePause >= this.probeEvery;
    if (explore) this.sincePause = 0;
    this.probing = explore;
    return explore;
  }

  /** Tokens to ask the drafter for, at most kMax, with `past` tokens in the verifier's cache. */
  draftLength(kMax: number, past: number): number {
    if (!this.opts.sizeBeforeDraft || kMax <= 0) return kMax;
    const gains: number[] = [];
    let survive = 1;
    for (let k = 1; k <= kMax; k++) gains.push((survive *= this.survival(k)));
    const passMs = (q: number) => this.passTime.passMs(q, past);
    return chooseNodeCount(gains, (q) => (q === 1 ? passMs(1) : this.draftMs(q - 1) + passMs(q)), this.probe());
  }

  /**
   * Nodes of a drafted tree to send, at most `room`: the count with the best expected tokens per
   * ms given the time the drafting took. `gains`: the tree's node gains, best first.
   */
  nodeCount(gains: readonly number[], room: number, draftMs: number, past: number): number {
    return chooseNodeCount(gains.slice(0, room), (q) => draftMs + this.passTime.passMs(q, past));
  }

  /**
   * After a pass: `tree` was sent and the walk kept `path`; `sized`: the pass's block was sized by
   * draftLength (asked for that many tokens, drafting took draftMs).
   */
  observe(tree: DraftTree, path: readonly number[], sized?: { asked: number; draftMs: number }): void {
    this.observeCalibration(tree, path);
    if (sized && sized.asked > 0 && this.opts.sizeBeforeDraft) this.observeBlock(sized.asked, sized.draftMs, treeDepth(tree), path.length);
    else if (this.probing) this.settleProbe(path.length);
  }

  /** A pass asked for `asked` tokens (taking draftMs), sent `sent` of them, and `accepted` were kept. */
  observeBlock(asked: number, draftMs: number, sent: number, accepted: number): void {
    if (this.probing) this.settleProbe(accepted);
    const decay = 0.98;
    this.n = this.n * decay + 1;
    this.sx = this.sx * decay + asked;
    this.sy = this.sy * decay + draftMs;
    this.sxx = this.sxx * decay + asked * asked;
    this.sxy = this.sxy * decay + asked * draftMs;
    for (let j = 1; j <= Math.min(sent, accepted + 1); j++) {
      this.reached[j] = (this.reached[j] ?? 0) + 1;
      if (j <= accepted) this.kept[j] = (this.kept[j] ?? 0) + 1;
    }
  }

  private settleProbe(accepted: number): void {
    this.probeEvery = accepted > 0 ? 8 : Math.min(128, this.probeEvery * 2);
    this.probing = false;
  }

  /**
   * Teaches the calibration what happened to the drafter's likeliest tokens (rank 0): down the
   * rank-0 children from the pending token, each was accepted while the walk followed them, and
   * the first one it did not follow was rejected. For a chain that is the chain itself.
   */
  private observeCalibration(tree: DraftTree, path: readonly number[]): void {
    const conf: number[] = [];
    let accepted = 0;
    let parent = -1;
    for (;;) {
      const top = tree.parents.findIndex((p, i) => p === parent && tree.rank[i] === 0);
      if (top < 0 || !(tree.confidence[top] > 0)) break;
      conf.push(tree.confidence[top]);
      if (path[accepted] !== top) break;
      accepted++;
      parent = top;
    }
    if (conf.length > 0) this.calibration.observe(conf, conf.length, accepted);
  }
}
