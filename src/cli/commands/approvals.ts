/**
 * Four eyes from the command line: `approvals request|list|show|approve|
 * deny|execute`. Thin, like the key commands: each maps to one API call and
 * prints the request as text (what is asked, by whom, who approved, what is
 * still missing, what to do next) or JSON. A policy change is requested for
 * a document: `--file` hashes it here, so approvers approve exactly the
 * bytes the requester means, and the server refuses any other document.
 * Approving, denying and executing name the approval's parameters digest
 * (`paramsHash`): `--digest` pins the one the caller reviewed (from
 * `approvals show`); without it the request is read first and its digest
 * sent, so a request changed meanwhile is still refused by the server.
 */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { documentDigest } from "../../approvals/binding.js";
import type { ApprovalView } from "../../approvals/service.js";
import { CliError, type Client, EXIT } from "../client.js";
import { asFormat, print, readJsonFile } from "../io.js";

const formatOption = ["--format <format>", "text or json", "text"] as const;
const digestOption = [
  "--digest <sha256>",
  "the parameters' digest you reviewed (Parameters: sha256:… in 'approvals show'); default: read it now",
] as const;

/** `{id, digest}` as the server wants it for a vote or an execution. */
async function seen(client: Client, id: string, digest: string | undefined) {
  if (digest !== undefined) {
    const d = digest.replace(/^sha256:/, "");
    if (!/^[0-9a-f]{64}$/.test(d))
      throw new CliError("--digest must be 64 hex digits (sha256:…)", EXIT.usage);
    return { id, digest: d };
  }
  const view = await client.request<ApprovalView>("GET", `/v1/approvals/${encodeURIComponent(id)}`);
  return { id, digest: view.paramsHash };
}

/** A key-use request's context as the audit keeps it: keys, HMAC'd values, configured clear values. */
function contextLines(p: Record<string, unknown>): string[] {
  const entries = (v: unknown) =>
    typeof v === "object" && v !== null ? Object.entries(v as Record<string, unknown>) : [];
  const shown = [
    ...entries(p.clearContext).map(([k, v]) => `${k}=${String(v)}`),
    ...entries(p.context).map(([k, v]) => `${k}=hmac:${String(v).slice(0, 12)}…`),
  ];
  return shown.length ? [`Context:    ${shown.join(", ")} (body bound by MAC)`] : [];
}

export function describeApproval(a: ApprovalView): string {
  const what = `${a.operation}${a.key ? ` ${a.key}` : ""}`;
  const digest = typeof a.parameters.digest === "string" ? ` (document sha256:${a.parameters.digest})` : "";
  const lines = [
    `Approval:   ${a.id}`,
    `Status:     ${a.status}${a.status === "pending" ? ` (${a.counted} of ${a.required} approvals)` : ""}`,
    `Operation:  ${what}${digest} for ${a.purpose}`,
    `Requester:  ${a.requester} (${a.organisation})${a.reason ? `: ${a.reason}` : ""}`,
    `Rule:       ${a.rule}, ${a.required} approval(s), expires ${a.expiresAt}`,
    `Parameters: sha256:${a.paramsHash}`,
    ...contextLines(a.parameters),
    ...a.approvals.map(
      (v) =>
        `Approved:   ${v.principal} (${v.organisation}, ${v.via}) at ${v.at}${v.note ? `: ${v.note}` : ""}`,
    ),
  ];
  if (a.deniedBy) lines.push(`Denied:     by ${a.deniedBy} at ${a.deniedAt}: ${a.note}`);
  if (a.executedBy) lines.push(`Executed:   by ${a.executedBy} at ${a.executedAt}`);
  if (a.status === "pending")
    lines.push(`Next:       eligible principals run 'custos approvals approve ${a.id}'`);
  if (a.status === "approved")
    lines.push(`Next:       ${a.requester} runs 'custos approvals execute ${a.id}'`);
  return lines.join("\n");
}

