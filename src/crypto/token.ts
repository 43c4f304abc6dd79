/**
 * Access tokens (docs/FORMATS.md §7): `cst_` followed by 256 random bits in
 * base64url. Only the SHA-256 of a token is ever stored or compared; a token
 * is high-entropy, so an unsalted hash is enough and a lookup by hash leaks
 * nothing useful through timing.
 */
import { createHash, randomBytes } from "node:crypto";

export const TOKEN_PREFIX = "cst_";
/** Bounds what is hashed and looked up; issued tokens are `cst_` + 43 chars, a dev root token may be any such string. */
const TOKEN_RE = /^[A-Za-z0-9._~+/=-]{4,256}$/;

export function newToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString("base64url");
}

/** True when `text` has the shape of a custos token (it may still be unknown). */
export function isTokenShaped(text: string): boolean {
  return TOKEN_RE.test(text);
}

export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}
