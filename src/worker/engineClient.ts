// The extension's handle on the inference process: a promise API mirroring Engine.
// - runs src/worker/engineWorker.ts (dist/worker.js) in a child process (child_process.fork), so
//   a native crash or a long decode never stalls or takes down the extension host;
// - AbortSignal → abort message; in the 'inline' lane the latest request wins (a new request
//   aborts the one in flight);
// - restarts the child (and reloads the model) when it dies, and reports each crash as an event;
//   after `maxCrashes` within `crashWindowMs` it stops trying and goes to the 'error' state;
// - a child that stops answering (SIGSTOP, a stuck loop) is killed and restarted: it is pinged
//   while work is in flight, an abort must be answered in time, and every request has a deadline.
import { fork, type ChildProcess } from 'node:child_process';
import { abortedResult, MALLOC_ENV, type CompletionResult, type DrafterName, type EngineOptions, type ModelInfo } from '../engine/api';
import type { FromWorker, ToWorker, WireError, WireRequest } from './protocol';

export type ClientState = 'idle' | 'loading' | 'ready' | 'error';

export type ClientEvent =
  | { type: 'state'; state: ClientState; error?: Error }
  | { type: 'crash'; message: string; restarting: boolean }
  | { type: 'log'; line: string };

/** The client's limits, in one place (each can be overridden in ClientOptions). */
export const CLIENT_DEFAULTS = Object.freeze({
  /** Restarts within crashWindowMs; the crash after that gives up (state 'error'). */
  maxCrashes: 3,
  crashWindowMs: 120_000,
  /** While work is in flight the child is pinged this often... */
  pingMs: 1_000,
  /** ...and killed and restarted when it has said nothing for this long. */
  livenessMs: 5_000,
  /** The same while the model loads (graph rewrites run synchronously for a while on big models). */
  loadLivenessMs: 60_000,
  /** An aborted request the child has not ended within this: it is killed and restarted. */
  abortAckMs: 2_000,
  /** A request still running after base + perToken × maxNewTokens rejects with EngineTimeoutError. */
  deadlineBaseMs: 10_000,
  deadlinePerTokenMs: 250,
});
type Limits = Record<keyof typeof CLIENT_DEFAULTS, number>;

export interface ClientOptions extends Partial<Limits> {
  /** Path of the bundled worker (dist/worker.js). */
  workerPath: string;
  /** Extra environment for the child. */
  env?: NodeJS.ProcessEnv;
}

export interface CompleteOptions {
  signal?: AbortSignal;
  onChunk?: (text: string) => void;
  /**
   * 'inline': a newer request aborts this one. 'generate': runs to the end unless aborted.
   * 'prefetch': aborted by any other request, and aborts nothing itself.
   */
  lane?: 'inline' | 'generate' | 'prefetch';
  /** Reject with EngineTimeoutError after this long (default from CLIENT_DEFAULTS and maxNewTokens). */
  deadlineMs?: number;
}

export class WorkerCrashedError extends Error {
  override name = 'WorkerCrashedError';
}

/** A request that ran past its deadline (the inference process is asked to stop it). */
export class EngineTimeoutError extends Error {
  override name = 'EngineTimeoutError';
}

interface Pending {
  resolve(result: CompletionResult | number): void;
  reject(err: Error): void;
  onChunk?: (text: string) => void;
  /** A completion whose caller aborted it: it ends as 'aborted', whatever happens to the process. */
  aborted?: boolean;
  deadline?: NodeJS.Timeout;
}

const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;
const ORT_LINE = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \[([VIWEF]):onnxruntime:[^,\]]*,? ?([^\]]*)\] (.*)$/;
const ORT_SEVERITY: Record<string, string> = { V: 'verbose', I: 'info', W: 'warning', E: 'error', F: 'fatal' };

/**
 * A line the inference process wrote to stdout/stderr, as plain text for the log: colour codes
 * removed, and onnxruntime's own format (`date [W:onnxruntime:, file:line func] message`)
 * turned into `onnxruntime warning: message (file:line func)`.
 */
export function plainLogLine(raw: string): string {
  const line = raw.replace(ANSI, '').replace(/\r$/, '').trim();
  const m = ORT_LINE.exec(line);
  if (!m) return line;
  const [, sev, where, message] = m;
  return `onnxruntime ${ORT_SEVERITY[sev]}: ${message}${where ? ` (${where.trim()})` : ''}`;
}

