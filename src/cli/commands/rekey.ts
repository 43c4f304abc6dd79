/**
 * `custos operator rekey …` and `custos operator rotate-root`: the verified
 * custody change (docs/FORMATS.md §5.9, README "Rekey and root rotation").
 * The operator starts it (with a token) and, once the quorum is in, writes
 * the new share files out for the custodians; each custodian of the current
 * quorum runs `rekey submit` with their current share, and each holder of a
 * new share runs `rekey confirm` with it. Both open the share file locally
 * and seal it to the change's ceremony key, for the change's kind of
 * ceremony, after checking the node's signature over that kind, key and the
 * digest of the published new tree against the node key in their own file,
 * so a share goes nowhere but the node that made it, and only into the
 * change the custodian was shown: `rekey submit` prints the new tree (who
 * will hold shares, thresholds, key fingerprints) and its digest and asks
 * before sending (`--yes` or `--digest` for scripts). The node switches
 * after the last confirmation.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Command } from "commander";
import { b64u, hex } from "../../crypto/bytes.js";
import { type CeremonyKind, confirmKindOf, describeKind } from "../../custody/ceremony-kind.js";
import type { ChangeStatus } from "../../custody/custody-change.js";
import { verifyCeremony } from "../../custody/node-identity.js";
import { type TreeInput, TreeInputSchema } from "../../custody/tree.js";
import { changeBinding, treeDigest } from "../../custody/tree-digest.js";
import { CliError, type Client, EXIT } from "../client.js";
import { asFormat, print, writeNewFile } from "../io.js";
import { describeNewTree, type OpenedShare, openCustodianShare, readTreeFile } from "./custody-tree.js";

export function describeChange(s: ChangeStatus): string {
  if (!s.active)
    return `No rekey or root rotation in progress (init id ${s.initId}, root generation ${s.rootGeneration}).`;
  const lines = [
    `Change:        ${s.kind} (nonce ${s.nonce})`,
    `From:          init id ${s.initId}, root generation ${s.rootGeneration}`,
    `New tree:      digest ${s.treeDigest}`,
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
    const cmd = rekey
      .command(step)
      .description(
        step === "submit"
          ? "submit your current share to the change's quorum, after checking the new tree it will be split over"
          : "confirm your new share: it is opened here and sealed back to the node, which checks it",
      )
      .requiredOption("--share <file>", step === "submit" ? "your current share file" : "your new share file")
      .requiredOption("--identity <file>", "your private key file (NAME.key)")
      .option("--passphrase-file <file>", "read the passphrase from a file instead of prompting")
      .option("--format <format>", "text or json", "text");
    if (step === "submit") {
      cmd
        .option(
          "--yes",
          "send without asking (scripts: only after checking the tree digest with the operator)",
        )
        .option("--digest <hex>", "send without asking only if the new tree's digest is this one");
    }
    cmd.action(async (opts: StepOptions) => {
      if (step === "submit" && !opts.yes && opts.digest === undefined && !process.stdin.isTTY) {
        throw new CliError(
          "rekey submit shows the new custody tree and its digest and asks before sending your share; " +
            "without a terminal, check the digest (custos operator rekey status) with the operator and the other " +
            "custodians, then pass --yes (or --digest HEX)",
          EXIT.usage,
        );
      }
      const c = client();
      const share = await openCustodianShare(opts.share, opts.identity, opts.passphraseFile);
      try {
        const s = await c.request<ChangeStatus>("GET", "/v1/sys/rekey", undefined, { auth: false });
        const checked = checkChange(s, step, share, opts.share, c.addr);
        if (step === "submit") await agree(s, checked, share.label, opts);
        else process.stderr.write(`New tree digest ${checked.digest}: confirming ${share.label}.\n`);
        const body = await share.submission(checked.kind, checked.nonce, checked.key);
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

interface StepOptions {
  share: string;
  identity: string;
  passphraseFile?: string;
  format: string;
  yes?: boolean;
  digest?: string;
}

interface CheckedChange {
  kind: CeremonyKind;
  nonce: Uint8Array;
  key: Uint8Array;
  tree: TreeInput;
  /** Computed here from the published tree, never taken from the server's word. */
  digest: string;
}

