/**
 * The `custos server` flags that bound what a caller can make the node
 * spend: the HTTP listener's timeouts and connection cap (api/server.ts
 * `HttpLimits`), the budget of refused requests per source address for
 * callers it cannot name, and how often their counted refusals are written
 * to the audit log (api/anonymous.ts). Defaults are documented in the README
 * ("Limits"); every value is checked here, so a typo stops the start with
 * the flag's name rather than leaving a node unlimited.
 */
import type { Command } from "commander";
import { DEFAULT_ANONYMOUS_LIMITS } from "../api/anonymous.js";
import { DEFAULT_HTTP_LIMITS, type HttpLimits, type NodeOptions } from "../api/server.js";
import { DEFAULT_DENIAL_INTERVAL_MS } from "../audit/denial-tally.js";
import { CliError, EXIT } from "./client.js";

export interface LimitFlags {
  requestTimeout: string;
  headersTimeout: string;
  keepAliveTimeout: string;
  maxConnections: string;
  maxHeadersCount: string;
  anonymousBurst: string;
  anonymousRate: string;
  denialAuditInterval: string;
}

const s = (ms: number) => String(ms / 1000);

export function limitOptions(command: Command): Command {
  const a = DEFAULT_ANONYMOUS_LIMITS.denials;
  return command
    .option(
      "--request-timeout <s>",
      "seconds a request (headers and body) may take to arrive",
      s(DEFAULT_HTTP_LIMITS.requestTimeoutMs),
    )
    .option(
      "--headers-timeout <s>",
      "seconds the request headers may take to arrive",
      s(DEFAULT_HTTP_LIMITS.headersTimeoutMs),
    )
    .option(
      "--keep-alive-timeout <s>",
      "seconds an idle keep-alive connection stays open",
      s(DEFAULT_HTTP_LIMITS.keepAliveTimeoutMs),
    )
    .option("--max-connections <n>", "connections open at once", String(DEFAULT_HTTP_LIMITS.maxConnections))
    .option(
      "--max-headers-count <n>",
      "header lines read per request",
      String(DEFAULT_HTTP_LIMITS.maxHeadersCount),
    )
    .option(
      "--anonymous-burst <n>",
      "refused requests of unidentified callers per source address at once",
      String(a.burst),
    )
    .option(
      "--anonymous-rate <n>",
      "refused requests per second per source address, after the burst",
      String(a.perSecond),
    )
    .option(
      "--denial-audit-interval <s>",
      "seconds between the audit events counting refused requests of unidentified callers",
      s(DEFAULT_DENIAL_INTERVAL_MS),
    );
}

function number(flag: string, value: string, min: number, max: number, integer = false): number {
  const n = Number(value);
  if (!(Number.isFinite(n) && n >= min && n <= max) || (integer && !Number.isInteger(n))) {
    throw new CliError(
      `--${flag} '${value}' must be ${integer ? "an integer" : "a number"} from ${min} to ${max}`,
      EXIT.usage,
    );
  }
  return n;
}

export function limitsFrom(o: LimitFlags): { http: HttpLimits; anonymous: NodeOptions["anonymous"] } {
  const seconds = (flag: string, v: string) => Math.round(number(flag, v, 0.1, 3600) * 1000);
  return {
    http: {
      requestTimeoutMs: seconds("request-timeout", o.requestTimeout),
      headersTimeoutMs: seconds("headers-timeout", o.headersTimeout),
      keepAliveTimeoutMs: seconds("keep-alive-timeout", o.keepAliveTimeout),
      maxConnections: number("max-connections", o.maxConnections, 1, 1_000_000, true),
      maxHeadersCount: number("max-headers-count", o.maxHeadersCount, 10, 10_000, true),
    },
    anonymous: {
      denials: {
        burst: number("anonymous-burst", o.anonymousBurst, 1, 1_000_000, true),
        perSecond: number("anonymous-rate", o.anonymousRate, 0.001, 1_000_000),
      },
      auditIntervalMs: seconds("denial-audit-interval", o.denialAuditInterval),
    },
  };
}
