/**
 * Blinded unwraps and the share-node link, in process (docs/FORMATS.md
 * §11.4–§11.5): share nodes are asked on R' = ρ·R, never on the
 * ciphertext's R, and afresh for every unwrap, yet S comes out right; a
 * share node answering the old unblinded format is named as such; plain
 * http:// off loopback is refused when configured and when a key
 * descriptor's recorded URL would be used, before anything is sent; the
 * link's TLS options are checked when it is made.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ThresholdCoordinator } from "../../src/threshold/coordinator.js";
import { ThresholdKey } from "../../src/threshold/descriptor.js";
import { parseThresholdHeader, thresholdOpen, thresholdWrap } from "../../src/threshold/ecies.js";
import { pointToBytes } from "../../src/threshold/group.js";
import {
  checkShareNodeUrl,
  InsecureShareNodeUrlError,
  isLoopbackHost,
  ShareNodeLink,
} from "../../src/threshold/share-node-link.js";
import { ThresholdUnavailableError } from "../../src/threshold/unwrap.js";
import { type InProcessNode, startInProcessNode, testSigner } from "./helpers.js";

const signer = testSigner();
let nodes: InProcessNode[] = [];
let key: ThresholdKey;
/** Answers every partial request as a version-1 share node would, and keeps the points it was asked on. */
let oldNode: Server;
let oldUrl = "";
const askedOld: string[] = [];

/** `key` with every member's recorded URL replaced. */
function withUrls(url: string): ThresholdKey {
  const d = key.descriptor;
  return new ThresholdKey(key.keyName, key.keyVersion, {
    ...d,
    sets: d.sets.map((s) => ({ ...s, members: s.members.map((m) => ({ ...m, url })) })),
  });
}

