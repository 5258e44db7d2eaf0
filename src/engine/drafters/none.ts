// Plain decoding: drafts nothing, so each verifier pass yields exactly one token (the baseline).
import type { Draft, Drafter } from './types';

export class NoDrafter implements Drafter {
  readonly name = 'none' as const;
  async begin(): Promise<void> {}
  async draft(): Promise<Draft> {
    return { tokens: [] };
  }
  accept(): void {}
  async dispose(): Promise<void> {}
}
