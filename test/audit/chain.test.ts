// The audit hash chain (docs/FORMATS.md §8): canonical JSON, the link hash
// checked against an independent SHA-256, and verifyChain against tampering.
import { sha256 } from "@noble/hashes/sha2.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  appendEvent,
  type ChainHead,
  canonicalJson,
  chainHash,
  GENESIS_HASH,
  verifyChain,
} from "../../src/audit/chain.js";
import type { AuditEventInput, ChainedAuditEvent } from "../../src/audit/event.js";

function input(i: number, extra: Partial<AuditEventInput> = {}): AuditEventInput {
  return {
    time: `2025-01-01T00:00:${String(i % 60).padStart(2, "0")}.000Z`,
    principal: `user-${i % 3}`,
    operation: "encrypt",
    decision: "allow",
    ...extra,
  };
}

function build(inputs: readonly AuditEventInput[], from?: ChainHead): ChainedAuditEvent[] {
  let head = from ?? { seq: 0, hash: GENESIS_HASH };
  return inputs.map((e) => {
    const next = appendEvent(head, e);
    head = next.head;
    return next.chained;
  });
}

const clone = (events: ChainedAuditEvent[]): ChainedAuditEvent[] => structuredClone(events);

describe("canonicalJson", () => {
  it("sorts keys recursively and drops whitespace", () => {
    expect(canonicalJson({ b: 1, a: { d: [true, "x"], c: false } })).toBe(
      '{"a":{"c":false,"d":[true,"x"]},"b":1}',
    );
  });

  it("sorts by UTF-16 code units as RFC 8785 does", () => {
    expect(canonicalJson({ "\u{1F600}": 1, "\uFFFF": 2, a: 3, B: 4 })).toBe(
      '{"B":4,"a":3,"\u{1F600}":1,"\uFFFF":2}',
    );
  });

  it("omits fields that are undefined", () => {
    expect(canonicalJson({ a: 1, reason: undefined })).toBe('{"a":1}');
  });

  it("escapes strings like JSON.stringify", () => {
    expect(canonicalJson('a"\\\n\u0001é')).toBe(JSON.stringify('a"\\\n\u0001é'));
  });

  it.each([
    ["a fraction", 1.5, RangeError],
    ["NaN", Number.NaN, RangeError],
    ["an unsafe integer", 2 ** 53, RangeError],
    ["null", null, TypeError],
    ["a bigint", 1n, TypeError],
    ["undefined", undefined, TypeError],
    ["a Date", new Date(0), TypeError],
    ["a Uint8Array", new Uint8Array(1), TypeError],
    ["a lone surrogate", "\uD800", RangeError],
    ["a nested fraction", { a: [{ b: 0.1 }] }, RangeError],
    ["undefined in an array", [undefined], TypeError],
  ])("refuses %s", (_label, value, error) => {
    expect(() => canonicalJson(value)).toThrow(error);
  });

  it("refuses nesting beyond the limit (and so cycles)", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => canonicalJson(cyclic)).toThrow(RangeError);
  });

  it("round-trips through JSON.parse and is stable under key order (property)", () => {
    const json = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: "small", withCrossShrink: true },
        fc.string(),
        fc.maxSafeInteger(),
        fc.boolean(),
        fc.array(tie("value"), { maxLength: 4 }),
        fc.dictionary(fc.string(), tie("value"), { maxKeys: 4 }),
      ),
    })).value;
    fc.assert(
      fc.property(json, (v) => {
        const c = canonicalJson(v);
        expect(JSON.parse(c)).toEqual(v);
        expect(canonicalJson(JSON.parse(c))).toBe(c);
      }),
    );
  });
});

describe("chainHash", () => {
  it("is SHA-256(label ‖ u64be(seq) ‖ prev ‖ utf8(canonical))", () => {
    const prev = Uint8Array.from({ length: 32 }, (_, i) => i);
    const canonical = '{"seq":258,"x":"é"}';
    const seq = new Uint8Array([0, 0, 0, 0, 0, 0, 1, 2]);
    const expected = sha256(
      new Uint8Array([
        ...new TextEncoder().encode("custos/audit/v1"),
        ...seq,
        ...prev,
        ...new TextEncoder().encode(canonical),
      ]),
    );
    expect(chainHash(258, prev, canonical)).toEqual(expected);
  });

  it("checks its arguments", () => {
    expect(() => chainHash(0, GENESIS_HASH, "{}")).toThrow(RangeError);
    expect(() => chainHash(1.5, GENESIS_HASH, "{}")).toThrow(RangeError);
    expect(() => chainHash(1, new Uint8Array(31), "{}")).toThrow(TypeError);
  });

  it("starts from 32 zero bytes", () => {
    expect(GENESIS_HASH).toEqual(new Uint8Array(32));
  });
});

