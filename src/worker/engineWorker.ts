// The inference process: runs the Engine on requests from EngineClient (src/worker/engineClient.ts).
// Started with child_process.fork so a native crash or a long decode never touches the
// extension host. It forwards: the Engine runs one request at a time and answers one aborted
// while queued at once; which requests are stale is the client's call (lanes).
import { Engine } from '../engine';
import type { FromWorker, ToWorker, WireError, WireRequest } from './protocol';

let engine: Engine | undefined;
let loading: Promise<void> = Promise.resolve();
/** Requests sent to the engine and not answered yet: an abort message aborts the signal. */
const controllers = new Map<number, AbortController>();

function send(msg: FromWorker): void {
  process.send?.(msg);
}

function toWire(err: unknown): WireError {
  const e = err instanceof Error ? err : new Error(String(err));
  return { name: e.name || e.constructor?.name || 'Error', message: e.message };
}

async function complete(id: number, request: WireRequest, stream: boolean, signal: AbortSignal): Promise<void> {
  await loading;
  if (!engine) throw new Error('no model loaded');
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
      complete(msg.id, msg.request, msg.stream, controller.signal)
        .catch((err) => send({ type: 'error', id: msg.id, error: toWire(err) }))
        .finally(() => controllers.delete(msg.id));
      break;
    }
    case 'abort':
      controllers.get(msg.id)?.abort();
      break;
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
      // The engine's dispose waits for the request it is running.
      void loading.finally(async () => {
        await engine?.dispose();
        process.exit(0);
      });
      break;
  }
});

// The extension host went away: nothing left to serve.
process.on('disconnect', () => process.exit(0));