export function fromWire(e: WireError): Error {
  const err = new Error(e.message);
  err.name = e.name;
  return err;
}

export class EngineClient {
  private child?: ChildProcess;
  private options?: EngineOptions;
  private warm?: DrafterName;
  private loaded?: Promise<ModelInfo>;
  private loadWaiter?: { resolve(info: ModelInfo): void; reject(err: Error): void };
  private _info?: ModelInfo;
  private _state: ClientState = 'idle';
  private _error?: Error;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private inlineInFlight?: number;
  private prefetchInFlight?: number;
  private crashTimes: number[] = [];
  private readonly listeners = new Set<(e: ClientEvent) => void>();
  private idleWaiters: (() => void)[] = [];
  private disposed = false;
  private stderrTail = '';
  /** Aborts sent and not yet answered by the child (id → the timer that declares it wedged). */
  private readonly unacked = new Map<number, NodeJS.Timeout>();
  private pinger?: NodeJS.Timeout;
  private lastHeard = 0;
  /** Why the client killed the child itself (reported instead of the signal). */
  private killReason?: string;

  constructor(private readonly opts: ClientOptions) {}

  private limit(key: keyof Limits): number {
    return this.opts[key] ?? CLIENT_DEFAULTS[key];
  }

  get state(): ClientState {
    return this._state;
  }
  get error(): Error | undefined {
    return this._error;
  }
  get info(): ModelInfo | undefined {
    return this._info;
  }
  get pid(): number | undefined {
    return this.child?.pid;
  }
  /** True while a load or any request is in flight (an abort not yet answered included). */
  get busy(): boolean {
    return this._state === 'loading' || this.pending.size > 0 || this.unacked.size > 0;
  }

  onEvent(listener: (e: ClientEvent) => void): { dispose(): void } {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  /** (Re)starts the inference process and loads the model; rejects with the engine's error (e.g. ModelFolderError). */
  load(options: EngineOptions, warm?: DrafterName): Promise<ModelInfo> {
    this.options = options;
    this.warm = warm;
    this.crashTimes = [];
    return this.start();
  }

  /** Resolves when no load and no request is in flight. */
  whenIdle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** The request is plain data (its stop rule as `stopSpec`: a function cannot cross processes). */
  async complete(request: WireRequest, options: CompleteOptions = {}): Promise<CompletionResult> {
    const { signal, onChunk, lane = 'generate' } = options;
    const tokens = Number.isFinite(request.maxNewTokens) ? Math.max(0, request.maxNewTokens) : 0;
    const deadlineMs = options.deadlineMs ?? this.limit('deadlineBaseMs') + this.limit('deadlinePerTokenMs') * tokens;
    if (signal?.aborted) return abortedResult(request.drafter);
    if (!this.loaded) throw new Error('DEER: no model loaded');
    await this.loaded;
    if (signal?.aborted) return abortedResult(request.drafter);
    const id = this.nextId++;
    if (lane === 'prefetch') {
      if (this.prefetchInFlight !== undefined) this.abort(this.prefetchInFlight);
      this.prefetchInFlight = id;
    } else {
      // Latest wins: any new request makes the inline one (and any prefetch) in flight stale.
      if (this.inlineInFlight !== undefined) this.abort(this.inlineInFlight);
      if (this.prefetchInFlight !== undefined) this.abort(this.prefetchInFlight);
      if (lane === 'inline') this.inlineInFlight = id;
    }
    const onAbort = (): void => this.abort(id);
    try {
      return (await new Promise<CompletionResult | number>((resolve, reject) => {
        const deadline = setTimeout(() => {
          this.settle(id, (p) => p.reject(new EngineTimeoutError(`DEER: the request ran past its deadline (${Math.round(deadlineMs)} ms) and was stopped`)));
          this.abort(id, true);
        }, deadlineMs);
        this.pending.set(id, { resolve, reject, onChunk, deadline });
        this.watch();
        signal?.addEventListener('abort', onAbort, { once: true });
        this.post({ type: 'complete', id, request, stream: onChunk !== undefined });
      })) as CompletionResult;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (this.inlineInFlight === id) this.inlineInFlight = undefined;
      if (this.prefetchInFlight === id) this.prefetchInFlight = undefined;
      this.checkIdle();
    }
  }

  async countTokens(text: string): Promise<number> {
    if (!this.loaded) throw new Error('DEER: no model loaded');
    await this.loaded;
    return (await this.call((id) => ({ type: 'countTokens', id, text }))) as number;
  }

  /** Resident memory of the inference process, in bytes. */
  async memory(): Promise<number> {
    return (await this.call((id) => ({ type: 'memory', id }))) as number;
  }

  /** Stops the inference process. */
  async dispose(): Promise<void> {
    this.disposed = true;
    const child = this.child;
    this.child = undefined;
    this.failAll(new Error('DEER: engine disposed'));
    this.stopWatch();
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      try {
        child.send({ type: 'dispose' } satisfies ToWorker);
      } catch {
        /* already gone */
      }
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(timer);
    }
    this.setState('idle');
    this.listeners.clear();
  }

