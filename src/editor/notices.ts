// What the user is told when the model does not load: one toast per cause, the folder named once.
// Pure (no 'vscode'). Also the toast that ends a Generate run.
import type { CompletionResult, StopReason } from '../engine/api';

/** What the user can do about a model that does not load: the toast's buttons and the stats view's. */
export const LOAD_ERROR_ACTIONS: readonly { title: string; command: string }[] = [
  { title: 'Choose Model Folder…', command: 'deer.chooseModelFolder' },
  { title: 'Use Embedded Model', command: 'deer.useEmbeddedModel' },
  { title: 'Open Settings', command: 'deer.openSettings' },
];

/** The actions that apply: "Use Embedded Model" only while another folder is set (`deer.modelPath`). */
export function loadErrorActions(modelPathSetting: string): readonly { title: string; command: string }[] {
  return LOAD_ERROR_ACTIONS.filter((a) => a.command !== 'deer.useEmbeddedModel' || modelPathSetting !== '');
}

/** Commands the stats view's page may run (its buttons): Toggle and the load-error actions. */
export const PAGE_COMMANDS: ReadonlySet<string> = new Set(['deer.toggle', ...LOAD_ERROR_ACTIONS.map((a) => a.command)]);

/** What DEER: Toggle Inline Completion says it did. */
export function toggleNotice(on: boolean): string {
  return on ? 'DEER: inline completion is on.' : 'DEER: inline completion is off (DEER: Generate still works).';
}

export interface LoadFailure {
  name: string;
  message: string;
}

/** `DEER: <dir> is not a usable model folder: config.json: missing` (the folder is not repeated inside the reason). */
export function loadErrorMessage(dir: string, err: LoadFailure): string {
  const kind = err.name === 'ModelFolderError' ? 'is not a usable model folder' : 'could not be loaded';
  const trimmed = dir.replace(/[\\/]+$/, '');
  const reason = err.message.split(trimmed + '/').join('').split(trimmed + '\\').join('').split(trimmed).join('the folder');
  return `DEER: ${trimmed} ${kind}: ${reason}`;
}

/** Remembers which load failures were shown, so that each cause is shown once until a load succeeds. */
export class LoadErrorNotices {
  private readonly shown = new Set<string>();

  /** The toast's text for this failure, or undefined when this cause was already shown. */
  next(dir: string, err: LoadFailure): string | undefined {
    const message = loadErrorMessage(dir, err);
    if (this.shown.has(message)) return undefined;
    this.shown.add(message);
    return message;
  }

  /** A load succeeded: a later failure is news again. */
  reset(): void {
    this.shown.clear();
  }
}

/** Why Generate stopped, where the user could not tell from the text: undefined for a natural end. */
const STOP_EXPLANATIONS: Partial<Record<StopReason, (maxNewTokens: number) => string>> = {
  repeat: () => 'stopped because the output was repeating itself; one copy kept',
  max_tokens: (max) => `stopped at the limit of ${max} tokens, deer.generate.maxNewTokens`,
  control: () => 'stopped where the model wrote a control token, which is never inserted',
};

/** The toast after a Generate run that wrote `written`: what it wrote, how fast, and why it stopped when that is not obvious. */
export function generateDoneMessage(result: Pick<CompletionResult, 'stopReason' | 'stats'>, written: string, maxNewTokens: number): string {
  const s = result.stats;
  if (written.trim() === '') return result.stopReason === 'aborted' ? 'DEER: Generate cancelled.' : 'DEER: the model had nothing to add here.';
  const verb = result.stopReason === 'aborted' ? 'stopped after' : 'wrote';
  const why = STOP_EXPLANATIONS[result.stopReason]?.(maxNewTokens);
  return (
    `DEER: ${verb} ${s.newTokens} tokens${why ? ` (${why})` : ''} · ${Math.round(s.tokensPerSecond)} tok/s · ` +
    `${s.meanAccepted.toFixed(2)} tokens per verifier pass (${s.drafter})`
  );
}
