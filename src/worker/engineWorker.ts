// The inference process: runs the Engine on requests from EngineClient (src/worker/engineClient.ts).
// Started with child_process.fork so a native crash or a long decode never touches the
// extension host. One inference at a time; queued requests that were aborted never run.
import { Engine } from '../engine';
import type { CompletionResult, RunStats } from '../engine/api';
import type { FromWorker, ToWorker, WireError, WireRequest } from './protocol';

let engine: Engine | undefined;
let loading: Promise<void> = Promise.resolve();
let queue: Promise<void> = Promise.resolve();
const controllers = new Map<number, AbortController>();
/** Requests queued and not started: an abort answers them at once (the client times aborts). */
const waiting = new Set<number>();
const requests = new Map<number, WireRequest>();

function send(msg: FromWorker): void {
  process.send?.(msg);
}

function toWire(err: unknown): WireError {
  const e = err instanceof Error ? err : new Error(String(err));
  return { name: e.name || e.constructor?.name || 'Error', message: e.message };
}

function emptyStats(drafter: RunStats['drafter']): RunStats {
  return {
    drafter, promptTokens: 0, reusedTokens: 0, newTokens: 0, passes: 0, acceptedHistogram: [], meanAccepted: 0,
    prefillMs: 0, draftMs: 0, verifyMs: 0, decodeMs: 0, totalMs: 0, tokensPerSecond: 0, estimatedSpeedup: 0,
  };
}

function sendAborted(id: number, request: WireRequest): void {
  const aborted: CompletionResult = { text: '', tokens: [], stopReason: 'aborted', stats: emptyStats(request.drafter ?? 'none') };
  send({ type: 'result', id, result: aborted });
}

async function complete(id: number, request: WireRequest, stream: boolean, signal: AbortSignal): Promise<void> {
  if (!waiting.delete(id)) return; // aborted while queued, and already answered
  await loading;
  if (!engine) throw new Error('no model loaded');
  if (signal.aborted) return sendAborted(id, request);
  const result = await engine.complete(request, { signal, onChunk: stream ? (text) => send({ type: 'chunk', id, text }) : undefined });
  send({ type: 'result', id, result });
}

process.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'load':
      loading = (async () => {
        const t0 = performance.now();
        try {
          const old = engine;
          engine = undefined;
          await old?.dispose();
          engine = await Engine.load(msg.options);
          if (msg.warm && engine.info.drafters.includes(msg.warm)) await engine.warm(msg.warm);
          send({ type: 'loaded', info: engine.info, loadMs: performance.now() - t0 });
        } catch (err) {
          send({ type: 'loadError', error: toWire(err) });
        }
      })();
      break;
    case 'complete': {
      const controller = new AbortController();
      controllers.set(msg.id, controller);
      waiting.add(msg.id);
      requests.set(msg.id, msg.request);
      queue = queue
        .then(() => complete(msg.id, msg.request, msg.stream, controller.signal))
        .catch((err) => send({ type: 'error', id: msg.id, error: toWire(err) }))
        .finally(() => {
          controllers.delete(msg.id);
          requests.delete(msg.id);
        });
      break;
    }
    case 'abort': {
      controllers.get(msg.id)?.abort();
      const request = requests.get(msg.id);
      if (waiting.delete(msg.id) && request) sendAborted(msg.id, request);
      break;
    }
    case 'countTokens':
      loading
        .then(async () => {
          if (!engine) throw new Error('no model loaded');
          send({ type: 'value', id: msg.id, value: await engine.countTokens(msg.text) });
        })
        .catch((err) => send({ type: 'error', id: msg.id, error: toWire(err) }));
      break;
    case 'ping':
      send({ type: 'pong' });
      break;
    case 'memory':
      send({ type: 'value', id: msg.id, value: process.memoryUsage().rss });
      break;
    case 'dispose':
      for (const c of controllers.values()) c.abort();
      void queue.finally(async () => {
        await engine?.dispose();
        process.exit(0);
      });
      break;
  }
});

// The extension host went away: nothing left to serve.
process.on('disconnect', () => process.exit(0));
