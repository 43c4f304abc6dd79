/**
 * `custos audit verify`: fetches the whole audit chain and recomputes it here,
 * trusting nothing the server says about it; reports the first bad event and
 * what is wrong, and who unsealed the node. `custos audit events` lists events.
 */
import type { Command } from "commander";
import { breakGlassRows } from "../../audit/break-glass-report.js";
import { accessRows, disclosures, type ReportFormat, renderReport } from "../../audit/disclosures.js";
import type { ChainedAuditEvent } from "../../audit/event.js";
import type { TreeHeadJson } from "../../audit/tree-head.js";
import { verifyLog } from "../../audit/verify-log.js";
import { b64u } from "../../crypto/bytes.js";
import type { ReviewRecord } from "../../store/store.js";
import { CliError, type Client, EXIT } from "../client.js";
import { checkExport, EXPORT_FORMAT, type LoggedEvent } from "../export-read.js";
import { asFormat, collect, print, writeNewFile } from "../io.js";
import {
  fetchWitnessViews,
  readWitnessPins,
  type ServedHead,
  verifyWitnessing,
  type WitnessView,
  witnessLines,
} from "../witness-verify.js";

interface Page {
  events: { seq: number; hash: string; canonical: string; event: ChainedAuditEvent["event"] }[];
  next: number | null;
}

export async function fetchChain(
  client: Client,
  from = 1,
  filters: Record<string, string | undefined> = {},
): Promise<ChainedAuditEvent[]> {
  const out: ChainedAuditEvent[] = [];
  let next: number | null = from;
  const extra = new URLSearchParams();
  for (const [k, v] of Object.entries(filters)) if (v !== undefined) extra.set(k, v);
  const suffix = extra.size > 0 ? `&${extra}` : "";
  while (next !== null) {
    const page: Page = await client.request<Page>("GET", `/v1/audit/events?from=${next}&limit=1000${suffix}`);
    // The event is read from the text that was hashed, never from the server's separate copy of it.
    for (const e of page.events) {
      out.push({
        event: JSON.parse(e.canonical) as ChainedAuditEvent["event"],
        canonical: e.canonical,
        hash: e.hash,
      });
    }
    next = page.next;
  }
  return out;
}

/**
 * The newest signed head, then what the witnesses countersigned of its log,
 * then every event: fetched in that order, the events cover both the head and
 * every size a witness had signed (a witness may countersign a newer head
 * while the events are being read; asked afterwards, it would name a size
 * the events do not reach, which reads as a rollback).
 */
async function fetchLog(
  c: Client,
  witnessUrls: readonly string[] = [],
): Promise<{ served: TreeHeadJson | null; views?: WitnessView[]; events: ChainedAuditEvent[] }> {
  const served = await c.request<TreeHeadJson>("GET", "/v1/audit/head").catch((err: unknown) => {
    if (err instanceof CliError && (err.code === "no_tree_head" || err.code === "sealed")) return null;
    throw err;
  });
  const views =
    served !== null && witnessUrls.length > 0
      ? await fetchWitnessViews(witnessUrls, served.publicKey)
      : undefined;
  return { served, views, events: await fetchChain(c) };
}

/**
 * Picks out the ceremony events the verify summary lists (who unsealed) and
 * reads them from their canonical text; the other events are checked as text
 * only and never parsed, which with a million events saves seconds and
 * gigabytes. The test on the text is a sound prefilter: canonical JSON has no
 * whitespace and escapes every quote inside a string, so an unseal event's
 * operation field always reads exactly like this; anything else it matches
 * is parsed and then told apart by its fields.
 */
function unsealEvents(events: readonly LoggedEvent[]): ChainedAuditEvent["event"][] {
  return events
    .filter((e) => e.canonical.includes('"operation":"sys.unseal'))
    .map((e) => {
      try {
        return JSON.parse(e.canonical) as ChainedAuditEvent["event"];
      } catch {
        throw new CliError(`the event with hash ${e.hash} is not JSON`, EXIT.refused);
      }
    });
}

