/**
 * The development server's own set-up, apart from `custos server` itself
 * because it is the one place that writes custodian keys and shares next to
 * the data (which is why `--dev` is loudly not for production): a swtpm
 * started through hsm-sim/swtpm.sh when installed, and a node initialised
 * 2-of-3 with development custodians on its first run and unsealed from
 * their files on the later ones.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { CustosNode } from "../api/server.js";
import { Auditor, durably } from "../audit/auditor.js";
import { hex } from "../crypto/bytes.js";
import { hashToken } from "../crypto/token.js";
import { generateCustodianKey, openPrivateKeyFile, parsePrivateKeyFile } from "../custody/custodian-key.js";
import { makeUnsealSubmission } from "../custody/flat-submission.js";
import { openShareFile, parseShareFile } from "../custody/share-format.js";
import { CliError, EXIT } from "./client.js";

const DEV_CUSTODIANS = ["dev-alice", "dev-bob", "dev-carol"];

const SWTPM_SCRIPT = resolve(import.meta.dirname, "../../hsm-sim/swtpm.sh");

export function swtpmInstalled(): boolean {
  try {
    execFileSync("sh", ["-c", "command -v swtpm"], { stdio: "ignore" });
    return existsSync(SWTPM_SCRIPT);
  } catch {
    return false;
  }
}

/** A swtpm for the dev server, in DATA/swtpm, through the same script tests and CI use. */
export function startDevSwtpm(dir: string): string {
  const out = execFileSync(SWTPM_SCRIPT, ["start", dir], { encoding: "utf8" });
  const m = /CUSTOS_TPM=(\S+)/.exec(out);
  if (!m) throw new CliError(`hsm-sim/swtpm.sh printed no address: ${out}`, EXIT.unavailable);
  return m[1] as string;
}

export function stopDevSwtpm(dir: string): void {
  try {
    execFileSync(SWTPM_SCRIPT, ["stop", dir], { stdio: "ignore" });
  } catch {
    // Best effort at shutdown.
  }
}

/** Initialises (first run) or unseals (later runs) a development node from the files in DATA/dev. */
export async function devBootstrap(
  node: CustosNode,
  dataDir: string,
  devRootToken?: string,
): Promise<string | null> {
  const devDir = join(dataDir, "dev");
  mkdirSync(devDir, { recursive: true, mode: 0o700 });
  const passFile = join(devDir, "passphrase");
  let rootToken: string | null = null;
  if (!node.seal.initialized) {
    const passphrase = randomBytes(24).toString("base64url");
    writeFileSync(passFile, passphrase, { mode: 0o600 });
    const custodians = [];
    for (const id of DEV_CUSTODIANS) {
      const { publicFile, privateFile } = await generateCustodianKey(id, passphrase, { scryptN: 2 ** 15 });
      writeFileSync(join(devDir, `${id}.key`), JSON.stringify(privateFile, null, 2), { mode: 0o600 });
      writeFileSync(join(devDir, `${id}.pub`), JSON.stringify(publicFile, null, 2));
      custodians.push({ id, publicKey: publicFile.publicKey });
    }
    const result = await node.seal.init(2, custodians);
    for (const share of result.shareFiles) {
      writeFileSync(join(devDir, `${share.custodian}.share`), JSON.stringify(share, null, 2), {
        mode: 0o600,
      });
    }
    rootToken = result.rootToken;
  } else if (node.seal.sealed) {
    const passphrase = readFileSync(passFile, "utf8");
    for (const id of DEV_CUSTODIANS.slice(0, 2)) {
      const status = node.seal.status();
      if (!status.sealed) break;
      const key = await openPrivateKeyFile(
        parsePrivateKeyFile(JSON.parse(readFileSync(join(devDir, `${id}.key`), "utf8"))),
        passphrase,
      );
      const payload = await openShareFile(
        parseShareFile(JSON.parse(readFileSync(join(devDir, `${id}.share`), "utf8"))),
        key,
      );
      key.dispose();
      const submission = await makeUnsealSubmission(
        payload,
        "unseal",
        hex.decode(status.nonce ?? "", "nonce"),
        Buffer.from(status.ceremonyPublicKey ?? "", "base64url"),
      );
      payload.share.dispose();
      await node.seal.submit(submission);
    }
  }
  if (devRootToken) {
    const tokenFile = join(devDir, "dev-root-token.sha256");
    const hash = hashToken(devRootToken);
    if (!existsSync(tokenFile) || readFileSync(tokenFile, "utf8") !== hash) {
      const auditor = new Auditor(node.store);
      await durably(() =>
        node.store.putToken(
          {
            hash,
            principal: "root",
            roles: ["root"],
            createdBy: "dev",
            createdAt: new Date().toISOString(),
            expiresAt: null,
          },
          auditor.event({
            principal: "dev",
            operation: "tokens.create",
            decision: "allow",
            reason: "dev root token",
          }),
        ),
      );
      writeFileSync(tokenFile, hash, { mode: 0o600 });
    }
    rootToken = devRootToken;
  }
  return rootToken;
}
