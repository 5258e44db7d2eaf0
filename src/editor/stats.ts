// Recent completions and how they went: feeds the status bar text and the stats view.
// Pure (no 'vscode').
import type { DrafterName, RunStats } from '../engine/api';

export interface CompletionRecord {
  kind: 'inline' | 'generate';
  /** When it finished (ms since epoch). */
  at: number;
  /** Request to result, as the user waited for it (debounce excluded). */
  latencyMs: number;
  stats: RunStats;
}

export class StatsHistory {
  private readonly records: CompletionRecord[] = [];
  constructor(private readonly capacity = 200) {}

  add(record: CompletionRecord): void {
    this.records.push(record);
    if (this.records.length > this.capacity) this.records.splice(0, this.records.length - this.capacity);
  }
  /** The last run that decoded at least one token. */
  get last(): CompletionRecord | undefined {
    for (let i = this.records.length - 1; i >= 0; i--) if (informative(this.records[i])) return this.records[i];
    return undefined;
  }
  all(): readonly CompletionRecord[] {
    return this.records;
  }
}

/** Runs that say something about speed: at least one new token decoded. */
export const informative = (r: CompletionRecord): boolean => r.stats.newTokens > 0;

/**
 * Throughput and tokens per verifier pass over the recent informative runs (token-weighted). Both
 * are measured exactly (tokens, passes and decode time are counted); the engine's speedup
 * estimate is not shown: it can be far from a measured A/B (`deer bench` reports both).
 */
export function summarize(records: readonly CompletionRecord[], window = 20): { tokensPerSecond: number; tokensPerPass: number } | undefined {
  const recent = records.filter(informative).slice(-window);
  if (recent.length === 0) return undefined;
  let tokens = 0;
  let decodeMs = 0;
  let passes = 0;
  for (const r of recent) {
    tokens += r.stats.newTokens;
    decodeMs += r.stats.decodeMs;
    passes += r.stats.passes;
  }
  return {
    tokensPerSecond: decodeMs > 0 ? (tokens / decodeMs) * 1000 : 0,
    tokensPerPass: tokens / Math.max(1, passes),
  };
}

export type UiState = 'loading' | 'ready' | 'disabled' | 'error';

/** What the status bar shows for the inference client's state: 'loading' only until the model is loaded. */
export function uiState(client: 'idle' | 'loading' | 'ready' | 'error', inlineEnabled: boolean): UiState {
  if (client === 'error') return 'error';
  if (!inlineEnabled) return 'disabled';
  return client === 'ready' ? 'ready' : 'loading';
}

export interface StatusView {
  state: UiState;
  text: string;
  tooltip: string;
  error?: string;
}

export interface StatusInput {
  state: UiState;
  error?: string;
  model?: string;
  drafter: DrafterName;
  records: readonly CompletionRecord[];
}

const fmt = (x: number, digits: number): string => (Number.isFinite(x) ? x.toFixed(digits) : '–');

/** The status bar item: text (with codicons) and tooltip for a state and the recent runs. */
export function statusView(input: StatusInput): StatusView {
  const { state, model, drafter, records } = input;
  const modelLine = `Model: ${model ?? '(not loaded)'}\nDrafter: ${drafter}`;
  switch (state) {
    case 'loading':
      return { state, text: '$(loading~spin) DEER', tooltip: `DEER: loading the model…\n${modelLine}` };
    case 'disabled':
      return { state, text: '$(circle-slash) DEER', tooltip: `DEER: inline completion is off (DEER: Toggle Inline Completion)\n${modelLine}` };
    case 'error':
      return {
        state,
        text: '$(error) DEER',
        tooltip: `DEER: ${input.error ?? 'error'}\nClick for details; "DEER: Choose Model Folder…" to fix the model folder.`,
        error: input.error ?? 'error',
      };
    case 'ready': {
      const sum = summarize(records);
      const last = [...records].reverse().find(informative);
      if (!sum || !last) return { state, text: '$(zap) DEER', tooltip: `DEER: ready\n${modelLine}\nClick for the stats view.` };
      const n = Math.min(20, records.filter(informative).length);
      const tooltip = [
        `DEER: ${Math.round(sum.tokensPerSecond)} tokens/s while decoding (last ${n} runs)`,
        `${fmt(sum.tokensPerPass, 2)} tokens per verifier pass (1.00 = plain decoding: every token a pass)`,
        modelLine,
        `Last: ${last.kind}, ${Math.round(last.latencyMs)} ms, ${last.stats.newTokens} tokens (${last.stats.drafter})`,
        'Click for the stats view.',
      ].join('\n');
      return { state, text: `$(zap) ${Math.round(sum.tokensPerSecond)} tok/s · ${fmt(sum.tokensPerPass, 2)}/pass`, tooltip };
    }
  }
}

/**
 * What the stats view draws: series of recent runs and per-drafter aggregates. Runs that verified
 * draft trees count apart from the drafter's chains, as `deer-tree` (the bench's name), so the
 * view shows accepted length with and without trees.
 */
export interface StatsViewData {
  model?: string;
  runs: { at: number; kind: string; drafter: string; tokensPerSecond: number; latencyMs: number; newTokens: number; passes: number; decodeMs: number; tokensPerPass: number }[];
  /** acceptedHistogram summed over runs, per drafter. */
  histograms: Record<string, number[]>;
  perDrafter: { drafter: string; runs: number; tokensPerSecond: number; tokensPerPass: number }[];
}

const drafterLabel = (r: CompletionRecord): string => (r.stats.trees ? `${r.stats.drafter}-tree` : r.stats.drafter);

export function statsViewData(records: readonly CompletionRecord[], model?: string): StatsViewData {
  const useful = records.filter(informative);
  const histograms: Record<string, number[]> = {};
  const groups = new Map<string, CompletionRecord[]>();
  for (const r of useful) {
    const label = drafterLabel(r);
    const h = (histograms[label] ??= []);
    r.stats.acceptedHistogram.forEach((n, i) => (h[i] = (h[i] ?? 0) + n));
    for (let i = 0; i < h.length; i++) h[i] ??= 0;
    groups.set(label, [...(groups.get(label) ?? []), r]);
  }
  return {
    model,
    runs: useful.map((r) => ({
      at: r.at, kind: r.kind, drafter: drafterLabel(r), tokensPerSecond: r.stats.tokensPerSecond,
      latencyMs: r.latencyMs, newTokens: r.stats.newTokens, passes: r.stats.passes, decodeMs: r.stats.decodeMs, tokensPerPass: r.stats.meanAccepted,
    })),
    histograms,
    perDrafter: [...groups].map(([drafter, rs]) => ({ drafter, runs: rs.length, ...(summarize(rs, rs.length) as ReturnType<typeof summarize> & object) })),
  };
}
