/**
 * Custodian commands: `keygen` (a custodian's X25519 key pair, the private
 * half under a passphrase), `operator init` (the init ceremony: one share file
 * per custodian, named after them), `operator unseal` (opens the custodian's
 * share locally and re-encrypts it to the current ceremony's key, so the share
 * never crosses the wire in the clear), `operator seal` and `status`. Each
 * ceremony step prints what happened and what comes next.
 */
import { accessSync, constants, existsSync, mkdirSync } from "node:fs";
import { basename, join } from "node:path";
import type { Command } from "commander";
import { b64u, hex } from "../../crypto/bytes.js";
import { generateCustodianKey, parsePublicKeyFile } from "../../custody/custodian-key.js";
import { verifyCeremony } from "../../custody/node-identity.js";
import type { SealStatus } from "../../custody/seal.js";
import type { TpmSealStatus } from "../../custody/tpm-custody.js";
import { CliError, type Client, EXIT } from "../client.js";
import { asFormat, collect, print, readJsonFile, readPassphrase, writeNewFile } from "../io.js";
import { describeTree, openCustodianShare, readTreeFile } from "./custody-tree.js";
import { describeTpmSeal } from "./tpm.js";

export function describeStatus(s: SealStatus & { protection?: string; tpmSeal?: TpmSealStatus }): string {
  if (!s.initialized) return "custos is not initialised: run custos operator init";
  const lines = [
    `Sealed:        ${s.sealed}`,
    ...(s.protection
      ? [`Root key in:   ${s.protection === "tpm" ? "this node's TPM" : "process memory"}`]
      : []),
    ...(s.tpmSeal ? [describeTpmSeal(s.tpmSeal)] : []),
    `Threshold:     ${s.threshold} of ${s.shares}`,
    `Init id:       ${s.initId}`,
    `Custodians:    ${s.custodians.join(", ")}`,
  ];
  if (s.sealed) {
    lines.push(
      `Progress:      ${s.progress}/${s.threshold}${s.submitted.length ? ` (${s.submitted.join(", ")})` : ""}`,
      `Nonce:         ${s.nonce}`,
    );
  }
  if (s.tree) lines.push("Custody tree:", ...describeTree(s.tree));
  return lines.join("\n");
}

