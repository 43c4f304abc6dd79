/**
 * `custos operator rekey …` and `custos operator rotate-root`: the verified
 * custody change (docs/FORMATS.md §5.9, README "Rekey and root rotation").
 * The operator starts it (with a token) and, once the quorum is in, writes
 * the new share files out for the custodians; each custodian of the current
 * quorum runs `rekey submit` with their current share, and each holder of a
 * new share runs `rekey confirm` with it. Both open the share file locally
 * and seal it to the change's ceremony key after checking the node's
 * signature over that key against the node key in their own file — the same
 * checks as `operator unseal`, so a share goes nowhere but the node that
 * made it. The node switches after the last confirmation.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { b64u, hex } from "../../crypto/bytes.js";
import type { ChangeStatus } from "../../custody/custody-change.js";
import { verifyCeremony } from "../../custody/node-identity.js";
import { CliError, type Client, EXIT } from "../client.js";
import { asFormat, print, writeNewFile } from "../io.js";
import { openCustodianShare, readTreeFile } from "./custody-tree.js";

export function describeChange(s: ChangeStatus): string {
  if (!s.active)
    return `No rekey or root rotation in progress (init id ${s.initId}, root generation ${s.rootGeneration}).`;
  const lines = [
    `Change:        ${s.kind} (nonce ${s.nonce})`,
    `From:          init id ${s.initId}, root generation ${s.rootGeneration}`,
    `Expires:       ${s.expiresAt ?? "(after the first step, idle timeout)"}`,
  ];
  if (s.phase === "quorum") {
    lines.push(
      `Quorum:        submitted ${s.submitted.join(", ") || "none yet"}`,
      "Next:          custodians of the current custody run custos operator rekey submit --share CURRENT.share",
    );
  } else {
    lines.push(
      `To:            init id ${s.newInitId}, root generation ${s.newRootGeneration}`,
      `Confirmed:     ${s.confirmed.join(", ") || "none yet"}`,
      `Unconfirmed:   ${s.unconfirmed.join(", ") || "none"}`,
      "Next:          custos operator rekey status --out-dir DIR writes the new share files; each custodian runs custos operator rekey confirm --share NEW.share",
    );
  }
  return lines.join("\n");
}

export function rekeyCommands(operator: Command, client: () => Client): void {
  const start = async (kind: "rekey" | "rotate-root", opts: { tree?: string; format: string }) => {
    const tree = opts.tree === undefined ? undefined : readTreeFile(opts.tree).tree;
    const s = await client().request<ChangeStatus>("POST", `/v1/sys/${kind}/init`, tree ? { tree } : {});
    print(asFormat(opts.format), s, () => `Started.\n${describeChange(s)}`);
  };

  operator
    .command("rotate-root")
    .description(
      "start a root rotation: a new root key, the key ring re-sealed, new shares for the tree (needs the quorum)",
    )
    .option("--tree <file>", "a new custody tree (YAML, as init --tree); default: the current tree")
    .option("--format <format>", "text or json", "text")
    .action((opts: { tree?: string; format: string }) => start("rotate-root", opts));

  const rekey = operator
    .command("rekey")
    .description("verified rekey: new shares of the same root key over a new tree");

  rekey
    .command("start")
    .description("start a rekey to a new custody tree (needs a token, then the current quorum)")
    .requiredOption("--tree <file>", "the new custody tree (YAML, as init --tree)")
    .option("--format <format>", "text or json", "text")
    .action((opts: { tree: string; format: string }) => start("rekey", opts));

  rekey
    .command("status")
    .description("the change in progress; with --out-dir, write the new share files for the custodians")
    .option("--out-dir <dir>", "directory for the new share files (one per custodian, NAME.share)")
    .option("--format <format>", "text or json", "text")
    .action(async (opts: { outDir?: string; format: string }) => {
      const s = await client().request<ChangeStatus>("GET", "/v1/sys/rekey", undefined, { auth: false });
      if (opts.outDir !== undefined) {
        if (s.shareFiles.length === 0)
          throw new CliError("no new share files yet: the quorum is not complete", EXIT.refused);
        mkdirSync(opts.outDir, { recursive: true, mode: 0o700 });
        for (const file of s.shareFiles) {
          const path = join(opts.outDir, `${String(file.custodian)}.share`);
          if (existsSync(path))
            throw new CliError(`'${path}' already exists; refusing to overwrite it`, EXIT.usage);
          writeNewFile(path, `${JSON.stringify(file, null, 2)}\n`);
        }
        process.stderr.write(
          `Wrote ${s.shareFiles.length} new share files to ${opts.outDir}: give each custodian their own.\n`,
        );
      }
      print(asFormat(opts.format), s, () => describeChange(s));
    });

  for (const step of ["submit", "confirm"] as const) {
    rekey
      .command(step)
      .description(
        step === "submit"
          ? "submit your current share to the change's quorum"
          : "confirm your new share: it is opened here and sealed back to the node, which checks it",
      )
      .requiredOption("--share <file>", step === "submit" ? "your current share file" : "your new share file")
      .requiredOption("--identity <file>", "your private key file (NAME.key)")
      .option("--passphrase-file <file>", "read the passphrase from a file instead of prompting")
      .option("--format <format>", "text or json", "text")
      .action(async (opts: { share: string; identity: string; passphraseFile?: string; format: string }) => {
        const c = client();
        const share = await openCustodianShare(opts.share, opts.identity, opts.passphraseFile);
        try {
          const s = await c.request<ChangeStatus>("GET", "/v1/sys/rekey", undefined, { auth: false });
          if (!s.active || !s.nonce || !s.ceremonyPublicKey || !s.ceremonySignature || !s.initId) {
            throw new CliError("no rekey or root rotation is in progress on this node", EXIT.refused);
          }
          const expected = step === "submit" ? s.initId : s.newInitId;
          if (share.initId !== expected) {
            throw new CliError(
              `${opts.share} belongs to init id ${share.initId}, but this step wants a share of ${expected ?? "(no new custody yet)"}; the share was not sent`,
              EXIT.refused,
            );
          }
          const signed = safely(() =>
            verifyCeremony(
              b64u.decode(share.node, "node"),
              b64u.decode(s.ceremonySignature ?? "", "signature"),
              hex.decode(s.initId ?? "", "initId"),
              hex.decode(s.nonce ?? "", "nonce"),
              b64u.decode(s.ceremonyPublicKey ?? "", "ceremonyPublicKey"),
            ),
          );
          if (!signed) {
            throw new CliError(
              `the server at ${c.addr} did not prove it is the node that made this share; the share was not sent`,
              EXIT.refused,
            );
          }
          const body = await share.submission(
            hex.decode(s.nonce, "nonce"),
            b64u.decode(s.ceremonyPublicKey, "key"),
          );
          const after = await c.request<ChangeStatus>("POST", `/v1/sys/rekey/${step}`, body, { auth: false });
          print(asFormat(opts.format), after, () =>
            after.active
              ? `${step === "submit" ? "Share" : "New share"} of ${share.label} accepted.\n${describeChange(after)}`
              : `New share of ${share.label} confirmed. Every new share is confirmed: the node switched custody (init id ${after.initId}, root generation ${after.rootGeneration}). Old shares are void.`,
          );
        } finally {
          share.dispose();
        }
      });
  }

  rekey
    .command("cancel")
    .description("cancel the rekey or root rotation in progress (needs a token); the current custody stays")
    .action(async () => {
      await client().request("POST", "/v1/sys/rekey/cancel", {});
      process.stderr.write("Cancelled: the pending custody is discarded; the current shares stay valid.\n");
    });
}

function safely(check: () => boolean): boolean {
  try {
    return check();
  } catch {
    return false;
  }
}
