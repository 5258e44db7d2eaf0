// The inline completion recipe, free of 'vscode' so the unit tests and the latency benchmark run
// exactly what the editor runs: context → policy → cache / type-through → debounce → engine → postprocess.
import type { CompletionResult, ModelInfo } from '../engine/api';
import type { CompleteOptions } from '../worker/engineClient';
import type { WireRequest } from '../worker/protocol';
import { SuggestionCache } from './cache';
import { requestSettings, type DeerConfig } from './config';
import { buildContext, docWithReplacement, type ContextOptions, type DocText, type FimContext } from './context';
import type { CompletionMode, StopSpec } from '../engine/stopRule';
import { decideMode } from './policy';
import { postprocess, suggestionConfidence } from './postprocess';
import type { CompletionRecord } from './stats';

/** What the pipeline needs from the engine (EngineClient provides it). */
export interface InlineEngine {
  readonly info?: ModelInfo;
  complete(request: WireRequest, options: CompleteOptions): Promise<CompletionResult>;
}

export interface InlineQuery {
  doc: DocText;
  offset: number;
  /** Explicitly asked for (Alt+\): no debounce, and a suggestion even mid-word. */
  manual: boolean;
  /**
   * The IntelliSense item selected in the suggest widget, replacing [start, end): the suggestion
   * continues the document as if it were accepted (the editor shows ghost text only then).
   */
  selected?: { start: number; end: number; text: string };
  signal: AbortSignal;
}

export interface InlineAnswer {
  /** '' = nothing to show. */
  text: string;
  source: 'cache' | 'model';
  mode: CompletionMode;
  result?: CompletionResult;
  /** suggestionConfidence of the model's answer (source 'model'). */
  confidence?: number;
  /** Why the model's text was not shown (source 'model', text ''). */
  hidden?: string;
}

export interface PipelineOptions {
  /** Other windows than DEFAULT_CONTEXT_OPTIONS (tests). */
  contextOptions?: ContextOptions;
  /**
   * What happens during the debounce of an automatic request: 'wait' (nothing), 'prefill'
   * (default: the context is read into the KV cache), or 'complete' (the request runs; the
   * debounce only delays showing it). A keystroke aborts either.
   */
  whileDebouncing?: 'wait' | 'prefill' | 'complete';
  /** Token healing (CompletionRequest.heal); the engine's default when unset. Benchmarks compare it off. */
  heal?: boolean;
}

export class InlinePipeline {
  readonly cache = new SuggestionCache();

  constructor(
    private readonly engine: InlineEngine,
    private readonly config: () => DeerConfig,
    private readonly onRecord?: (record: CompletionRecord) => void,
    private readonly options: PipelineOptions = {},
  ) {}

  private get whileDebouncing(): NonNullable<PipelineOptions['whileDebouncing']> {
    return this.options.whileDebouncing ?? 'prefill';
  }

  /**
   * Reads the context at the cursor into the engine's KV cache without generating (a file was
   * opened or the cursor was put somewhere), so the first keystroke there only runs a few tokens.
   * Any other request aborts it.
   */
  async prefetch(doc: DocText, offset: number, signal?: AbortSignal): Promise<void> {
    const ctx = this.context(doc, offset);
    if (!ctx) return;
    await this.engine
      .complete({ prefix: ctx.prefix, suffix: ctx.suffix, maxNewTokens: 0, drafter: 'none' }, { signal, lane: 'prefetch' })
      .catch(() => undefined);
  }

  private context(doc: DocText, offset: number): FimContext | undefined {
    const built = buildContext(doc, offset, this.options.contextOptions);
    return built.ok ? built.context : undefined;
  }

  /** The suggestion at the cursor, or undefined when cancelled or there is no place for one. */
  async suggest(q: InlineQuery): Promise<InlineAnswer | undefined> {
    const cfg = this.config();
    const info = this.engine.info;
    const sel = q.selected;
    const ctx = sel
      ? this.context(docWithReplacement(q.doc, sel.start, sel.end, sel.text), sel.start + sel.text.length)
      : this.context(q.doc, q.offset);
    // An empty document (or only blanks around the cursor) gives the model nothing to go on.
    if (!ctx || (ctx.prefix.trim() === '' && ctx.suffix.trim() === '')) return undefined;
    const spec: StopSpec | null =
      decideMode(ctx) ?? (q.manual ? { mode: 'single', minIndent: 0, lineSuffix: ctx.lineSuffix.trim(), nextLine: '', maxLines: 1 } : null);
    if (!spec) return undefined;

    const cached = this.cache.get(ctx.prefix, ctx.suffix);
    // Nothing was shown here (say, not confident enough): an explicit request asks the model again.
    if (cached !== undefined && !(q.manual && cached === '')) return { text: cached, source: 'cache', mode: spec.mode };

    const request: WireRequest = {
      prefix: ctx.prefix,
      suffix: ctx.suffix,
      maxNewTokens: cfg.inlineMaxNewTokens,
      ...requestSettings(cfg, info),
      logprobs: true,
      stopSpec: spec,
      ...(this.options.heal !== undefined ? { heal: this.options.heal } : {}),
    };
    const ask = (): Promise<CompletionResult> => this.engine.complete(request, { signal: q.signal, lane: 'inline' });
    let t0 = performance.now();
    let pending: Promise<CompletionResult> | undefined;
    if (!q.manual && cfg.debounceMs > 0) {
      if (this.whileDebouncing === 'complete') pending = ask();
      // Read the new characters into the KV cache while waiting: the request then starts decoding at once.
      if (this.whileDebouncing === 'prefill') void this.engine.complete({ ...request, maxNewTokens: 0, drafter: 'none' }, { signal: q.signal, lane: 'prefetch' }).catch(() => undefined);
      if (!(await sleep(cfg.debounceMs, q.signal))) {
        pending?.catch(() => undefined);
        return undefined;
      }
      if (!pending) t0 = performance.now();
    }
    const result = await (pending ?? ask());
    if (result.stopReason === 'aborted' || q.signal.aborted) return undefined;
    const confidence = suggestionConfidence(result.tokenLogprobs ?? []);
    const shown = q.manual || confidence >= cfg.inlineMinConfidence;
    const text = shown ? postprocess(result.text, spec, ctx.suffix, ctx.linePrefix) : '';
    this.cache.set(ctx.prefix, ctx.suffix, text);
    this.onRecord?.({ kind: 'inline', at: Date.now(), latencyMs: performance.now() - t0, stats: result.stats });
    const hidden = !shown
      ? `confidence below deer.inline.minConfidence (${cfg.inlineMinConfidence})`
      : text === '' ? 'empty once cut to the line or block, or the text after the cursor already says it' : undefined;
    return { text, source: 'model', mode: spec.mode, result, confidence, ...(hidden ? { hidden } : {}) };
  }
}

/** One output-channel line per answer the model gave: what it wrote and whether it was shown (and why not). */
export function describeAnswer(answer: InlineAnswer): string {
  const r = answer.result;
  const wrote = r ? JSON.stringify(r.text.length > 60 ? `${r.text.slice(0, 60)}…` : r.text) : '""';
  const figures = r ? ` (${r.stats.newTokens} tokens, ${Math.round(r.stats.totalMs)} ms, confidence ${(answer.confidence ?? 1).toFixed(2)})` : '';
  const shown = answer.text !== '' ? 'shown' : answer.hidden ? `not shown: ${answer.hidden}` : 'nothing to show';
  return `inline ${answer.mode}: wrote ${wrote}${figures}; ${shown}`;
}

/** Waits `ms`; false when aborted first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