export function custodyCommands(program: Command, client: () => Client): void {
  program
    .command("keygen")
    .description("make a custodian key pair: NAME.key (passphrase-protected) and NAME.pub")
    .requiredOption("--out <name>", "path prefix of the files to write (alice → alice.key, alice.pub)")
    .option("--custodian <id>", "custodian id (default: the base name of --out)")
    .option("--passphrase-file <file>", "read the passphrase from a file instead of prompting")
    .action(async (opts: { out: string; custodian?: string; passphraseFile?: string }) => {
      const id = opts.custodian ?? basename(opts.out);
      for (const path of [`${opts.out}.key`, `${opts.out}.pub`]) {
        if (existsSync(path))
          throw new CliError(`'${path}' already exists; refusing to overwrite it`, EXIT.usage);
      }
      const passphrase = await readPassphrase(opts.passphraseFile, `Passphrase for ${id}'s private key: `);
      if (opts.passphraseFile === undefined) {
        const again = await readPassphrase(undefined, "Repeat the passphrase: ");
        if (again !== passphrase)
          throw new CliError("the passphrases differ; nothing was written", EXIT.usage);
      }
      const { publicFile, privateFile } = await generateCustodianKey(id, passphrase).catch((err: Error) => {
        throw new CliError(err.message, EXIT.usage);
      });
      writeNewFile(`${opts.out}.key`, `${JSON.stringify(privateFile, null, 2)}\n`);
      writeNewFile(`${opts.out}.pub`, `${JSON.stringify(publicFile, null, 2)}\n`, 0o644);
      process.stderr.write(
        `Wrote ${opts.out}.key (keep it and its passphrase safe) and ${opts.out}.pub (give it to the operator).\n` +
          `Fingerprint: ${publicFile.fingerprint}\n`,
      );
    });

  const operator = program.command("operator").description("custody ceremonies");

  operator
    .command("init")
    .description("initialise custos: make the root key and split it among custodians")
    .option("--shares <n>", "number of custodians (N)", Number)
    .option("--threshold <k>", "shares needed to unseal (k)", Number)
    .option("--custodian <file>", "a custodian's .pub file (repeat N times)", collect)
    .option(
      "--tree <file>",
      "a custody tree (YAML: gates {threshold, of}, leaves custodian/repository/tpm) instead of --shares/--threshold/--custodian",
    )
    .requiredOption("--out-dir <dir>", "directory for the share files (one per custodian)")
    .option("--root-token-file <file>", "write the root token to this file instead of printing it")
    .action(
      async (opts: {
        shares?: number;
        threshold?: number;
        custodian?: string[];
        tree?: string;
        outDir: string;
        rootTokenFile?: string;
      }) => {
        if (opts.tree !== undefined) {
          if (opts.shares !== undefined || opts.threshold !== undefined || opts.custodian !== undefined) {
            throw new CliError(
              "give either --tree FILE or --shares/--threshold/--custodian, not both",
              EXIT.usage,
            );
          }
        } else if (
          opts.shares === undefined ||
          opts.threshold === undefined ||
          opts.custodian === undefined
        ) {
          throw new CliError(
            "give --shares N --threshold K and N --custodian FILE (or --tree FILE)",
            EXIT.usage,
          );
        }
        const treeFile = opts.tree === undefined ? null : readTreeFile(opts.tree);
        opts.custodian ??= [];
        if (treeFile === null && opts.custodian.length !== opts.shares) {
          throw new CliError(
            `--shares is ${opts.shares} but ${opts.custodian.length} --custodian files were given`,
            EXIT.usage,
          );
        }
        const custodians = opts.custodian.map((file) => {
          const id = basename(file).replace(/\.pub$/, "");
          try {
            const pub = parsePublicKeyFile(readJsonFile(file, "public key file"), id);
            return { id: pub.custodian, publicKey: b64u.encode(pub.publicKey) };
          } catch (err) {
            if (err instanceof CliError) throw err;
            throw new CliError(`${file}: ${(err as Error).message}`, EXIT.usage);
          }
        });
        // Everything that can fail locally is checked before the server makes
        // a root key: once init has answered, its shares and root token exist
        // nowhere else.
        mkdirSync(opts.outDir, { recursive: true, mode: 0o700 });
        accessSync(opts.outDir, constants.W_OK);
        const ids = treeFile ? treeFile.custodians : custodians.map((c) => c.id);
        const targets = [...ids.map((id) => join(opts.outDir, `${id}.share`)), opts.rootTokenFile ?? ""];
        for (const path of targets) {
          if (path && existsSync(path))
            throw new CliError(`'${path}' already exists; refusing to overwrite it`, EXIT.usage);
        }
        // Under a policy, init is the operation ceremony-init: the caller's credential, when set, is sent.
        const api = client();
        const result = await api.request<{
          initId: string;
          shares: { custodian: string }[];
          rootToken: string;
        }>(
          "POST",
          "/v1/sys/init",
          treeFile ? { tree: treeFile.tree } : { threshold: opts.threshold, custodians },
          { auth: api.token !== undefined },
        );
        try {
          for (const share of result.shares) {
            writeNewFile(
              join(opts.outDir, `${share.custodian}.share`),
              `${JSON.stringify(share, null, 2)}\n`,
            );
          }
          if (opts.rootTokenFile) writeNewFile(opts.rootTokenFile, `${result.rootToken}\n`);
        } catch (err) {
          // Last resort: the only copy of the ceremony's output must not be lost.
          process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
          throw new CliError(
            `custos was initialised but writing its output failed (${(err as Error).message}); ` +
              "the share files and root token were printed above: save them now",
            EXIT.usage,
          );
        }
        process.stderr.write(
          treeFile
            ? `Initialised custos with a custody tree (init id ${result.initId}); repositories and the TPM hold their shares.\n` +
                `Wrote ${result.shares.length} share files to ${opts.outDir}: give each custodian their own file.\n` +
                "custos status shows the tree and what each gate needs to unseal.\n"
            : `Initialised custos ${opts.threshold}-of-${opts.shares} (init id ${result.initId}).\n` +
                `Wrote ${result.shares.length} share files to ${opts.outDir}: give each custodian their own file.\n` +
                `Any ${opts.threshold} of them unseal custos after a restart (custos operator unseal).\n`,
        );
        if (opts.rootTokenFile) process.stderr.write(`Root token written to ${opts.rootTokenFile}.\n`);
        else process.stdout.write(`Root token: ${result.rootToken}\n`);
      },
    );

  operator
    .command("unseal")
    .description("submit your share to the current unseal ceremony")
    .option("--share <file>", "your share file (NAME.share)")
    .option("--identity <file>", "your private key file (NAME.key)")
    .option("--passphrase-file <file>", "read the passphrase from a file instead of prompting")
    .option("--reset", "discard the shares submitted so far and start a new ceremony (needs a token)")
    .option("--repositories", "ask the node to read its custody tree's repositories and TPM leaf now")
    .option("--format <format>", "text or json", "text")
    .action(
      async (opts: {
        share?: string;
        identity?: string;
        passphraseFile?: string;
        reset?: boolean;
        repositories?: boolean;
        format: string;
      }) => {
        const format = asFormat(opts.format);
        const c = client();
        if (opts.repositories) {
          const r = await c.request<{ status: SealStatus; failures: { path: string; reason: string }[] }>(
            "POST",
            "/v1/sys/unseal/repositories",
            {},
            { auth: false },
          );
          print(format, r, () =>
            [
              r.status.sealed ? "custos is still sealed." : "custos is unsealed by its repositories.",
              ...r.failures.map((f) => `  skipped ${f.path}: ${f.reason}`),
            ].join("\n"),
          );
          return;
        }
        if (opts.reset) {
          const status = await c.request<SealStatus>("POST", "/v1/sys/unseal/reset", {});
          print(format, status, () => `Ceremony reset.\n${describeStatus(status)}`);
          return;
        }
        if (!opts.share || !opts.identity) {
          throw new CliError("give --share NAME.share and --identity NAME.key (or --reset)", EXIT.usage);
        }
        const share = await openCustodianShare(opts.share, opts.identity, opts.passphraseFile);
        try {
          const status = await c.request<SealStatus>("GET", "/v1/sys/seal-status", undefined, {
            auth: false,
          });
          if (!status.initialized) throw new CliError("custos is not initialised", EXIT.sealed);
          if (status.initId !== share.initId) {
            throw new CliError(
              `share of '${share.custodian}' belongs to another initialisation (${share.initId}) ` +
                `than the one the server at ${c.addr} holds (${status.initId}); check CUSTOS_ADDR: the share was not sent`,
              EXIT.refused,
            );
          }
          if (!status.sealed || status.nonce === null || status.ceremonyPublicKey === null) {
            print(format, status, () => "custos is already unsealed; nothing to do.");
            return;
          }
          // Checked as an unseal's, whatever else the server says: a rekey's ceremony
          // relayed here by an impostor is signed for a rekey and fails this check.
          const signed =
            status.ceremonySignature !== null &&
            verifyCeremony(b64u.decode(share.node, "node"), decodeOr(status.ceremonySignature), {
              kind: "unseal",
              initId: hex.decode(share.initId, "initId"),
              nonce: decodeHexOr(status.nonce),
              ceremonyPublicKey: decodeOr(status.ceremonyPublicKey),
              binding: new Uint8Array(0),
            });
          if (!signed) {
            throw new CliError(
              `the server at ${c.addr} did not prove it is the node that made ${share.custodian}'s share ` +
                "(its ceremony key is not signed by the node key in the share file as an unseal ceremony's); " +
                "the share was not sent",
              EXIT.refused,
            );
          }
          const submission = await share.submission(
            "unseal",
            hex.decode(status.nonce, "nonce"),
            Buffer.from(status.ceremonyPublicKey, "base64url"),
          );
          const after = await c.request<SealStatus>("POST", "/v1/sys/unseal", submission, { auth: false });
          print(format, after, () =>
            !after.sealed
              ? `Share of ${share.label} accepted. custos is unsealed.`
              : after.tree && share.label.includes("/")
                ? `Share of ${share.label} accepted. Still missing:\n${describeTree(after.tree).join("\n")}`
                : `Share of ${share.label} accepted: ${after.progress} of ${after.threshold}. ${after.threshold - after.progress} more custodian(s) must run custos operator unseal.`,
          );
        } finally {
          share.dispose();
        }
      },
    );

  operator
    .command("seal")
    .description("seal custos: drop the root key and every loaded key from memory")
    .action(async () => {
      await client().request("POST", "/v1/sys/seal", {});
      process.stderr.write("custos is sealed. Custodians must run custos operator unseal to reopen it.\n");
    });

  const showStatus = async (opts: { format: string }) => {
    const format = asFormat(opts.format);
    const status = await client().request<SealStatus & { tpmSeal?: TpmSealStatus }>(
      "GET",
      "/v1/sys/seal-status",
      undefined,
      { auth: false },
    );
    print(format, status, () => describeStatus(status));
  };
  program
    .command("status")
    .description("seal status of the server, with the custody tree and what each gate misses")
    .option("--format <format>", "text or json", "text")
    .action(showStatus);
  operator
    .command("status")
    .description("the same as custos status")
    .option("--format <format>", "text or json", "text")
    .action(showStatus);
}

/** Server-supplied encodings: anything malformed reads as empty, which no check accepts. */
function decodeOr(text: string): Uint8Array {
  try {
    return b64u.decode(text, "value");
  } catch {
    return new Uint8Array(0);
  }
}

function decodeHexOr(text: string): Uint8Array {
  try {
    return hex.decode(text, "value");
  } catch {
    return new Uint8Array(0);
  }
}