describe("appendEvent", () => {
  it("numbers the event, includes seq in the canonical JSON and keeps only event fields", () => {
    const stray = { ...input(1, { reason: undefined, keyVersion: 2 }), plaintext: "PHI" } as AuditEventInput;
    const { chained, head } = appendEvent({ seq: 41, hash: GENESIS_HASH }, stray);
    expect(head.seq).toBe(42);
    expect(chained.event.seq).toBe(42);
    expect(chained.canonical).toBe(
      '{"decision":"allow","keyVersion":2,"operation":"encrypt","principal":"user-1","seq":42,"time":"2025-01-01T00:00:01.000Z"}',
    );
    expect(chained.hash).toBe(Buffer.from(chainHash(42, GENESIS_HASH, chained.canonical)).toString("hex"));
  });
});

describe("verifyChain", () => {
  const events = build(Array.from({ length: 10 }, (_, i) => input(i, { context: { patient: `h${i}` } })));

  it("accepts an intact chain and reports its head", () => {
    const v = verifyChain(events);
    expect(v.ok).toBe(true);
    if (v.ok) expect(v.last.seq).toBe(10);
  });

  it("accepts an empty chain", () => {
    expect(verifyChain([])).toEqual({ ok: true, last: { seq: 0, hash: GENESIS_HASH } });
  });

  it("verifies page by page from a previous head", () => {
    const first = verifyChain(events.slice(0, 4));
    expect(first.ok).toBe(true);
    if (first.ok) expect(verifyChain(events.slice(4), first.last).ok).toBe(true);
    // A page checked against the wrong head fails.
    expect(verifyChain(events.slice(4), { seq: 4, hash: GENESIS_HASH })).toMatchObject({ ok: false, seq: 5 });
  });

  it("detects an altered event even when its canonical JSON is left untouched", () => {
    const t = clone(events);
    t[3]!.event.decision = "deny";
    expect(verifyChain(t)).toMatchObject({ ok: false, seq: 4, problem: "event" });
  });

  it("detects an altered nested context value", () => {
    const t = clone(events);
    t[6]!.event.context = { patient: "someone-else" };
    expect(verifyChain(t)).toMatchObject({ ok: false, seq: 7, problem: "event" });
  });

  it("detects an event rewritten consistently with its canonical JSON", () => {
    const t = clone(events);
    t[3]!.event.principal = "mallory";
    t[3]!.canonical = canonicalJson(t[3]!.event);
    expect(verifyChain(t)).toMatchObject({ ok: false, seq: 4, problem: "hash" });
  });

  it("detects an event rewritten with a recomputed hash by the next link", () => {
    const t = clone(events);
    t[3]!.event.principal = "mallory";
    t[3]!.canonical = canonicalJson(t[3]!.event);
    t[3]!.hash = Buffer.from(chainHash(4, Buffer.from(t[2]!.hash, "hex"), t[3]!.canonical)).toString("hex");
    expect(verifyChain(t)).toMatchObject({ ok: false, seq: 5, problem: "hash" });
  });

  it("detects a deleted event", () => {
    const t = clone(events);
    t.splice(5, 1);
    expect(verifyChain(t)).toMatchObject({ ok: false, seq: 6, problem: "seq" });
  });

  it("detects a deleted first event", () => {
    expect(verifyChain(clone(events).slice(1))).toMatchObject({ ok: false, seq: 1, problem: "seq" });
  });

  it("detects reordered events", () => {
    const t = clone(events);
    [t[2], t[3]] = [t[3]!, t[2]!];
    expect(verifyChain(t)).toMatchObject({ ok: false, seq: 3, problem: "seq" });
  });

  it("detects reordered events renumbered to look continuous", () => {
    const t = clone(events);
    [t[2], t[3]] = [t[3]!, t[2]!];
    t[2]!.event.seq = 3;
    t[3]!.event.seq = 4;
    expect(verifyChain(t)).toMatchObject({ ok: false, seq: 3, problem: "event" });
  });

  it("reports an event that cannot be encoded instead of throwing", () => {
    const t = clone(events);
    (t[0]!.event as { keyVersion?: number }).keyVersion = 1.5;
    expect(verifyChain(t)).toMatchObject({ ok: false, seq: 1, problem: "event" });
  });

  it("catches any single-event tampering (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: events.length - 1 }),
        fc.constantFrom("principal", "operation", "time", "requestId"),
        fc.string({ minLength: 1 }),
        (i, field, value) => {
          const t = clone(events);
          const e = t[i]!.event;
          fc.pre(e[field] !== value);
          e[field] = value;
          const v = verifyChain(t);
          expect(v.ok).toBe(false);
          if (!v.ok) expect(v.seq).toBe(i + 1);
        },
      ),
    );
  });
});
