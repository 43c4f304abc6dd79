/**
 * Principal names custos itself writes into the audit log — `custos` for the
 * node's own actions, `anonymous` for callers without a credential, `root`
 * and `dev` for the init and development root tokens, `custodian:<id>` for a
 * share submission, `operator (SIGHUP)` for a signal — are never anybody's
 * name: a token, an identity-token mapping or a policy principal carrying
 * one would make the log attribute a caller's act to the node or to a
 * custodian. The rule is one predicate used everywhere a name enters
 * (minting, identity rules, the policy's principals), so a new system name
 * is reserved by adding it here.
 */

/** Exact names reserved for the node's own audit events. */
export const RESERVED_PRINCIPALS: ReadonlySet<string> = new Set([
  "custos",
  "anonymous",
  "root",
  "dev",
  "operator",
  "system",
]);

/**
 * Is the name reserved? The exact names above, and anything with a `:` or a
 * space — the separators of the system's composite names (`custodian:alice`,
 * `operator (SIGHUP)`) — compared case-insensitively so `Custos` is refused too.
 */
export function isReservedPrincipal(name: string): boolean {
  return RESERVED_PRINCIPALS.has(name.toLowerCase()) || /[:\s]/.test(name);
}

/** The refusal's wording, shared by the API, the identity mapping and the linter. */
export function reservedReason(name: string): string {
  return `'${name}' is reserved for custos's own audit events (custos, anonymous, root, dev, operator, system, and names with ':' or spaces such as custodian:<id>)`;
}
