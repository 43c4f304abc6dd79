/**
 * For tests of a node running a policy, in memory: tokens minted straight
 * into the store for the policy's principals (with a policy the token's
 * roles do not count, only its principal's name), and a caller that sends a
 * request as one of them with a purpose of use in `X-Purpose-Of-Use`.
 */
import { randomBytes } from "node:crypto";
import type { App } from "../../src/api/app.js";
import { hashToken } from "../../src/crypto/token.js";
import type { Store } from "../../src/store/store.js";

export async function mintTokens(store: Store, principals: readonly string[]): Promise<Map<string, string>> {
  const tokens = new Map<string, string>();
  for (const principal of principals) {
    const token = `cst_${randomBytes(32).toString("base64url")}`;
    const now = new Date().toISOString();
    await store.putToken(
      {
        hash: hashToken(token),
        principal,
        roles: ["service"],
        createdBy: "test",
        createdAt: now,
        expiresAt: null,
      },
      { time: now, principal: "test", operation: "tokens.create", decision: "allow" },
    );
    tokens.set(principal, token);
  }
  return tokens;
}

export interface Reply {
  status: number;
  body: Record<string, unknown> & { error?: { code: string; rule?: string; message?: string } };
}

/** `call(who, method, path, body?, purpose?)` against the app, as the token holder `who`. */
export function caller(app: () => App, tokens: ReadonlyMap<string, string>) {
  return async (
    who: string,
    method: string,
    path: string,
    body?: unknown,
    purpose?: string,
  ): Promise<Reply> => {
    const headers: Record<string, string> = { authorization: `Bearer ${tokens.get(who)}` };
    if (purpose !== undefined) headers["x-purpose-of-use"] = purpose;
    if (body !== undefined) headers["content-type"] = "application/json";
    const res = await app().request(path, {
      method,
      headers,
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Reply["body"] };
  };
}
