/**
 * `custos token create|list|revoke`: minting a token for a principal,
 * listing tokens (id = the first 16 hex digits of the token's hash,
 * principal, creator, expiry, last use; the root token of init flagged as
 * never expiring), and revoking one by id, which takes effect on the
 * server's next request. Under a policy each needs its operation
 * (`token-create`, `token-read`, `token-revoke`) and CUSTOS_PURPOSE.
 */
import type { Command } from "commander";
import type { Client } from "../client.js";
import { asFormat, collect, print } from "../io.js";

interface TokenInfo {
  id: string;
  principal: string;
  roles: string[];
  createdBy: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  mintedUnder: string | null;
  neverExpires: boolean;
}

const formatOption = ["--format <format>", "text or json", "text"] as const;

function row(t: TokenInfo): string {
  const expiry = t.neverExpires ? "NEVER (root token: revoke once bootstrap is done)" : t.expiresAt;
  return [
    t.id,
    t.principal,
    `by ${t.createdBy}${t.mintedUnder ? ` under ${t.mintedUnder}` : ""}`,
    `expires ${expiry}`,
    `last used ${t.lastUsedAt ?? "never"}`,
  ].join("  ");
}

export function tokenCommands(program: Command, client: () => Client): void {
  const token = program.command("token").description("mint, list and revoke access tokens");

  token
    .command("create")
    .description("mint a token for a principal (under a policy: one your grant's tokens rule covers)")
    .requiredOption("--principal <id>", "who the token is for")
    .requiredOption("--role <role>", "admin, custodian, service or auditor (repeatable)", collect)
    .option("--ttl <seconds>", "lifetime in seconds (default 30 days, at most 366 days)", Number)
    .option(...formatOption)
    .action(async (opts: { principal: string; role: string[]; ttl?: number; format: string }) => {
      const format = asFormat(opts.format);
      const out = await client().request<{ token: string; expiresAt: string | null }>("POST", "/v1/tokens", {
        principal: opts.principal,
        roles: opts.role,
        ...(opts.ttl !== undefined ? { ttlSeconds: opts.ttl } : {}),
      });
      print(format, out, () => `token: ${out.token}\nexpires: ${out.expiresAt ?? "never"}`);
    });

  token
    .command("list")
    .description("list tokens: id, principal, creator, expiry, last use")
    .option(...formatOption)
    .action(async (opts: { format: string }) => {
      const format = asFormat(opts.format);
      const out = await client().request<{ tokens: TokenInfo[] }>("GET", "/v1/tokens");
      print(format, out, () => (out.tokens.length ? out.tokens.map(row).join("\n") : "no tokens"));
    });

  token
    .command("revoke")
    .description("revoke a token by id (from custos token list); refused from the next request on")
    .argument("<id>", "the token's id: 16 hex digits")
    .option(...formatOption)
    .action(async (id: string, opts: { format: string }) => {
      const format = asFormat(opts.format);
      const out = await client().request<TokenInfo>("DELETE", `/v1/tokens/${encodeURIComponent(id)}`);
      print(format, out, () => `revoked token ${out.id} of ${out.principal}`);
    });
}