export function approvalCommands(program: Command, client: () => Client): void {
  const approvals = program
    .command("approvals")
    .description(
      "four eyes: request, approve, deny and execute operations the policy lets run only with approvals",
    );

  approvals
    .command("request <operation> [key]")
    .description("request an operation with its exact parameters (e.g. destroy ehr-nyu-notes, policy-change)")
    .option("--purpose <code>", "the purpose of use the operation runs for", "HSYSADMIN")
    .option("--reason <text>", "why: shown to the approvers")
    .option("--file <policy.yaml>", "policy-change: the document to load (its SHA-256 is bound)")
    .option(
      "--digest <sha256>",
      "policy-change: the document's SHA-256 (default: the server's file as it is now)",
    )
    .option(
      "--body <file.json>",
      "the JSON body the operation's request will carry (e.g. a rekey's), bound as is",
    )
    .option(...formatOption)
    .action(
      async (
        operation: string,
        key: string | undefined,
        opts: {
          purpose: string;
          reason?: string;
          file?: string;
          digest?: string;
          body?: string;
          format: string;
        },
      ) => {
        const format = asFormat(opts.format);
        let digest = opts.digest;
        if (opts.file !== undefined) {
          try {
            digest = documentDigest(readFileSync(opts.file));
          } catch (err) {
            throw new CliError(`cannot read ${opts.file}: ${(err as Error).message}`, EXIT.usage);
          }
        }
        const body = opts.body === undefined ? undefined : readJsonFile(opts.body, "request body");
        if (body !== undefined && (typeof body !== "object" || body === null || Array.isArray(body))) {
          throw new CliError(`${opts.body} must hold a JSON object (the request's body)`, EXIT.usage);
        }
        const view = await client().request<ApprovalView>("POST", "/v1/approvals", {
          operation,
          ...(key !== undefined && { key }),
          purpose: opts.purpose,
          ...(digest !== undefined && { digest }),
          ...(body !== undefined && { body }),
          ...(opts.reason !== undefined && { reason: opts.reason }),
        });
        print(format, view, () => `Requested.\n${describeApproval(view)}`);
      },
    );

  approvals
    .command("list")
    .description("approval requests")
    .option("--status <status>", "pending, approved, denied, executed or expired")
    .option(...formatOption)
    .action(async (opts: { status?: string; format: string }) => {
      const format = asFormat(opts.format);
      const query = opts.status ? `?status=${encodeURIComponent(opts.status)}` : "";
      const { approvals: list } = await client().request<{ approvals: ApprovalView[] }>(
        "GET",
        `/v1/approvals${query}`,
      );
      print(format, list, () =>
        list.length === 0
          ? "No approval requests."
          : list
              .map(
                (a) =>
                  `${a.id}  ${a.status.padEnd(8)}  ${a.counted}/${a.required}  ${a.operation}${a.key ? ` ${a.key}` : ""}  by ${a.requester} (${a.organisation})`,
              )
              .join("\n"),
      );
    });

  approvals
    .command("show <id>")
    .description("one approval request")
    .option(...formatOption)
    .action(async (id: string, opts: { format: string }) => {
      const view = await client().request<ApprovalView>("GET", `/v1/approvals/${encodeURIComponent(id)}`);
      print(asFormat(opts.format), view, () => describeApproval(view));
    });

  for (const verb of ["approve", "deny"] as const) {
    approvals
      .command(`${verb} <id>`)
      .description(verb === "approve" ? "approve a request (never your own)" : "deny a request: it ends")
      .option("--note <text>", "your finding, kept with the request and in the audit")
      .option(...digestOption)
      .option(...formatOption)
      .action(async (id: string, opts: { note?: string; digest?: string; format: string }) => {
        const api = client();
        const view = await api.request<ApprovalView>(
          "POST",
          `/v1/approvals/${encodeURIComponent(id)}/${verb}`,
          { ...(await seen(api, id, opts.digest)), ...(opts.note !== undefined && { note: opts.note }) },
        );
        print(
          asFormat(opts.format),
          view,
          () => `${verb === "approve" ? "Approved" : "Denied"}.\n${describeApproval(view)}`,
        );
      });
  }

  approvals
    .command("execute <id>")
    .description("run an approved key destruction or policy change (requester only, once)")
    .option(...digestOption)
    .option(...formatOption)
    .action(async (id: string, opts: { digest?: string; format: string }) => {
      const api = client();
      const out = await api.request<{ approval: ApprovalView; result: unknown }>(
        "POST",
        `/v1/approvals/${encodeURIComponent(id)}/execute`,
        await seen(api, id, opts.digest),
      );
      print(asFormat(opts.format), out, () => `Executed.\n${describeApproval(out.approval)}`);
    });
}