beforeAll(async () => {
  nodes = await Promise.all(["b1", "b2", "b3"].map((n) => startInProcessNode(n, [signer.publicKey])));
  const coordinator = new ThresholdCoordinator({ signer, nodes: new Map(nodes.map((n) => [n.name, n.url])) });
  key = await coordinator.generate("blind", 1, [
    { name: "main", threshold: 2, nodes: nodes.map((n) => n.name) },
  ]);
  await coordinator.commit(key);
  oldNode = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => {
      body += d.toString();
    });
    req.on("end", () => {
      askedOld.push((JSON.parse(body) as { point: string }).point);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ index: 1, partial: "A".repeat(43), proof: "A".repeat(128) }));
    });
  });
  await new Promise<void>((resolve) => oldNode.listen(0, "127.0.0.1", resolve));
  oldUrl = `http://127.0.0.1:${(oldNode.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.close()));
  oldNode.closeAllConnections();
  await new Promise<void>((resolve) => oldNode.close(() => resolve()));
});

describe("blinded unwrap", () => {
  it("asks on a fresh R' every time, never R, and still opens", async () => {
    const coordinator = new ThresholdCoordinator({ signer, nodes: new Map() });
    const blob = thresholdWrap(key.publicKey, "blind", 1, new Uint8Array([7, 7]), { patient: "p" });
    const r = parseThresholdHeader(blob).ephemeral;
    const old = withUrls(oldUrl);
    const before = askedOld.length;
    for (let i = 0; i < 2; i++) await coordinator.sharedPoint(old, r).catch(() => undefined);
    const asked = askedOld.slice(before);
    expect(asked.length).toBeGreaterThanOrEqual(2);
    expect(asked).not.toContain(Buffer.from(pointToBytes(r)).toString("base64url"));
    // One blinded point per unwrap (every share node of that unwrap is asked on it), two unwraps.
    expect(new Set(asked).size).toBe(2);
    // Against the real share nodes (configured by name), S = x·R: the blob opens.
    const real = new ThresholdCoordinator({ signer, nodes: new Map(nodes.map((n) => [n.name, n.url])) });
    const s = await real.sharedPoint(key, r);
    expect([...thresholdOpen(blob, { patient: "p" }, key.publicKey, s)]).toEqual([7, 7]);
  });

  it("names a share node that answers the old, unblinded format", async () => {
    const coordinator = new ThresholdCoordinator({ signer, nodes: new Map() });
    const r = parseThresholdHeader(
      thresholdWrap(key.publicKey, "blind", 1, new Uint8Array([1]), { patient: "p" }),
    ).ephemeral;
    const err = (await coordinator.sharedPoint(withUrls(oldUrl), r).catch((e: Error) => e)) as Error;
    expect(err).toBeInstanceOf(ThresholdUnavailableError);
    expect(err.message).toMatch(/b1 \(answer to \/v1\/threshold\/partial is in an older or unknown format/);
    expect((err as ThresholdUnavailableError).badPartials.sort()).toEqual(["b1", "b2", "b3"]);
  });
});

describe("the share-node link", () => {
  it("loopback is 127.0.0.0/8, ::1 and localhost, nothing else", () => {
    for (const h of ["127.0.0.1", "127.200.3.4", "localhost", "LOCALHOST", "[::1]", "::1"])
      expect(isLoopbackHost(h)).toBe(true);
    for (const h of ["128.0.0.1", "10.0.0.1", "127.example", "localhost.example", "[::2]", "0.0.0.0"])
      expect(isLoopbackHost(h)).toBe(false);
  });

  it("refuses plain http:// off loopback unless allowed; https:// anywhere", () => {
    expect(() => checkShareNodeUrl("http://10.1.2.3:8300", false)).toThrow(InsecureShareNodeUrlError);
    expect(() => checkShareNodeUrl("http://10.1.2.3:8300", false)).toThrow(/--insecure-share-node-http/);
    expect(checkShareNodeUrl("http://10.1.2.3:8300", true).host).toBe("10.1.2.3:8300");
    expect(checkShareNodeUrl("http://[::1]:8300", false).hostname).toBe("[::1]");
    expect(checkShareNodeUrl("https://share.example:8300", false).protocol).toBe("https:");
    expect(() => checkShareNodeUrl("ftp://share.example", true)).toThrow(/must be https/);
    expect(() => checkShareNodeUrl("not a url", true)).toThrow(/not a URL/);
  });

  it("a coordinator refuses an insecure configured URL at construction, and a recorded one at use, sending nothing", async () => {
    expect(
      () => new ThresholdCoordinator({ signer, nodes: new Map([["far", "http://192.0.2.1:8300"]]) }),
    ).toThrow(/share node 'far': .*plain http:\/\//);
    expect(
      new ThresholdCoordinator({
        signer,
        nodes: new Map([["far", "http://192.0.2.1:8300"]]),
        link: new ShareNodeLink({ allowInsecureHttp: true }),
      }).nodeNames,
    ).toEqual(["far"]);
    // Not configured here: the URL recorded in the descriptor would be used, and is refused.
    const coordinator = new ThresholdCoordinator({ signer, nodes: new Map() });
    const r = parseThresholdHeader(
      thresholdWrap(key.publicKey, "blind", 1, new Uint8Array([1]), { patient: "p" }),
    ).ephemeral;
    const started = Date.now();
    const err = (await coordinator
      .sharedPoint(withUrls("http://192.0.2.1:8300"), r)
      .catch((e: Error) => e)) as Error;
    expect(err).toBeInstanceOf(ThresholdUnavailableError);
    expect(err.message).toMatch(
      /refused or answered wrongly: b1 \(share node URL http:\/\/192\.0\.2\.1:8300 is plain http/,
    );
    // Refused before any connection: no 3 s timeout to an unroutable address.
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("checks its TLS options when made", () => {
    expect(() => new ShareNodeLink({ tls: { cert: Buffer.from("x") } })).toThrow(/together/);
    expect(() => new ShareNodeLink({ tls: { ca: Buffer.from("not a certificate") } })).toThrow(
      /CA is not a PEM/,
    );
    expect(() => new ShareNodeLink({ tls: { cert: Buffer.from("x"), key: Buffer.from("y") } })).toThrow();
  });
});
