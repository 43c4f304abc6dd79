/**
 * The smallest coalition of principals able to do something: use a key
 * (requester plus the approvals it needs) or reconstruct the root key (a
 * custody quorum). Computed exactly by a search over coalition sizes
 * 1, 2, 3, … that stops at the first size with a coalition that can act, so
 * the answer is a minimum, not a heuristic.
 *
 * The search is made small by symmetry: what a principal contributes
 * depends only on its organisation, roles and kind (and on whether the
 * policy names it individually), so principals with the same signature form
 * one class and a coalition is a count per class, not a set of names. An
 * identity rule (claims mapped to roles) is a class with no size limit: any
 * number of people may sign in through it. For c classes the search looks
 * at most at C(c+k−1, k) count vectors of size k, each checked in O(c); it
 * is capped at MAX_SIZE members and MAX_CHECKS vectors, and says so
 * ("at least k") rather than guessing when a cap is reached. The goals are
 * monotone (adding people never removes an ability), which is what makes
 * the first size found the smallest.
 */
import type { Policy } from "./document.js";

export interface MemberClass {
  organisation: string;
  roles: readonly string[];
  kind: "person" | "service";
  /** Declared principal ids in the class (empty for an identity rule). */
  names: readonly string[];
  /** The identity rule this class signs in through, if any: then its size is unbounded. */
  identityRule?: string;
}

export interface Coalition {
  /** How many members of each class (parallel to the classes given to the search). */
  counts: readonly number[];
  size: number;
  /** Who, by name: declared ids, or "any principal of identity rule X". */
  members: readonly { name: string; organisation: string; kind: "person" | "service" }[];
}

export type SearchResult =
  | { found: true; coalition: Coalition }
  | { found: false; exhaustive: true }
  | { found: false; exhaustive: false; atLeast: number };

/**
 * A monotone ability of a coalition given as counts per class; `relevant`,
 * when given, marks the classes that can contribute at all, and the search
 * leaves the others out (the main saving on real policies).
 */
export type Goal = ((counts: readonly number[]) => boolean) & { relevant?: readonly boolean[] };

export const MAX_SIZE = 24;
export const MAX_CHECKS = 200_000;

/** The classes of a policy's principals and identity rules; `individual` ids keep a class of their own. */
export function memberClasses(policy: Policy, individual: ReadonlySet<string>): MemberClass[] {
  const classes: MemberClass[] = [];
  const bySignature = new Map<string, MemberClass & { names: string[] }>();
  for (const [id, p] of Object.entries(policy.principals)) {
    const roles = [...new Set(p.roles)].sort();
    const signature = individual.has(id) ? `id:${id}` : JSON.stringify([p.organisation, roles, p.kind]);
    const existing = bySignature.get(signature);
    if (existing) existing.names.push(id);
    else {
      const c = { organisation: p.organisation, roles, kind: p.kind, names: [id] };
      bySignature.set(signature, c);
      classes.push(c);
    }
  }
  for (const rule of policy.identities) {
    classes.push({
      organisation: rule.organisation,
      roles: [...new Set(rule.roles)].sort(),
      kind: rule.kind,
      names: [],
      identityRule: rule.id,
    });
  }
  return classes;
}

export function capacity(c: MemberClass): number {
  return c.identityRule !== undefined ? MAX_SIZE : c.names.length;
}

/**
 * The smallest coalition (by number of members) drawn from `classes` for
 * which `goal` holds; `allowed` restricts which classes may take part (to
 * ask "can one organisation do it alone?").
 */
export function smallestCoalition(
  classes: readonly MemberClass[],
  goal: Goal,
  allowed: (c: MemberClass) => boolean = () => true,
): SearchResult {
  const caps = classes.map((c, i) => (allowed(c) && goal.relevant?.[i] !== false ? capacity(c) : 0));
  const total = Math.min(
    MAX_SIZE,
    caps.reduce((a, b) => a + b, 0),
  );
  const counts = classes.map(() => 0);
  let checks = 0;
  let exhausted = false;

  // Every count vector of total `left` over classes i.., within the caps (stars and bars, in lexicographic order).
  const fill = (i: number, left: number): boolean => {
    if (i === classes.length) {
      if (left > 0) return false;
      if (++checks > MAX_CHECKS) {
        exhausted = true;
        return false;
      }
      return goal(counts);
    }
    for (let n = Math.min(left, caps[i]!); n >= 0; n--) {
      counts[i] = n;
      if (fill(i + 1, left - n)) return true;
      if (exhausted) break;
    }
    counts[i] = 0;
    return false;
  };

  for (let size = 1; size <= total; size++) {
    if (fill(0, size)) return { found: true, coalition: describe(classes, counts, size) };
    if (exhausted) return { found: false, exhaustive: false, atLeast: size };
  }
  const sum = caps.reduce((a, b) => a + b, 0);
  const unbounded = classes.some((c, i) => caps[i]! > 0 && c.identityRule !== undefined);
  return sum <= MAX_SIZE && !unbounded
    ? { found: false, exhaustive: true }
    : { found: false, exhaustive: false, atLeast: MAX_SIZE + 1 };
}

function describe(classes: readonly MemberClass[], counts: readonly number[], size: number): Coalition {
  const members: { name: string; organisation: string; kind: "person" | "service" }[] = [];
  counts.forEach((n, i) => {
    const c = classes[i]!;
    for (let k = 0; k < n; k++) {
      const name =
        c.identityRule !== undefined
          ? `${n > 1 ? `principal ${k + 1} of ${n}` : "any principal"} signed in through identity rule ${c.identityRule}`
          : c.names[k]!;
      members.push({ name, organisation: c.organisation, kind: c.kind });
    }
  });
  return { counts: [...counts], size, members };
}

/** The sentence's subject: "Alice Chen (alice) and Bob Park (bob), both of NYU Langone, together", "nyu-ehr-store, a service, of NYU Langone alone". */
export function describeMembers(policy: Policy, coalition: Coalition): string {
  const orgName = (o: string) => (Object.hasOwn(policy.organisations, o) ? policy.organisations[o]!.name : o);
  const label = (m: Coalition["members"][number]) => {
    const declared = Object.hasOwn(policy.principals, m.name) ? policy.principals[m.name] : undefined;
    const shown = declared?.name ? `${declared.name} (${m.name})` : m.name;
    return m.kind === "service" ? `${shown}, a service,` : shown;
  };
  const orgs = [...new Set(coalition.members.map((m) => m.organisation))];
  const names = coalition.members.map(label);
  const list =
    names.length <= 2 ? names.join(" and ") : `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
  if (coalition.members.length === 1) return `${list} of ${orgName(orgs[0]!)} alone`;
  if (orgs.length === 1)
    return `${list}, ${coalition.members.length === 2 ? "both" : "all"} of ${orgName(orgs[0]!)}, together`;
  return `${list} (of ${orgs.map(orgName).join(", ")}) together`;
}
