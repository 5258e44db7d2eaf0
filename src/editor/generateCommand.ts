// "DEER: Generate": writes code at the cursor from what precedes it (the current line, the
// selection or a comment), streaming accepted tokens into the editor. One undo removes it all:
// the first edit opens an undo stop, the rest join it, and the last one closes it.
import * as vscode from 'vscode';
import type { CompletionResult } from '../engine/api';
import type { EngineClient } from '../worker/engineClient';
import { requestSettings, type DeerConfig } from './config';
import { buildContext } from './context';
import { documentText } from './inlineProvider';
import { generateDoneMessage } from './notices';
import type { CompletionRecord } from './stats';

export interface GenerateDeps {
  client: EngineClient;
  config: () => DeerConfig;
  /** Starts the model load if it has not started; resolves when it is loaded. */
  ensureLoaded: () => Promise<unknown>;
  onRecord: (record: CompletionRecord) => void;
  setGenerating: (on: boolean) => void;
  /** Shows a toast (the extension's one channel for them). */
  notify: (kind: 'info' | 'warning' | 'error', message: string) => unknown;
  /** Told every progress message shown (the test hook lists them). */
  onProgress?: (message: string) => void;
}

export async function generateAtCursor(deps: GenerateDeps): Promise<CompletionResult | undefined> {
  const editor = vscode.window.activeTextEditor;
  if (!editor) {
    void deps.notify('info', 'DEER: open a file and place the cursor where code should go.');
    return undefined;
  }
  const document = editor.document;
  // With a selection (say, a comment describing the code), write after it; never replace it.
  const position = editor.selection.isEmpty ? editor.selection.active : editor.selection.end;
  const cfg = deps.config();
  const offset = document.offsetAt(position);

  return vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: 'DEER: Generating', cancellable: true },
    async (progress, token) => {
      const controller = new AbortController();
      const sub = token.onCancellationRequested(() => controller.abort());
      const writer = new StreamWriter(editor, position, () => controller.abort());
      const showProgress = (message: string): void => {
        deps.onProgress?.(message);
        progress.report({ message });
      };
      deps.setGenerating(true);
      const t0 = performance.now();
      try {
        if (deps.client.state !== 'ready') showProgress('loading the model…');
        await deps.ensureLoaded();
        const info = deps.client.info;
        const built = buildContext(documentText(document), offset);
        if (!built.ok) {
          void deps.notify('warning', `DEER: no generation here: ${built.reason}.`);
          return undefined;
        }
        showProgress('writing…');
        let chunks = 0;
        const result = await deps.client.complete(
          {
            prefix: built.context.prefix,
            suffix: built.context.suffix,
            maxNewTokens: cfg.generateMaxNewTokens,
            ...requestSettings(cfg, info),
          },
          {
            signal: controller.signal,
            lane: 'generate',
            onChunk: (text) => {
              writer.push(text);
              if (++chunks % 8 === 0) showProgress(`${writer.written.length} characters…`);
            },
          },
        );
        await writer.finish();
        const record: CompletionRecord = { kind: 'generate', at: Date.now(), latencyMs: performance.now() - t0, stats: result.stats };
        if (result.stats.newTokens > 0) deps.onRecord(record);
        void deps.notify('info', generateDoneMessage(result, writer.written, cfg.generateMaxNewTokens));
        return result;
      } catch (err) {
        await writer.finish().catch(() => undefined);
        // A model that does not load has its own toast, once per cause.
        if (deps.client.state !== 'error') void deps.notify('error', `DEER: Generate failed: ${err instanceof Error ? err.message : String(err)}`);
        return undefined;
      } finally {
        deps.setGenerating(false);
        sub.dispose();
      }
    },
  );
}

/**
 * Applies streamed text at the insertion point, one edit at a time. The last character is held
 * back until `finish()` so the final edit can close the undo group. Stops (and calls onConflict)
 * if someone else edits the document meanwhile.
 */
class StreamWriter {
  written = '';
  private buffer = '';
  private first = true;
  private running?: Promise<void>;
  private stopped = false;
  private expectedVersion: number;
  private readonly startOffset: number;

  constructor(private readonly editor: vscode.TextEditor, at: vscode.Position, private readonly onConflict: () => void) {
    this.expectedVersion = editor.document.version;
    this.startOffset = editor.document.offsetAt(at);
  }

  push(text: string): void {
    if (this.stopped) return;
    this.buffer += text;
    this.running ??= this.drain(false).finally(() => (this.running = undefined));
  }

  async finish(): Promise<void> {
    while (this.running) await this.running;
    await this.drain(true);
    this.stopped = true;
  }

  private async drain(final: boolean): Promise<void> {
    while (!this.stopped && this.buffer.length > (final ? 0 : 1)) {
      const text = final ? this.buffer : this.buffer.slice(0, -1);
      this.buffer = this.buffer.slice(text.length);
      await this.apply(text, final);
    }
  }

  private async apply(text: string, last: boolean): Promise<void> {
    const document = this.editor.document;
    if (document.isClosed || document.version !== this.expectedVersion) {
      this.stopped = true;
      this.onConflict();
      return;
    }
    const at = document.positionAt(this.startOffset + this.written.length);
    // Rejects when the editor was closed meanwhile: stop, as for a refused edit.
    const ok = await this.editor
      .edit((b) => b.insert(at, text), { undoStopBefore: this.first, undoStopAfter: last })
      .then(undefined, () => false);
    if (!ok) {
      this.stopped = true;
      this.onConflict();
      return;
    }
    this.first = false;
    this.written += text;
    this.expectedVersion = document.version;
  }
}
