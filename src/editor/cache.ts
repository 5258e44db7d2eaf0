// Recent suggestions, for instant answers while typing. Pure (no 'vscode').
// An LRU map (Map keeps insertion order) keyed by the FIM context. A lookup also finds
// a suggestion the user is typing through: an entry whose prefix plus the characters typed since
// equals the current prefix, with those characters matching the start of its suggestion.

interface Entry {
  prefix: string;
  suffix: string;
  completion: string;
}

export class SuggestionCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly capacity = 64) {}

  get size(): number {
    return this.entries.size;
  }

  /** Remembers `completion` ('' = the model had nothing) for this context. */
  set(prefix: string, suffix: string, completion: string): void {
    const key = keyOf(prefix, suffix);
    this.entries.delete(key);
    this.entries.set(key, { prefix, suffix, completion });
    while (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value as string);
  }

  /**
   * The suggestion for this context: an exact hit (possibly '' = nothing to show), else the rest
   * of a suggestion being typed through; undefined when the model must be asked.
   */
  get(prefix: string, suffix: string): string | undefined {
    const exact = this.entries.get(keyOf(prefix, suffix));
    if (exact) {
      this.touch(exact);
      return exact.completion;
    }
    let best: Entry | undefined;
    for (const e of this.entries.values()) {
      if (e.suffix !== suffix || e.completion === '' || !prefix.startsWith(e.prefix)) continue;
      const typed = prefix.length - e.prefix.length;
      if (typed >= e.completion.length) continue;
      if (!e.completion.startsWith(prefix.slice(e.prefix.length))) continue;
      if (!best || e.prefix.length > best.prefix.length) best = e;
    }
    if (!best) return undefined;
    this.touch(best);
    return best.completion.slice(prefix.length - best.prefix.length);
  }

  clear(): void {
    this.entries.clear();
  }

  private touch(e: Entry): void {
    const key = keyOf(e.prefix, e.suffix);
    this.entries.delete(key);
    this.entries.set(key, e);
  }
}

const keyOf = (prefix: string, suffix: string): string => `${prefix.length}:${prefix}\u0000${suffix}`;