/**
 * The change the server at `addr` describes, checked before a share goes
 * anywhere: in the phase this step needs, the share of the init id that
 * phase wants, and signed by the node key in the custodian's own share file
 * for this step's kind of ceremony with the digest of the published tree
 * (docs/FORMATS.md §5.4) — so neither an unseal's nor another change's
 * ceremony, nor another tree, can pass for this one.
 */
function checkChange(
  s: ChangeStatus,
  step: "submit" | "confirm",
  share: OpenedShare,
  file: string,
  addr: string,
): CheckedChange {
  if (!s.active || !s.nonce || !s.ceremonyPublicKey || !s.ceremonySignature || !s.initId) {
    throw new CliError("no rekey or root rotation is in progress on this node", EXIT.refused);
  }
  if (s.kind !== "rekey" && s.kind !== "rotate-root") {
    throw new CliError(
      `the server at ${addr} describes no rekey or root rotation; the share was not sent`,
      EXIT.refused,
    );
  }
  const wanted = step === "submit" ? "quorum" : "confirming";
  if (s.phase !== wanted) {
    throw new CliError(
      step === "submit"
        ? "the quorum of this change is complete: new shares are confirmed with custos operator rekey confirm; the share was not sent"
        : "this change's quorum is not complete yet, so there are no new shares to confirm; the share was not sent",
      EXIT.refused,
    );
  }
  const expected = step === "submit" ? s.initId : s.newInitId;
  if (share.initId !== expected) {
    throw new CliError(
      `${file} belongs to init id ${share.initId}, but this step wants a share of ${expected ?? "(no new custody yet)"}; the share was not sent`,
      EXIT.refused,
    );
  }
  const parsed = TreeInputSchema.safeParse(s.newTree);
  if (!parsed.success) {
    throw new CliError(
      `the server at ${addr} did not describe the new tree; the share was not sent`,
      EXIT.refused,
    );
  }
  const digest = treeDigest(parsed.data);
  const kind: CeremonyKind = step === "submit" ? s.kind : confirmKindOf(s.kind);
  const signed = safely(() =>
    verifyCeremony(b64u.decode(share.node, "node"), b64u.decode(s.ceremonySignature ?? "", "signature"), {
      kind,
      initId: hex.decode(s.initId ?? "", "initId"),
      nonce: hex.decode(s.nonce ?? "", "nonce"),
      ceremonyPublicKey: b64u.decode(s.ceremonyPublicKey ?? "", "ceremonyPublicKey"),
      binding: changeBinding(digest, step === "submit" ? undefined : hex.decode(share.initId, "initId")),
    }),
  );
  if (!signed) {
    throw new CliError(
      `the server at ${addr} did not prove it is the node that made this share, running ${describeKind(kind)} ` +
        "to the tree it shows (the signature does not match the node key in your share file); the share was not sent",
      EXIT.refused,
    );
  }
  return {
    kind,
    nonce: hex.decode(s.nonce, "nonce"),
    key: b64u.decode(s.ceremonyPublicKey, "key"),
    tree: parsed.data,
    digest: hex.encode(digest),
  };
}

/** Shows the custodian the new tree and its digest; sends only with their yes, `--yes`, or the `--digest` they were given. */
async function agree(s: ChangeStatus, c: CheckedChange, label: string, opts: StepOptions): Promise<void> {
  const to =
    s.kind === "rekey" ? "the same root key" : `a new root key (root generation ${s.rootGeneration + 1})`;
  process.stderr.write(
    [
      `Your share of ${label} (init id ${s.initId}) is asked for by ${describeKind(c.kind)}:`,
      `${to} will be split over this new custody tree — these are who will hold it:`,
      ...describeNewTree(c.tree),
      `Tree digest: ${c.digest}`,
      "Check with the operator and the other custodians that this is the tree you agreed to, and each key fingerprint.",
      "",
    ].join("\n"),
  );
  if (opts.digest !== undefined) {
    if (opts.digest.toLowerCase() !== c.digest) {
      throw new CliError(
        `the new tree's digest is ${c.digest}, not the ${opts.digest} you were given; the share was not sent`,
        EXIT.refused,
      );
    }
    return;
  }
  if (opts.yes) return;
  const answer = await ask(`Send your share to this ${s.kind}? Type yes to send: `);
  if (answer.trim().toLowerCase() !== "yes")
    throw new CliError("not confirmed; the share was not sent", EXIT.refused);
}

function ask(question: string): Promise<string> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    rl.question(question, (answer) => {
      rl.close();
      resolve(answer);
    });
  });
}