  /** Asks the child to stop request `id`; if it has not ended it within abortAckMs, the child is wedged. */
  private abort(id: number, settled = false): void {
    const p = this.pending.get(id);
    if (!p && !settled) return;
    if (p) p.aborted = true;
    if (this.unacked.has(id)) return;
    const ms = this.limit('abortAckMs');
    const timer = setTimeout(() => this.wedged(`did not stop a request within ${ms} ms of being asked`), ms);
    this.unacked.set(id, timer);
    this.post({ type: 'abort', id });
  }

  /** The child answered request `id` (result or error): an abort of it is acknowledged. */
  private acknowledged(id: number): void {
    const timer = this.unacked.get(id);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.unacked.delete(id);
    this.checkIdle();
  }

  /** Pings the child while anything is in flight; silence past the limit means it is wedged. */
  private watch(): void {
    if (this.pinger || !this.child) return;
    this.lastHeard = Date.now();
    this.pinger = setInterval(() => {
      if (!this.busy || !this.child) return this.stopWatch();
      const limit = this.limit(this._state === 'loading' ? 'loadLivenessMs' : 'livenessMs');
      if (Date.now() - this.lastHeard > limit) return this.wedged(`has not responded for ${limit} ms`);
      this.post({ type: 'ping' });
    }, this.limit('pingMs'));
    this.pinger.unref();
  }

  private stopWatch(): void {
    clearInterval(this.pinger);
    this.pinger = undefined;
  }

  /** Kills a child that stopped answering; its exit is handled as a crash (restart or give up). */
  private wedged(reason: string): void {
    const child = this.child;
    this.stopWatch();
    if (!child || this.killReason) return;
    this.killReason = `inference process ${reason}`;
    child.kill('SIGKILL');
  }

