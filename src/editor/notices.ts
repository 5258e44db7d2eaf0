// What the user is told when the model does not load: one toast per cause, the folder named once.
// Pure (no 'vscode').

/** What the user can do about a model that does not load: the toast's buttons and the stats view's. */
export const LOAD_ERROR_ACTIONS: readonly { title: string; command: string }[] = [
  { title: 'Choose Model Folder…', command: 'deer.chooseModelFolder' },
  { title: 'Use Embedded Model', command: 'deer.useEmbeddedModel' },
  { title: 'Open Settings', command: 'deer.openSettings' },
];

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
