/** Whether the file really continues with the suggestion's first line (at least 3 non-blank characters). */
export function isRight(suggestion: string, truth: string): boolean {
  const first = suggestion.split('\n').find((l) => l.trim() !== '') ?? '';
  if (first.replace(/\s/g, '').length < 3) return false;
  const lead = suggestion.slice(0, suggestion.indexOf(first) + first.trimEnd().length);
  return truth.startsWith(lead);
}