  private call(make: (id: number) => ToWorker): Promise<number | CompletionResult> {
    const id = this.nextId++;
    return new Promise<number | CompletionResult>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.watch();
      this.post(make(id));
    }).finally(() => this.checkIdle());
  }

  private post(msg: ToWorker): void {
    const child = this.child;
    if (!child || !child.connected) {
      if ('id' in msg && msg.type !== 'abort') this.settle(msg.id, (p) => p.reject(new WorkerCrashedError('DEER: inference process is not running')));
      return;
    }
    child.send(msg, (err) => {
      if (err && 'id' in msg && msg.type !== 'abort') this.settle(msg.id, (p) => p.reject(err));
    });
  }

  private start(): Promise<ModelInfo> {
    const old = this.child;
    this.child = undefined;
    old?.kill('SIGKILL');
    this.failAll(new WorkerCrashedError('DEER: inference process restarted'));
    this.disposed = false;
    this.stderrTail = '';
    this.killReason = undefined;
    this.stopWatch();

    const child = fork(this.opts.workerPath, [], {
      serialization: 'advanced',
      execArgv: [],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      // ELECTRON_RUN_AS_NODE: in desktop VS Code, process.execPath is Electron.
      env: { ...MALLOC_ENV, ...process.env, ELECTRON_RUN_AS_NODE: '1', ...this.opts.env },
    });
    this.child = child;
    const output = (stream: NodeJS.ReadableStream | null): void => {
      let partial = ''; // a line split across chunks is logged once whole
      stream?.on('data', (data: Buffer) => {
        this.lastHeard = Date.now();
        const text = data.toString();
        this.stderrTail = (this.stderrTail + text.replace(ANSI, '')).slice(-2000);
        const lines = (partial + text).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines.map(plainLogLine)) if (line) this.emit({ type: 'log', line });
      });
      stream?.on('end', () => {
        const line = plainLogLine(partial);
        if (line) this.emit({ type: 'log', line });
      });
    };
    output(child.stdout);
    output(child.stderr);
    child.on('message', (msg: FromWorker) => this.onMessage(msg));
    child.on('error', (err) => this.emit({ type: 'log', line: `inference process error: ${err.message}` }));
    child.on('exit', (code, signal) => {
      if (child !== this.child || this.disposed) return;
      this.onCrash(code, signal);
    });

    this.setState('loading');
    this.loaded = new Promise<ModelInfo>((resolve, reject) => {
      this.loadWaiter = { resolve, reject };
    });
    this.loaded.catch(() => undefined); // observed by callers of load()/complete()
    this.post({ type: 'load', options: this.options as EngineOptions, warm: this.warm });
    this.watch();
    return this.loaded;
  }

  private onMessage(msg: FromWorker): void {
    this.lastHeard = Date.now();
    if (msg.type === 'result' || msg.type === 'error') this.acknowledged(msg.id);
    switch (msg.type) {
      case 'loaded':
        this._info = msg.info;
        this._error = undefined;
        this.setState('ready');
        this.loadWaiter?.resolve(msg.info);
        this.loadWaiter = undefined;
        this.emit({ type: 'log', line: `model ${msg.info.name} loaded in ${Math.round(msg.loadMs)} ms (drafters: ${msg.info.drafters.join(', ')})` });
        for (const w of msg.info.warnings ?? []) this.emit({ type: 'log', line: `model warning: ${w}` });
        this.checkIdle();
        break;
      case 'loadError': {
        const err = fromWire(msg.error);
        this._error = err;
        this.setState('error', err);
        this.loadWaiter?.reject(err);
        this.loadWaiter = undefined;
        this.checkIdle();
        break;
      }
      case 'chunk':
        this.pending.get(msg.id)?.onChunk?.(msg.text);
        break;
      case 'result':
        for (const w of msg.result.warnings ?? []) this.emit({ type: 'log', line: `model warning: ${w}` });
        this.settle(msg.id, (p) => p.resolve(msg.result));
        break;
      case 'value':
        this.settle(msg.id, (p) => p.resolve(msg.value));
        break;
      case 'error':
        this.settle(msg.id, (p) => p.reject(fromWire(msg.error)));
        break;
    }
  }

  private onCrash(code: number | null, signal: NodeJS.Signals | null): void {
    const how = signal ? `signal ${signal}` : `exit code ${code}`;
    const detail = this.stderrTail.trim().split('\n').slice(-3).join(' | ');
    const message = this.killReason ?? `inference process stopped unexpectedly (${how})${detail ? `: ${detail}` : ''}`;
    this.killReason = undefined;
    this.stopWatch();
    this.child = undefined;
    this.failAll(new WorkerCrashedError(`DEER: ${message}`));
    const now = Date.now();
    const window = this.limit('crashWindowMs');
    this.crashTimes = [...this.crashTimes.filter((t) => now - t < window), now];
    const restarting = this.crashTimes.length <= this.limit('maxCrashes') && this.options !== undefined;
    this.emit({ type: 'crash', message, restarting });
    if (restarting) {
      this.start().catch(() => undefined);
    } else {
      const err = new Error(`DEER: ${message}; gave up after ${this.crashTimes.length} crashes`);
      this._error = err;
      this.loadWaiter?.reject(err);
      this.loadWaiter = undefined;
      this.loaded = Promise.reject(err);
      this.loaded.catch(() => undefined);
      this.setState('error', err);
    }
  }

  private failAll(err: Error): void {
    for (const id of [...this.pending.keys()]) this.settle(id, (p) => (p.aborted ? p.resolve(abortedResult()) : p.reject(err)));
    for (const timer of this.unacked.values()) clearTimeout(timer);
    this.unacked.clear();
    this.loadWaiter?.reject(err);
    this.loadWaiter = undefined;
    this.inlineInFlight = undefined;
    this.prefetchInFlight = undefined;
  }

  private settle(id: number, f: (p: Pending) => void): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.deadline);
    f(p);
  }

  private setState(state: ClientState, error?: Error): void {
    if (this._state === state && !error) return;
    this._state = state;
    this.emit({ type: 'state', state, error });
    this.checkIdle();
  }

  private checkIdle(): void {
    if (this.busy || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private emit(e: ClientEvent): void {
    for (const l of [...this.listeners]) {
      try {
        l(e);
      } catch {
        /* a listener's bug is not ours to crash on */
      }
    }
  }
}
