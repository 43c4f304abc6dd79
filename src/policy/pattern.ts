/**
 * Key-name patterns: a key name with `*` for any run of name characters
 * (possibly empty) and `{org}` for the caller's organisation. Deliberately
 * this small — no character classes, no alternation — so that the linter can
 * decide exactly whether two patterns can name a common key (`overlaps`),
 * which is what "can this role both administer and use some key" needs.
 * Both tests are dynamic programmes over the two strings (at most |a|·|b|
 * steps), never regular expressions built from policy text.
 */

/** Replaces `{org}` with an organisation id; patterns without it are unchanged. */
export function instantiate(pattern: string, organisation: string): string {
  return pattern.replaceAll("{org}", organisation);
}

/**
 * Does the (instantiated) pattern match the name, every character of which
 * is taken literally? For a key name that is plain matching. For a second
 * pattern it is a sound test of containment: the pattern's literals can only
 * meet the other's literals, so whatever the other's `*` stand for, the
 * pattern's own `*` absorb it ("ehr-*" covers "ehr-nyu-*").
 */
export function matches(pattern: string, name: string): boolean {
  // Runs on every request (decide()), so no memo table: the literal runs
  // between stars are placed leftmost, which is optimal when `*` is the only
  // wildcard — the first run must be a prefix, the last a suffix, and each
  // one in between found after the previous. O(|pattern|·|name|) at worst.
  const star = pattern.indexOf("*");
  if (star < 0) return pattern === name;
  const runs = pattern.split("*");
  const head = runs[0] as string;
  const tail = runs[runs.length - 1] as string;
  if (name.length < head.length + tail.length || !name.startsWith(head) || !name.endsWith(tail)) return false;
  let at = head.length;
  const end = name.length - tail.length;
  for (let i = 1; i < runs.length - 1; i++) {
    const run = runs[i] as string;
    const found = name.indexOf(run, at);
    if (found < 0 || found + run.length > end) return false;
    at = found + run.length;
  }
  return true;
}

/**
 * Is there a key name both patterns match? `*` on either side may absorb
 * any run of the other side, including the other's `*`. Memoised over the
 * (i, j) positions, so at most |a|·|b| states.
 */
export function overlaps(a: string, b: string): boolean {
  const memo = new Map<number, boolean>();
  const go = (i: number, j: number): boolean => {
    const k = i * (b.length + 1) + j;
    const seen = memo.get(k);
    if (seen !== undefined) return seen;
    let r: boolean;
    if (i === a.length && j === b.length) r = true;
    else if (a[i] === "*") r = go(i + 1, j) || (j < b.length && go(i, j + 1));
    else if (b[j] === "*") r = go(i, j + 1) || (i < a.length && go(i + 1, j));
    else r = i < a.length && j < b.length && a[i] === b[j] && go(i + 1, j + 1);
    memo.set(k, r);
    return r;
  };
  return go(0, 0);
}

/** Does any of the patterns, instantiated for the organisation, name a key the other pattern names? */
export function anyOverlap(patterns: readonly string[], other: string, organisation: string): boolean {
  return patterns.some((p) => overlaps(instantiate(p, organisation), other));
}
