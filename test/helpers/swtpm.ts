/**
 * A real swtpm for tests, started and stopped through hsm-sim/swtpm.sh (the
 * same script the dev server and CI use). Where swtpm is not installed the
 * suites skip with a loud reason on a laptop, and fail under CI=true: CI must
 * exercise the TPM.
 */
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const SCRIPT = resolve(import.meta.dirname, "../../hsm-sim/swtpm.sh");

function has(cmd: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const installed = has("swtpm");
const toolsInstalled = has("tpm2_unseal") && has("tpm2_createprimary");
const ci = process.env.CI === "true";

/** True when the TPM suites should be skipped (swtpm missing on a developer's machine; never under CI). */
export const skipSwtpm = !installed && !ci;
/** Likewise for the tests that also need tpm2-tools. */
export const skipTpm2Tools = !(installed && toolsInstalled) && !ci;

if (skipSwtpm) {
  console.warn(
    "\n*** SKIPPING TPM TESTS: swtpm is not installed (Debian: apt-get install swtpm swtpm-tools tpm2-tools) ***\n",
  );
} else if (skipTpm2Tools) {
  console.warn("\n*** SKIPPING tpm2-tools INTEROPERABILITY TESTS: tpm2-tools is not installed ***\n");
}

export interface Swtpm {
  dir: string;
  port: number;
  /** `swtpm:127.0.0.1:PORT`, the form CUSTOS_TPM takes. */
  address: string;
  /** TPM2TOOLS_TCTI for tpm2-tools against this swtpm. */
  tcti: string;
  stop(): Promise<void>;
  /** Stop and start again on the same state and ports: a TPM reset, as after a reboot. */
  restart(): Promise<void>;
  /** Stop and delete the state directory. */
  destroy(): Promise<void>;
}

export async function startSwtpm(dir = mkdtempSync(join(tmpdir(), "custos-swtpm-"))): Promise<Swtpm> {
  const start = async () => {
    const { stdout } = await run(SCRIPT, ["start", dir]);
    const m = /CUSTOS_TPM=swtpm:127\.0\.0\.1:(\d+)/.exec(stdout);
    if (!m) throw new Error(`hsm-sim/swtpm.sh start printed no address: ${stdout}`);
    return Number(m[1]);
  };
  const port = await start();
  const stop = async () => {
    await run(SCRIPT, ["stop", dir]);
  };
  return {
    dir,
    port,
    address: `swtpm:127.0.0.1:${port}`,
    tcti: `swtpm:host=127.0.0.1,port=${port}`,
    stop,
    restart: async () => {
      await stop();
      const again = await start();
      if (again !== port) throw new Error(`swtpm came back on port ${again}, not ${port}`);
    },
    destroy: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
