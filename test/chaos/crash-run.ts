/**
 * One crash run of a custody change against the real server process, shared
 * by the crash tests (test/e2e/rekey-crash.test.ts) and the chaos script
 * (test/chaos/rekey-chaos.ts). A template node — initialised 2-of-3 over
 * alice, bob and carol, two keys, three data keys wrapped — is copied; the
 * server starts on the copy, is unsealed, and a rekey (to {alice, bob, dave})
 * or a root rotation is driven through HTTP while the process is killed with
 * SIGKILL: at a named step (`CUSTOS_TEST_CRASH_AT`, src/custody/crash-point.ts)
 * or after a random delay. Then it is restarted — the node opened again on
 * the data directory in this process, as `custos server` opens it at start,
 * which saves a second process start per run — and checked: exactly one
 * custody works (its shares unseal; a share of the other is refused), every
 * data key still decrypts, and the audit names the active init id — a switch
 * event to it, or an abandon event keeping it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import pino from "pino";
import type { App } from "../../src/api/app.js";
import { openNode } from "../../src/api/server.js";
import type { ShareFile } from "../../src/custody/share-format.js";
import type { TreeShareFile } from "../../src/custody/tree-share-format.js";
import { type Person, people, pub, submission } from "../helpers/custodians.js";

const BIN = fileURLToPath(new URL("../../bin/custos.js", import.meta.url));
type Json = Record<string, unknown>;

export interface Server {
  url: string;
  child: ChildProcess;
  exited: Promise<number | null>;
}

export async function startServer(dataDir: string, env: Record<string, string> = {}): Promise<Server> {
  const child = spawn(
    process.execPath,
    [BIN, "server", "--listen", "127.0.0.1:0", "--log-level", "warn", "--data-dir", dataDir],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } },
  );
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let out = "";
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 30_000);
    const check = (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout?.on("data", check);
    child.stderr?.on("data", check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${out}`));
    });
  });
  return { url, child, exited };
}

/** A request to a server URL, or to a node's app in process (no socket). */
export async function call<T = Json>(
  target: string | App,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
) {
  const send =
    typeof target === "string"
      ? (p: string, i: RequestInit) => fetch(`${target}${p}`, i)
      : (p: string, i: RequestInit) => target.request(p, i);
  const res = await send(path, {
    method,
    headers: {
      "content-type": "application/json",
      "x-purpose-of-use": "TREAT",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as T };
}

export interface Template {
  dir: string;
  team: Person[];
  dave: Person;
  files: ShareFile[];
  token: string;
  initId: string;
  /** Data keys wrapped before any change: they must always decrypt. */
  wrapped: { key: string; context: Record<string, string>; ciphertext: string; plaintext: string }[];
}

async function unseal(url: string | App, files: (ShareFile | TreeShareFile)[], team: Person[]) {
  let last: { status: number; body: Json } = { status: 0, body: {} };
  for (const file of files) {
    const status = (await call(url, "GET", "/v1/sys/seal-status")).body;
    const person = team.find((p) => p.id === file.custodian) as Person;
    last = await call(url, "POST", "/v1/sys/unseal", await submission(file, person, status as never));
    if (last.body.sealed === false) break;
  }
  return last;
}

export async function makeTemplate(): Promise<Template> {
  const dir = mkdtempSync(join(tmpdir(), "custos-crash-template-"));
  const [alice, bob, carol, dave] = people(["alice", "bob", "carol", "dave"]) as [
    Person,
    Person,
    Person,
    Person,
  ];
  const team = [alice, bob, carol];
  const server = await startServer(dir);
  try {
    const init = await call(server.url, "POST", "/v1/sys/init", {
      threshold: 2,
      custodians: team.map((p) => ({ id: p.id, publicKey: pub(p) })),
    });
    const token = init.body.rootToken as string;
    const wrapped: Template["wrapped"] = [];
    for (const key of ["ehr", "lab"]) {
      await call(server.url, "POST", "/v1/keys", { name: key, protection: "software" }, token);
      const context = { patient: `p-${key}` };
      const dk = await call(
        server.url,
        "POST",
        `/v1/keys/${key}/datakey`,
        { purpose: "TREAT", context },
        token,
      );
      wrapped.push({
        key,
        context,
        ciphertext: dk.body.ciphertext as string,
        plaintext: dk.body.plaintext as string,
      });
    }
    await call(server.url, "POST", "/v1/keys/lab/rotate", {}, token);
    const context = { patient: "p-lab-2" };
    const dk = await call(server.url, "POST", "/v1/keys/lab/datakey", { purpose: "TREAT", context }, token);
    wrapped.push({
      key: "lab",
      context,
      ciphertext: dk.body.ciphertext as string,
      plaintext: dk.body.plaintext as string,
    });
    return {
      dir,
      team: [...team, dave],
      dave,
      files: init.body.shares as ShareFile[],
      token,
      initId: init.body.initId as string,
      wrapped,
    };
  } finally {
    server.child.kill("SIGKILL");
    await server.exited;
  }
}

export type Kind = "rekey" | "rotate-root";

export interface RunOptions {
  kind: Kind;
  /** Crash at this named step. */
  step?: string;
  /** Or kill after this many ms from the start of the change. */
  killAfterMs?: number;
}

export interface RunResult {
  /** Which custody works after the restart. */
  active: "old" | "new";
  /** How far the change got before the kill (the last step that answered). */
  reached: string;
  /** Whether the server killed itself at the named step (rather than being killed by the run). */
  crashedAtStep: boolean;
  /** How long the change ran, from its start to the switch or the kill (ms). */
  changeMs: number;
  checks: string[];
}

/** Drives one change, kills the server, restarts it and checks; throws on any violated property. */
export async function crashRun(t: Template, opts: RunOptions): Promise<RunResult> {
  const dir = mkdtempSync(join(tmpdir(), "custos-crash-"));
  cpSync(t.dir, dir, { recursive: true });
  const checks: string[] = [];
  let reached = "none";
  let newFiles: TreeShareFile[] = [];
  let newInitId: string | null = null;
  let changeMs = 0;
  let crashedAtStep = false;
  try {
    const env: Record<string, string> = opts.step ? { CUSTOS_TEST_CRASH_AT: opts.step } : {};
    const server = await startServer(dir, env);
    let dead = false;
    void server.exited.then(() => {
      dead = true;
    });
    const unsealed = await unseal(server.url, t.files.slice(0, 2), t.team);
    if (unsealed.body.sealed !== false)
      throw new Error(`could not unseal before the change: ${JSON.stringify(unsealed.body)}`);
    let timer: NodeJS.Timeout | undefined;
    const killedByRun = false;
    const began = Date.now();
    if (opts.killAfterMs !== undefined)
      timer = setTimeout(() => server.child.kill("SIGKILL"), opts.killAfterMs);
    try {
      const tree =
        opts.kind === "rekey"
          ? {
              threshold: 2,
              of: [t.team[0]!, t.team[1]!, t.dave].map((p) => ({ custodian: p.id, publicKey: pub(p) })),
            }
          : undefined;
      let s = (await call(server.url, "POST", `/v1/sys/${opts.kind}/init`, tree ? { tree } : {}, t.token))
        .body;
      reached = "started";
      for (const file of [t.files[1]!, t.files[2]!]) {
        const person = t.team.find((p) => p.id === file.custodian)!;
        s = (
          await call(server.url, "POST", "/v1/sys/rekey/submit", await submission(file, person, s as never))
        ).body;
      }
      reached = "quorum";
      newFiles = (s.shareFiles as TreeShareFile[]) ?? [];
      newInitId = (s.newInitId as string) ?? null;
      for (const file of newFiles) {
        const person = t.team.find((p) => p.id === file.custodian)!;
        s = (
          await call(server.url, "POST", "/v1/sys/rekey/confirm", await submission(file, person, s as never))
        ).body;
        reached = `confirmed ${file.custodian}`;
      }
      if (s.active === false) reached = "switched";
    } catch (err) {
      if (!dead && !(err instanceof TypeError)) throw err; // fetch fails with TypeError when the process is gone
    } finally {
      clearTimeout(timer);
      changeMs = Date.now() - began;
      // A fetch can fail before the exit is reported: give the exit a moment when a crash was asked for.
      const selfExit = opts.step
        ? await Promise.race([
            server.exited.then(() => true),
            new Promise<boolean>((r) => setTimeout(() => r(dead), 1000)),
          ])
        : dead;
      crashedAtStep = selfExit && !killedByRun;
      server.child.kill("SIGKILL");
      await server.exited;
    }
    const active = await checkAfterRestart(t, dir, newFiles, newInitId, checks);
    return { active, reached, crashedAtStep, changeMs, checks };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The restart: the node opened again on the crashed data directory (what `custos server` does at start), in process. */
async function checkAfterRestart(
  t: Template,
  dir: string,
  newFiles: TreeShareFile[],
  newInitId: string | null,
  checks: string[],
): Promise<"old" | "new"> {
  const node = await openNode({ dataDir: dir, log: pino({ level: "silent" }) });
  const app = (method: string, path: string, body?: unknown, token?: string) =>
    call(node.app, method, path, body, token);
  try {
    const status = (await app("GET", "/v1/sys/seal-status")).body;
    const active = status.initId === t.initId ? "old" : status.initId === newInitId ? "new" : null;
    if (active === null)
      throw new Error(`after restart the node holds init id ${status.initId}: neither old nor new`);
    const good = active === "old" ? t.files : newFiles;
    const other = active === "old" ? newFiles : t.files;
    if (other.length > 0) {
      const person = t.team.find((p) => p.id === other[0]!.custodian)!;
      const refused = await app(
        "POST",
        "/v1/sys/unseal",
        await submission(other[0]!, person, status as never),
      );
      if (refused.status < 400 || refused.status >= 500) {
        throw new Error(
          `a share of the ${active === "old" ? "new" : "old"} custody was not refused: ${refused.status}`,
        );
      }
      checks.push("other custody's share refused");
    }
    const unsealed = await unseal(node.app, good.slice(0, 2), t.team);
    if (unsealed.body.sealed !== false)
      throw new Error(`the ${active} custody's shares did not unseal: ${JSON.stringify(unsealed.body)}`);
    checks.push(`${active} custody unseals`);
    for (const w of t.wrapped) {
      const r = await app(
        "POST",
        `/v1/keys/${w.key}/decrypt`,
        { purpose: "TREAT", context: w.context, ciphertext: w.ciphertext },
        t.token,
      );
      if (r.status !== 200 || r.body.plaintext !== w.plaintext)
        throw new Error(`data key of ${w.key} lost: ${r.status} ${JSON.stringify(r.body)}`);
    }
    checks.push("every data key decrypts");
    checkAudit(dir, active === "old" ? t.initId : (newInitId as string), active);
    checks.push("audit names the active custody");
    return active;
  } finally {
    await node.close();
  }
}

/** The last custody event must name the active init id: a switch to it, or an abandon/cancel that keeps it. */
function checkAudit(dir: string, initId: string, active: "old" | "new"): void {
  const db = new Database(join(dir, "custos.db"), { readonly: true });
  try {
    const rows = db
      .prepare("SELECT operation, event FROM audit_events WHERE operation LIKE 'sys.rekey.%' ORDER BY seq")
      .all() as { operation: string; event: string }[];
    const ends = rows.filter((r) => /\.(switch|abandon|cancel)$/.test(r.operation));
    const started = rows.some((r) => r.operation === "sys.rekey.start");
    if (active === "new") {
      const last = ends.at(-1);
      if (last?.operation !== "sys.rekey.switch" || !last.event.includes(`to init id ${initId}`)) {
        throw new Error(`the audit does not record the switch to ${initId}: ${JSON.stringify(ends.at(-1))}`);
      }
    } else if (started) {
      const last = ends.at(-1);
      if (!last || last.operation === "sys.rekey.switch")
        throw new Error("the audit does not say the change was abandoned");
      if (
        last.operation === "sys.rekey.abandon" &&
        !last.event.includes(`active custody: init id ${initId}`)
      ) {
        throw new Error(`the abandon event does not name init id ${initId}`);
      }
    }
  } finally {
    db.close();
  }
}
