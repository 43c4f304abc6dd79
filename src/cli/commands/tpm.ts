/**
 * `custos operator tpm-seal enable|disable|status`: the TPM seal of the node
 * at CUSTOS_ADDR. Enabling takes effect when the root key is next
 * reconstructed (custodians' unseal), because a running node holds it only
 * inside the TPM; the command says so.
 */
import type { Command } from "commander";
import type { TpmSealStatus } from "../../custody/tpm-custody.js";
import { CliError, type Client, EXIT } from "../client.js";
import { asFormat, print } from "../io.js";

export function describeTpmSeal(s: TpmSealStatus): string {
  const lines = [`TPM seal:      ${s.state}${s.pcrs.length ? ` (SHA-256 PCR ${s.pcrs.join(", ")})` : ""}`];
  if (s.sealedAt) lines.push(`Sealed at:     ${s.sealedAt}`);
  if (s.changedPcrs?.length) {
    lines.push(
      `Changed PCRs:  ${s.changedPcrs.join(", ")} — the seal will not open; custodians must unseal after a restart`,
    );
  }
  if (s.state === "pending")
    lines.push("Takes effect at the next unseal by custodians (custos operator unseal).");
  if (s.lastError) lines.push(`Last error:    ${s.lastError}`);
  return lines.join("\n");
}

function parsePcrList(value: string): number[] {
  const pcrs = value.split(",").map((p) => Number(p.trim()));
  if (pcrs.some((p) => !Number.isInteger(p) || p < 0 || p > 23)) {
    throw new CliError(`--pcrs '${value}' must be PCR indices 0..23, comma-separated`, EXIT.usage);
  }
  return pcrs;
}

export function tpmCommands(operator: Command, client: () => Client): void {
  const tpmSeal = operator
    .command("tpm-seal")
    .description("seal the root key to this node's TPM for unattended restarts");
  const format = ["--format <format>", "text or json", "text"] as const;

  tpmSeal
    .command("status")
    .description("whether the TPM seal is on, its PCRs, and which of them changed since sealing")
    .option(...format)
    .action(async (opts: { format: string }) => {
      const f = asFormat(opts.format);
      const s = await client().request<TpmSealStatus>("GET", "/v1/sys/tpm-seal");
      print(f, s, () => describeTpmSeal(s));
    });

  tpmSeal
    .command("enable")
    .description("seal the root key to the TPM under the given PCRs at the next unseal")
    .option("--pcrs <list>", "comma-separated SHA-256 PCR indices", "7")
    .option(...format)
    .action(async (opts: { pcrs: string; format: string }) => {
      const f = asFormat(opts.format);
      const s = await client().request<TpmSealStatus>("POST", "/v1/sys/tpm-seal", {
        pcrs: parsePcrList(opts.pcrs),
      });
      print(f, s, () => describeTpmSeal(s));
    });

  tpmSeal
    .command("disable")
    .description("delete the sealed root key: restarts need custodians again")
    .option(...format)
    .action(async (opts: { format: string }) => {
      const f = asFormat(opts.format);
      const s = await client().request<TpmSealStatus>("DELETE", "/v1/sys/tpm-seal");
      print(f, s, () => describeTpmSeal(s));
    });
}