export function auditCommands(program: Command, client: () => Client): void {
  const audit = program.command("audit").description("audit log");
  audit
    .command("verify")
    .description(
      "recompute the audit hash chain and the signed tree head from the events; report the first break",
    )
    .option("--audit-key <b64u>", "pin the node's audit signing key (as printed by a previous verify)")
    .option("--export <file>", "verify an exported log (custos audit export) offline instead of the server's")
    .option(
      "--witness <url>",
      "also check the log against what this witness countersigned (repeatable)",
      collect,
    )
    .option(
      "--witness-key <file>",
      "accept countersignatures only from these witness keys (repeatable)",
      collect,
    )
    .option("--format <format>", "text or json", "text")
    .action(
      async (opts: {
        format: string;
        auditKey?: string;
        export?: string;
        witness?: string[];
        witnessKey?: string[];
      }) => {
        const format = asFormat(opts.format);
        const pins = readWitnessPins(opts.witnessKey ?? []);
        const pinned = opts.auditKey === undefined ? undefined : b64u.decode(opts.auditKey, "--audit-key");
        const { served, views, check, log, unsealCandidates } =
          opts.export === undefined
            ? await fetchLog(client(), opts.witness ?? []).then(({ served, views, events }) => ({
                served,
                views,
                check: verifyLog(events, served, pinned),
                log: events,
                unsealCandidates: events,
              }))
            : { views: undefined, ...checkExport(opts.export, pinned, (opts.witness ?? []).length > 0) };
        const nodeProof =
          opts.export === undefined
            ? async (from: number, to: number) =>
                (
                  await client().request<{ proof: string[] }>(
                    "GET",
                    `/v1/audit/proof/consistency?from=${from}&to=${to}`,
                  )
                ).proof
            : undefined;
        const witnessing = await verifyWitnessing(
          served as ServedHead | null,
          log,
          opts.witness ?? [],
          pins,
          nodeProof,
          views,
        );
        const result = check.chain;
        const headCheck = check.head;
        const ceremony = unsealEvents(unsealCandidates);
        const unsealers = [
          ...new Set(
            ceremony
              .filter((e) => e.operation === "sys.unseal.submit" && e.decision === "allow")
              .map((e) => e.custodian ?? "?"),
          ),
        ];
        const unseals = ceremony.filter((e) => e.operation === "sys.unseal" && e.decision === "allow");
        const head = result.ok ? result.head : null;
        const summary = {
          ok: result.ok,
          events: check.events,
          ...(result.ok ? { head } : { firstBadSeq: result.seq, kind: result.kind, problem: result.problem }),
          signedHead: headCheck,
          witnesses: witnessing,
          unseals: unseals.map((e) => ({ seq: e.seq, time: e.time, reason: e.reason })),
          custodiansWhoUnsealed: unsealers,
        };
        print(format, summary, () =>
          result.ok
            ? [
                `Audit chain verified: ${check.events} events, head ${head}.`,
                headCheck === null
                  ? "No signed tree head yet (or the node is sealed): only the hash chain was checked."
                  : headCheck.ok
                    ? `Signed tree head verified: the first ${headCheck.size} events match the root signed by audit key ${headCheck.keyId}.`
                    : `Signed tree head FAILED (${headCheck.problem}): ${headCheck.detail}`,
                ...witnessLines(witnessing),
                ...unseals.map((e) => `  #${e.seq} ${e.time} ${e.reason}`),
              ].join("\n")
            : `Audit chain BROKEN at event ${result.seq}: ${result.problem}`,
        );
        if (!result.ok) throw new CliError(`audit chain broken at event ${result.seq}`, EXIT.refused);
        if (headCheck !== null && !headCheck.ok) {
          throw new CliError(`signed tree head check failed: ${headCheck.problem}`, EXIT.refused);
        }
        if (witnessing.first !== null) throw new CliError(witnessing.first.problem, EXIT.refused);
      },
    );
  audit
    .command("export")
    .description("write the whole audit log with its newest signed head to a file, for offline verification")
    .requiredOption("--out <file>", "the file to write (JSON lines; must not exist)")
    .action(async (opts: { out: string }) => {
      const { served, events } = await fetchLog(client());
      const lines = [
        JSON.stringify({ format: EXPORT_FORMAT, exportedAt: new Date().toISOString(), head: served }),
        ...events.map((e) => JSON.stringify({ seq: e.event.seq, hash: e.hash, canonical: e.canonical })),
      ];
      writeNewFile(opts.out, `${lines.join("\n")}\n`);
      process.stderr.write(
        `Exported ${events.length} events${served ? ` and the signed head of size ${served.size}` : ""} to ${opts.out}.\n` +
          `Check it anywhere with: custos audit verify --export ${opts.out} [--audit-key KEY]\n`,
      );
    });
  audit
    .command("events")
    .description("list audit events, optionally only those about one patient")
    .option("--from <seq>", "first event", Number, 1)
    .option("--patient <id>", "patient id, MRN or record id (matched by its keyed HMAC on the server)")
    .option("--principal <p>", "only this principal's events")
    .option("--format <format>", "text or json", "text")
    .action(async (opts: { from: number; patient?: string; principal?: string; format: string }) => {
      const format = asFormat(opts.format);
      const events = await fetchChain(client(), opts.from, {
        patient: opts.patient,
        principal: opts.principal,
      });
      print(
        format,
        events.map((e) => e.event),
        () =>
          events
            .map(({ event: e }) =>
              [
                e.seq,
                e.time,
                e.principal,
                e.operation,
                e.decision,
                e.key ? `${e.key}${e.keyVersion ? `@${e.keyVersion}` : ""}` : "-",
                e.purpose ?? "-",
                e.custodian ?? "",
                e.reason ?? "",
              ].join("\t"),
            )
            .join("\n"),
      );
    });

  const report = audit.command("report").description("reports built from the audit log");
  const formats = ["text", "json", "csv", "html"] as const;
  const asReportFormat = (f: string): ReportFormat => {
    if (!(formats as readonly string[]).includes(f))
      throw new CliError("--format must be text, json, csv or html", EXIT.usage);
    return f as ReportFormat;
  };
  report
    .command("disclosures")
    .description("accounting of disclosures: every use of a key on one patient's records")
    .requiredOption("--patient <id>", "patient id, MRN or record id")
    .option("--since <time>", "from this time (RFC 3339, UTC)")
    .option("--until <time>", "up to this time (RFC 3339, UTC, exclusive)")
    .option("--format <format>", "text, json, csv or html", "text")
    .action(async (opts: { patient: string; since?: string; until?: string; format: string }) => {
      const format = asReportFormat(opts.format);
      const events = await fetchChain(client(), 1, {
        patient: opts.patient,
        since: opts.since,
        until: opts.until,
      });
      const rows = disclosures(events.map((e) => e.event));
      process.stdout.write(`${renderReport(rows, format, "Accounting of disclosures")}\n`);
    });
  report
    .command("principal <principal>")
    .description("everything one principal did, allowed or refused")
    .option("--since <time>", "from this time (RFC 3339, UTC)")
    .option("--until <time>", "up to this time (RFC 3339, UTC, exclusive)")
    .option("--format <format>", "text, json, csv or html", "text")
    .action(async (principal: string, opts: { since?: string; until?: string; format: string }) => {
      const format = asReportFormat(opts.format);
      const events = await fetchChain(client(), 1, { principal, since: opts.since, until: opts.until });
      const rows = accessRows(events.map((e) => e.event));
      process.stdout.write(`${renderReport(rows, format, `Activity of ${principal}`)}\n`);
    });
  report
    .command("break-glass")
    .description("break-glass uses awaiting review (--all: reviewed ones too), oldest first")
    .option("--all", "include the uses already reviewed")
    .option("--format <format>", "text, json, csv or html", "text")
    .action(async (opts: { all?: boolean; format: string }) => {
      const format = asReportFormat(opts.format);
      const { reviews } = await client().request<{ reviews: ReviewRecord[] }>(
        "GET",
        `/v1/reviews${opts.all ? "" : "?open=true"}`,
      );
      const title = opts.all ? "Break-glass uses" : "Break-glass uses awaiting review";
      process.stdout.write(`${renderReport(breakGlassRows(reviews), format, title)}\n`);
    });
}
