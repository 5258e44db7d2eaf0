// The VS Code side of inline completion: bridges the provider's CancellationToken to an
// AbortSignal and hands the document to the InlinePipeline (src/editor/inlineCompletion.ts).
import * as vscode from 'vscode';
import type { DocText } from './context';
import { describeAnswer, type InlinePipeline } from './inlineCompletion';

/** Documents the provider serves: real files and unsaved buffers, not output panes or git views. */
export const INLINE_SELECTOR: vscode.DocumentSelector = [
  { scheme: 'file' },
  { scheme: 'untitled' },
  { scheme: 'vscode-remote' },
  { scheme: 'vscode-notebook-cell' },
];

export function documentText(document: vscode.TextDocument): DocText {
  const length = document.offsetAt(document.lineAt(document.lineCount - 1).range.end);
  return {
    length,
    slice: (start, end) => document.getText(new vscode.Range(document.positionAt(start), document.positionAt(end))),
  };
}

export class DeerInlineProvider implements vscode.InlineCompletionItemProvider {
  constructor(
    private readonly pipeline: InlinePipeline,
    /** False while disabled (for this language) or while Generate writes into the editor. */
    private readonly isActive: (document: vscode.TextDocument) => boolean,
    private readonly track: <T>(work: Promise<T>) => Promise<T>,
    private readonly log: (line: string) => void,
  ) {}

  async provideInlineCompletionItems(
    document: vscode.TextDocument,
    position: vscode.Position,
    context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
  ): Promise<vscode.InlineCompletionItem[] | undefined> {
    if (!this.isActive(document) || token.isCancellationRequested) return undefined;
    // With the suggest widget open, VS Code shows only ghost text that continues the selected item.
    const item = context.selectedCompletionInfo;
    const selected = item && { start: document.offsetAt(item.range.start), end: document.offsetAt(item.range.end), text: item.text };
    const controller = new AbortController();
    const sub = token.onCancellationRequested(() => controller.abort());
    try {
      const answer = await this.track(
        this.pipeline.suggest({
          doc: documentText(document),
          offset: document.offsetAt(position),
          manual: context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke,
          signal: controller.signal,
          ...(selected ? { selected } : {}),
        }),
      );
      if (answer?.source === 'model') this.log(describeAnswer(answer));
      if (!answer || answer.text === '' || token.isCancellationRequested) return undefined;
      if (item) return [new vscode.InlineCompletionItem(item.text + answer.text, item.range)];
      return [new vscode.InlineCompletionItem(answer.text, new vscode.Range(position, position))];
    } catch (err) {
      this.log(`inline completion failed: ${err instanceof Error ? err.message : String(err)}`);
      return undefined;
    } finally {
      sub.dispose();
    }
  }
}
