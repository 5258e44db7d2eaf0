// Messages between the extension (EngineClient) and the inference process (engineWorker).
// Everything here crosses a process boundary: plain data only (the stop rule travels as the
// request's StopSpec; the engine builds the rule from it).
import type { CompletionRequest, CompletionResult, DrafterName, EngineOptions, ModelInfo } from '../engine/api';

/** A completion request as sent: the engine's request minus the `stopAt` callback. */
export type WireRequest = Omit<CompletionRequest, 'stopAt'>;

export type ToWorker =
  /** Load (or reload) the model; `warm` loads that drafter's session too, before 'loaded'. */
  | { type: 'load'; options: EngineOptions; warm?: DrafterName }
  | { type: 'complete'; id: number; request: WireRequest; stream: boolean }
  | { type: 'abort'; id: number }
  | { type: 'countTokens'; id: number; text: string }
  | { type: 'memory'; id: number }
  /** Liveness check: answered with 'pong' at once, whatever is running. */
  | { type: 'ping' }
  | { type: 'dispose' };

export interface WireError {
  name: string;
  message: string;
}

export type FromWorker =
  | { type: 'loaded'; info: ModelInfo; loadMs: number }
  | { type: 'loadError'; error: WireError }
  | { type: 'chunk'; id: number; text: string }
  | { type: 'result'; id: number; result: CompletionResult }
  | { type: 'value'; id: number; value: number }
  | { type: 'error'; id: number; error: WireError }
  | { type: 'pong' };
