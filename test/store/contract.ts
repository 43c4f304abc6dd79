// The Store contract, run against every implementation: each case describes
// behaviour callers rely on, through the Store interface only, so a
// PostgreSQL store can be held to the same cases. `open` must return a fresh,
// empty store each time.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { verifyChain } from "../../src/audit/chain.js";
import type { AuditEventInput, ChainedAuditEvent } from "../../src/audit/event.js";
import { leafHash, nodeHash } from "../../src/audit/merkle.js";
import {
  type ApprovalRecord,
  type KeyRecord,
  type KeyVersionRecord,
  type ReviewRecord,
  type SealConfig,
  type Store,
  StoreConflictError,
  StoreUnavailableError,
  type TokenRecord,
} from "../../src/store/store.js";

const T0 = "2025-03-01T10:00:00.000Z";
let counter = 0;

export function ev(extra: Partial<AuditEventInput> = {}): AuditEventInput {
  counter++;
  return {
    time: T0,
    principal: "admin",
    operation: "test",
    decision: "allow",
    requestId: `req-${counter}`,
    ...extra,
  };
}

export function sealConfig(): SealConfig {
  return {
    initId: "0123456789abcdef0123456789abcdef",
    threshold: 2,
    shares: 3,
    custodians: [1, 2, 3].map((index) => ({
      id: `c${index}`,
      index,
      publicKey: `pk${index}`,
      commitment: `cm${index}`,
    })),
    kcv: "a2N2",
    rootGeneration: 1,
    createdAt: T0,
  };
}

export function token(hash: string, principal = "root"): TokenRecord {
  return {
    hash,
    principal,
    roles: ["admin", "auditor"],
    createdBy: "init",
    createdAt: T0,
    expiresAt: null,
    lastUsedAt: null,
    mintedUnder: null,
  };
}

export function review(id: string, principal = "dr-wong"): ReviewRecord {
  return {
    id,
    requestId: `req-${id}`,
    principal,
    organisation: "weill",
    operation: "keys.decrypt",
    key: "ehr-nyu-notes",
    purpose: "ETREAT",
    rule: "break-glass",
    reason: "break-glass decrypt",
    reviewRoles: ["privacy-officer"],
    createdAt: T0,
    dueAt: "2025-03-04T10:00:00.000Z",
    closedBy: null,
    closedAt: null,
    note: null,
  };
}

export function approval(id: string, requester = "kim"): ApprovalRecord {
  return {
    id,
    operation: "destroy",
    key: "ehr-weill-notes",
    params: '{"key":"ehr-weill-notes","operation":"destroy"}',
    paramsHash: "ab".repeat(32),
    purpose: "HSYSADMIN",
    requester,
    organisation: "weill",
    rule: "destroy-two-other-hospitals",
    required: 2,
    reason: null,
    createdAt: T0,
    expiresAt: "2025-03-02T10:00:00.000Z",
    state: "pending",
    approvals: [],
    deniedBy: null,
    deniedAt: null,
    note: null,
    executedBy: null,
    executedAt: null,
    executionRequestId: null,
  };
}

export function key(name: string): KeyRecord {
  return {
    name,
    protection: "software",
    state: "enabled",
    latestVersion: 1,
    minDecryptionVersion: 1,
    rotationPeriodSeconds: null,
    deletionAt: null,
    createdAt: T0,
    updatedAt: T0,
  };
}

export function version(name: string, v: number, fill = v): KeyVersionRecord {
  return { name, version: v, state: "enabled", sealedMaterial: new Uint8Array(40).fill(fill), createdAt: T0 };
}

export async function readAll(store: Store): Promise<ChainedAuditEvent[]> {
  const out: ChainedAuditEvent[] = [];
  for (;;) {
    const page = await store.readAudit({ fromSeq: out.length + 1, limit: 1000 });
    out.push(...page);
    if (page.length < 1000) return out;
  }
}

/** The whole log is gapless from 1, verifies, and holds exactly these request ids. */
export async function expectChain(store: Store): Promise<ChainedAuditEvent[]> {
  const all = await readAll(store);
  expect(all.map((e) => e.event.seq)).toEqual(all.map((_, i) => i + 1));
  expect(verifyChain(all)).toMatchObject({ ok: true });
  return all;
}

const ids = (events: ChainedAuditEvent[]): (string | undefined)[] => events.map((e) => e.event.requestId);

export function storeContract(name: string, open: () => Promise<Store>): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });

    it("initialises once; a second init conflicts and changes nothing", async () => {
      expect(await store.getSealConfig()).toBeNull();
      const secret = new Uint8Array([1, 2, 3]);
      const e1 = ev({ operation: "sys.init" });
      await store.initialize(sealConfig(), { "audit-key": secret }, token("t-root"), e1);
      expect(await store.getSealConfig()).toEqual(sealConfig());
      expect(await store.getSysSecret("audit-key")).toEqual(secret);
      expect(await store.getSysSecret("nope")).toBeNull();
      expect(await store.getToken("t-root")).toEqual(token("t-root"));

      const e2 = ev({ operation: "sys.init" });
      const other = { ...sealConfig(), initId: "f".repeat(32) };
      await expect(store.initialize(other, {}, token("t-other"), e2)).rejects.toBeInstanceOf(
        StoreConflictError,
      );
      expect((await store.getSealConfig())?.initId).toBe(sealConfig().initId);
      expect(await store.getToken("t-other")).toBeNull();
      expect(ids(await expectChain(store))).toEqual([e1.requestId]);
    });

    it("creates, gets and lists keys with their versions", async () => {
      await store.createKey(key("b-key"), version("b-key", 1), ev());
      await store.createKey(key("a-key"), version("a-key", 1), ev());
      expect(await store.getKey("a-key")).toEqual(key("a-key"));
      expect(await store.getKey("missing")).toBeNull();
      expect((await store.listKeys()).map((k) => k.name)).toEqual(["a-key", "b-key"]);
      expect(await store.getKeyVersions("a-key")).toEqual([version("a-key", 1)]);
      expect(await store.getKeyVersions("missing")).toEqual([]);
    });

    it("refuses a duplicate key name alone: its event is not chained, its batch neighbours commit", async () => {
      await store.createKey(key("dup"), version("dup", 1, 7), ev());
      const dupEvent = ev({ operation: "key.create", key: "dup" });
      const goodEvents = Array.from({ length: 10 }, () => ev());
      const otherKeyEvent = ev({ operation: "key.create", key: "other" });
      const results = await Promise.allSettled([
        ...goodEvents.slice(0, 5).map((e) => store.appendAudit([e])),
        store.createKey(key("dup"), version("dup", 1, 9), dupEvent),
        store.createKey(key("other"), version("other", 1), otherKeyEvent),
        ...goodEvents.slice(5).map((e) => store.appendAudit([e])),
      ]);
      expect(results[5]).toMatchObject({ status: "rejected", reason: expect.any(StoreConflictError) });
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(11);
      // The original key is untouched.
      expect((await store.getKeyVersions("dup"))[0]?.sealedMaterial).toEqual(new Uint8Array(40).fill(7));
      expect(await store.getKey("other")).not.toBeNull();
      const chained = ids(await expectChain(store));
      expect(chained).not.toContain(dupEvent.requestId);
      for (const e of [...goodEvents, otherKeyEvent]) expect(chained).toContain(e.requestId);
    });

    it("adds a version only as latest+1", async () => {
      await store.createKey(key("k"), version("k", 1), ev());
      const later = "2025-03-02T00:00:00.000Z";
      await store.addKeyVersion(version("k", 2), later, ev());
      expect(await store.getKey("k")).toMatchObject({ latestVersion: 2, updatedAt: later });
      for (const v of [1, 2, 4]) {
        const e = ev();
        await expect(store.addKeyVersion(version("k", v), later, e)).rejects.toBeInstanceOf(
          StoreConflictError,
        );
        expect(ids(await readAll(store))).not.toContain(e.requestId);
      }
      await expect(store.addKeyVersion(version("nope", 2), later, ev())).rejects.toBeInstanceOf(
        StoreConflictError,
      );
      expect((await store.getKeyVersions("k")).map((v) => v.version)).toEqual([1, 2]);
      await expectChain(store);
    });

    it("lets exactly one of two racing rotations win", async () => {
      await store.createKey(key("race"), version("race", 1), ev());
      const results = await Promise.allSettled([
        store.addKeyVersion(version("race", 2, 20), T0, ev()),
        store.addKeyVersion(version("race", 2, 21), T0, ev()),
      ]);
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      expect(results.filter((r) => r.status === "rejected")[0]).toMatchObject({
        reason: expect.any(StoreConflictError),
      });
      expect(await store.getKey("race")).toMatchObject({ latestVersion: 2 });
      expect((await readAll(store)).length).toBe(2);
    });

    it("updates only the patched fields; null clears", async () => {
      await store.createKey({ ...key("u"), rotationPeriodSeconds: 86400 }, version("u", 1), ev());
      await store.addKeyVersion(version("u", 2), T0, ev());
      const t1 = "2025-04-01T00:00:00.000Z";
      await store.updateKey("u", { state: "disabled", minDecryptionVersion: 2 }, t1, ev());
      expect(await store.getKey("u")).toEqual({
        ...key("u"),
        latestVersion: 2,
        state: "disabled",
        minDecryptionVersion: 2,
        rotationPeriodSeconds: 86400,
        updatedAt: t1,
      });
      await store.updateKey("u", { rotationPeriodSeconds: null, deletionAt: t1 }, t1, ev());
      expect(await store.getKey("u")).toMatchObject({
        rotationPeriodSeconds: null,
        deletionAt: t1,
        state: "disabled",
      });
      await expect(store.updateKey("missing", { state: "enabled" }, t1, ev())).rejects.toBeInstanceOf(
        StoreConflictError,
      );
      expect((await readAll(store)).length).toBe(4);
    });

    it("destroys a key: every version's material is erased", async () => {
      await store.createKey(key("d"), version("d", 1), ev());
      await store.addKeyVersion(version("d", 2), T0, ev());
      const t1 = "2025-05-01T00:00:00.000Z";
      await store.destroyKey("d", t1, ev({ operation: "key.destroy", key: "d" }));
      expect(await store.getKey("d")).toMatchObject({ state: "destroyed", updatedAt: t1 });
      for (const v of await store.getKeyVersions("d")) {
        expect(v.state).toBe("destroyed");
        expect(v.sealedMaterial).toHaveLength(0);
      }
      await expect(store.destroyKey("d", t1, ev())).rejects.toBeInstanceOf(StoreConflictError);
      await expect(store.destroyKey("missing", t1, ev())).rejects.toBeInstanceOf(StoreConflictError);
      expect((await readAll(store)).map((e) => e.event.operation)).toEqual(["test", "test", "key.destroy"]);
    });

    it("stores tokens by hash; a duplicate hash conflicts", async () => {
      const t = { ...token("h1", "alice"), expiresAt: "2026-01-01T00:00:00.000Z" };
      await store.putToken(t, ev());
      expect(await store.getToken("h1")).toEqual(t);
      expect(await store.getToken("h2")).toBeNull();
      await expect(store.putToken(token("h1", "mallory"), ev())).rejects.toBeInstanceOf(StoreConflictError);
      expect(await store.getToken("h1")).toEqual(t);
    });

    it("lists tokens oldest first, records their last use forwards only, and revokes one with its event", async () => {
      const minted = { ...token("h2", "svc"), createdAt: "2025-03-02T00:00:00.000Z", mintedUnder: "desk" };
      await store.putToken(token("h1", "alice"), ev());
      await store.putToken(minted, ev());
      expect((await store.listTokens()).map((t) => [t.hash, t.mintedUnder])).toEqual([
        ["h1", null],
        ["h2", "desk"],
      ]);
      await store.touchToken("h2", "2025-03-03T10:00:00.000Z");
      await store.touchToken("h2", "2025-03-03T09:00:00.000Z"); // late and older: ignored
      await store.touchToken("gone", "2025-03-03T09:00:00.000Z"); // no such token: nothing happens
      expect((await store.getToken("h2"))?.lastUsedAt).toBe("2025-03-03T10:00:00.000Z");
      const size = await store.auditSize();
      await store.revokeToken("h2", { ...ev(), operation: "tokens.revoke" });
      expect(await store.getToken("h2")).toBeNull();
      expect(await store.auditSize()).toBe(size + 1);
      await expect(store.revokeToken("h2", ev())).rejects.toBeInstanceOf(StoreConflictError);
      expect(await store.auditSize()).toBe(size + 1);
      expect((await store.listTokens()).map((t) => t.hash)).toEqual(["h1"]);
    });

    it("keeps break-glass reviews: open, listed, closed once by someone other than the user", async () => {
      await store.putReview(
        review("r1"),
        ev({ operation: "break-glass", breakGlass: true, rule: "break-glass" }),
      );
      await store.putReview(review("r2", "dr-patel"), ev());
      await expect(store.putReview(review("r1"), ev())).rejects.toBeInstanceOf(StoreConflictError);
      expect(await store.getReview("r1")).toEqual(review("r1"));
      expect(await store.getReview("nope")).toBeNull();
      const close = { closedBy: "pat", closedAt: "2025-03-02T10:00:00.000Z", note: "treated in the ED" };
      await expect(store.closeReview("r1", { ...close, closedBy: "dr-wong" }, ev())).rejects.toBeInstanceOf(
        StoreConflictError,
      );
      await store.closeReview("r1", close, ev());
      await expect(store.closeReview("r1", close, ev())).rejects.toBeInstanceOf(StoreConflictError);
      await expect(store.closeReview("missing", close, ev())).rejects.toBeInstanceOf(StoreConflictError);
      expect(await store.getReview("r1")).toEqual({ ...review("r1"), ...close });
      expect((await store.listReviews()).map((r) => r.id)).toEqual(["r1", "r2"]);
      expect((await store.listReviews({ open: true })).map((r) => r.id)).toEqual(["r2"]);
      const events = await readAll(store);
      expect(events[0]?.event).toMatchObject({ breakGlass: true, rule: "break-glass" });
      expect(events).toHaveLength(3);
    });

    it("keeps approval requests: approved once per principal, never by the requester, consumed exactly once", async () => {
      await store.putApproval(approval("a1"), ev({ operation: "approvals.request" }));
      await store.putApproval(approval("a2", "lee"), ev());
      await expect(store.putApproval(approval("a1"), ev())).rejects.toBeInstanceOf(StoreConflictError);
      expect(await store.getApproval("a1")).toEqual(approval("a1"));
      expect(await store.getApproval("nope")).toBeNull();
      const at = "2025-03-01T11:00:00.000Z";
      const vote = (principal: string, organisation: string) => ({
        principal,
        organisation,
        roles: ["key-admin"],
        via: "token",
        at,
        note: null,
      });
      await expect(store.approveApproval("a1", vote("kim", "weill"), ev())).rejects.toBeInstanceOf(
        StoreConflictError,
      );
      await store.approveApproval("a1", vote("lee", "nyu"), ev());
      await expect(store.approveApproval("a1", vote("lee", "nyu"), ev())).rejects.toBeInstanceOf(
        StoreConflictError,
      );
      await expect(
        store.approveApproval("a1", { ...vote("jo", "msk"), at: "2025-03-02T10:00:00.000Z" }, ev()),
      ).rejects.toBeInstanceOf(StoreConflictError);
      await store.approveApproval("a1", vote("jo", "msk"), ev());
      expect((await store.getApproval("a1"))?.approvals.map((v) => v.principal)).toEqual(["jo", "lee"]);
      const use = { by: "kim", at, paramsHash: "ab".repeat(32), requestId: "req-x" };
      await expect(store.consumeApproval("a1", { ...use, by: "lee" }, ev())).rejects.toBeInstanceOf(
        StoreConflictError,
      );
      await expect(
        store.consumeApproval("a1", { ...use, paramsHash: "cd".repeat(32) }, ev()),
      ).rejects.toBeInstanceOf(StoreConflictError);
      const race = await Promise.allSettled([
        store.consumeApproval("a1", use, ev()),
        store.consumeApproval("a1", use, ev()),
      ]);
      expect(race.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      expect(await store.getApproval("a1")).toMatchObject({ state: "executed", executedBy: "kim" });
      await expect(store.approveApproval("a1", vote("pat", "weill"), ev())).rejects.toBeInstanceOf(
        StoreConflictError,
      );
      const denial = { by: "lee", at, note: "wrong key" };
      await expect(store.denyApproval("a2", denial, ev())).rejects.toBeInstanceOf(StoreConflictError);
      await store.denyApproval("a2", { ...denial, by: "kim" }, ev());
      await expect(store.denyApproval("a2", { ...denial, by: "jo" }, ev())).rejects.toBeInstanceOf(
        StoreConflictError,
      );
      expect((await store.listApprovals()).map((a) => a.id)).toEqual(["a1", "a2"]);
      expect((await store.listApprovals({ state: "denied" })).map((a) => a.deniedBy)).toEqual(["kim"]);
      expect(await store.listApprovals({ state: "pending" })).toEqual([]);
      const events = await expectChain(store);
      expect(events).toHaveLength(2 + 2 + 1 + 1);
    });

    it("chains 2,000 concurrent appends gaplessly", async () => {
      const events = Array.from({ length: 2000 }, () => ev());
      await Promise.all(events.map((e) => store.appendAudit([e])));
      const all = await expectChain(store);
      expect(all).toHaveLength(2000);
      expect(new Set(ids(all))).toEqual(new Set(events.map((e) => e.requestId)));
    });

    it("appends several events in one call in order, and none for an empty call", async () => {
      await store.appendAudit([]);
      const batch = [ev(), ev({ decision: "deny", reason: "policy" }), ev()];
      await store.appendAudit(batch);
      expect(ids(await expectChain(store))).toEqual(batch.map((e) => e.requestId));
    });

    it("stores events canonically: absent fields omitted, stray fields dropped, context kept", async () => {
      const e = {
        ...ev({
          key: "k",
          keyVersion: 3,
          purpose: "treatment",
          context: { patient: "aG1hYw" },
          reason: undefined,
        }),
        stray: "should not be stored",
      } as AuditEventInput;
      await store.appendAudit([e]);
      const [stored] = await readAll(store);
      expect(stored?.event).toEqual({
        seq: 1,
        time: T0,
        principal: "admin",
        operation: "test",
        decision: "allow",
        requestId: e.requestId,
        key: "k",
        keyVersion: 3,
        purpose: "treatment",
        context: { patient: "aG1hYw" },
      });
      expect(stored?.canonical).not.toMatch(/null|undefined|stray|\s/);
      expect(stored?.hash).toMatch(/^[0-9a-f]{64}$/);
    });

    it("refuses an event that cannot be chained, before anything is written", async () => {
      await expect(store.appendAudit([ev(), ev({ keyVersion: 1.5 })])).rejects.toThrow(RangeError);
      await expect(store.appendAudit([ev({ decision: "maybe" as "allow" })])).rejects.toThrow(RangeError);
      await expect(store.createKey(key("x"), version("x", 1), ev({ principal: "" }))).rejects.toThrow(
        RangeError,
      );
      expect(await store.getKey("x")).toBeNull();
      expect(await readAll(store)).toEqual([]);
    });

    it("refuses an event with a lone surrogate alone, leaving its neighbours and the chain intact", async () => {
      const results = await Promise.allSettled([
        store.appendAudit([ev({ reason: "before" })]),
        store.appendAudit([ev({ purpose: "\uD800" })]),
        store.appendAudit([ev({ reason: "after" })]),
      ]);
      expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
      const events = await readAll(store);
      expect(events.map((e) => e.event.reason)).toEqual(["before", "after"]);
      expect(verifyChain(events).ok).toBe(true);
    });

    it("keeps each event's RFC 9162 leaf hash, and the size of the log", async () => {
      expect(await store.auditSize()).toBe(0);
      await store.appendAudit([ev({ reason: "one" }), ev({ reason: "two" }), ev({ reason: "three" })]);
      expect(await store.auditSize()).toBe(3);
      const events = await readAll(store);
      const leaves = await store.readLeafHashes(1, 3);
      expect(leaves.map((l) => Buffer.from(l).toString("hex"))).toEqual(
        events.map((e) => Buffer.from(leafHash(new TextEncoder().encode(e.canonical))).toString("hex")),
      );
      expect(await store.readLeafHashes(2, 1)).toEqual([]);
      await expect(store.readLeafHashes(1, 4)).rejects.toThrow(RangeError);
    });

    it("keeps the Merkle log's complete subtrees as events are appended, and refuses incomplete ones", async () => {
      for (const n of [1, 2, 3, 4, 1]) await store.appendAudit(Array.from({ length: n }, () => ev()));
      const leaves = await store.readLeafHashes(1, 11);
      const mth = (hs: Uint8Array[]): Uint8Array =>
        hs.length === 1 ? hs[0]! : nodeHash(mth(hs.slice(0, hs.length / 2)), mth(hs.slice(hs.length / 2)));
      const refs = [
        { level: 0, index: 10 },
        { level: 1, index: 4 },
        { level: 2, index: 1 },
        { level: 3, index: 0 },
      ];
      const want = [leaves[10]!, mth(leaves.slice(8, 10)), mth(leaves.slice(4, 8)), mth(leaves.slice(0, 8))];
      const hex = (hs: Uint8Array[]) => hs.map((h) => Buffer.from(h).toString("hex"));
      expect(hex(await store.readSubtreeHashes(refs))).toEqual(hex(want));
      for (const incomplete of [
        { level: 0, index: 11 },
        { level: 1, index: 5 },
        { level: 2, index: 2 },
        { level: 4, index: 0 },
      ]) {
        await expect(store.readSubtreeHashes([incomplete])).rejects.toThrow(RangeError);
      }
    });

    it("stores one signed head per size, never beyond the log, never overwritten", async () => {
      await store.appendAudit([ev(), ev()]);
      const head = {
        size: 2,
        root: new Uint8Array(32).fill(1),
        timestamp: 1_700_000_000_000,
        signature: new Uint8Array(64).fill(2),
      };
      await store.putTreeHead(head);
      expect(await store.getTreeHead()).toEqual(head);
      expect(await store.getTreeHead(2)).toEqual(head);
      expect(await store.getTreeHead(1)).toBeNull();
      await expect(store.putTreeHead({ ...head, root: new Uint8Array(32).fill(9) })).rejects.toThrow(
        StoreConflictError,
      );
      await expect(store.putTreeHead({ ...head, size: 3 })).rejects.toThrow(StoreConflictError);
      expect(await store.getTreeHead()).toEqual(head);
    });

    it("keeps witnesses' countersignatures only on its own heads, one per witness and size", async () => {
      await store.appendAudit([ev(), ev(), ev()]);
      const head = (size: number) => ({
        size,
        root: new Uint8Array(32).fill(size),
        timestamp: 1_700_000_000_000 + size,
        signature: new Uint8Array(64).fill(2),
      });
      await store.putTreeHead(head(2));
      await store.putTreeHead(head(3));
      const cos = (witness: string, keyByte: number, size: number) => ({
        witness,
        witnessKey: new Uint8Array(32).fill(keyByte),
        size,
        root: new Uint8Array(32).fill(size),
        timestamp: 1_700_000_000_000 + size,
        cosignedAt: 1_700_000_001_000,
        signature: new Uint8Array(64).fill(keyByte),
      });
      expect(await store.getCosignatures()).toEqual([]);
      await store.putCosignature(cos("w-a", 1, 2));
      await store.putCosignature(cos("w-a", 1, 3));
      await store.putCosignature(cos("w-b", 2, 2));
      // The first one for a witness and size is kept; a later one is ignored.
      await store.putCosignature({ ...cos("w-a", 1, 2), cosignedAt: 1_800_000_000_000 });
      expect(await store.getCosignatures(2)).toEqual([cos("w-a", 1, 2), cos("w-b", 2, 2)]);
      expect(await store.getCosignatures(3)).toEqual([cos("w-a", 1, 3)]);
      expect(await store.getCosignatures(1)).toEqual([]);
      // Without a size: each witness's newest.
      expect(await store.getCosignatures()).toEqual([cos("w-a", 1, 3), cos("w-b", 2, 2)]);
      // Not on a head this store signed: another root, another time, no head of that size.
      await expect(
        store.putCosignature({ ...cos("w-c", 3, 2), root: new Uint8Array(32).fill(9) }),
      ).rejects.toThrow(StoreConflictError);
      await expect(store.putCosignature({ ...cos("w-c", 3, 2), timestamp: 5 })).rejects.toThrow(
        StoreConflictError,
      );
      await expect(store.putCosignature(cos("w-c", 3, 1))).rejects.toThrow(StoreConflictError);
      await expect(
        store.putCosignature({ ...cos("w-c", 3, 2), signature: new Uint8Array(3) }),
      ).rejects.toThrow(TypeError);
      expect(await store.getCosignatures(2)).toHaveLength(2);
    });

    it("finds events by the keyed HMAC of a context value", async () => {
      await store.appendAudit([
        ev({ context: { patient: "h-ann" } }),
        ev({ context: { patient: "h-bob", site: "h-nyu" } }),
        ev({ context: { mrn: "h-ann-mrn" } }),
        ev({}),
      ]);
      const found = await store.searchAudit({ contextHmacs: ["h-ann", "h-ann-mrn"] });
      expect(found.map((e) => e.event.seq)).toEqual([1, 3]);
      expect((await store.searchAudit({ contextHmacs: ["h-nyu"] })).map((e) => e.event.seq)).toEqual([2]);
      await expect(store.searchAudit({ contextHmacs: [] })).rejects.toThrow(TypeError);
    });

    it("filters events by purpose", async () => {
      await store.appendAudit([
        ev({ purpose: "TREAT" }),
        ev({ purpose: "HPAYMT" }),
        ev({ purpose: "TREAT" }),
      ]);
      const treat = await store.searchAudit({ purpose: "TREAT" });
      expect(treat.map((e) => e.event.seq)).toEqual([1, 3]);
    });

    it("pages the log from a seq and caps the page at 1000", async () => {
      await Promise.all(Array.from({ length: 1100 }, () => store.appendAudit([ev()])));
      expect(await store.readAudit({ limit: 5000 })).toHaveLength(1000);
      expect(await store.readAudit({})).toHaveLength(1000);
      const page = await store.readAudit({ fromSeq: 1095, limit: 3 });
      expect(page.map((e) => e.event.seq)).toEqual([1095, 1096, 1097]);
      expect(await store.readAudit({ fromSeq: 1101 })).toEqual([]);
    });

    it("drains pending writes on close, then refuses", async () => {
      const pending = Array.from({ length: 300 }, () => store.appendAudit([ev()]));
      await store.close();
      await expect(Promise.all(pending)).resolves.toBeDefined();
      await expect(store.appendAudit([ev()])).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(store.getKey("k")).rejects.toBeInstanceOf(StoreUnavailableError);
      // The afterEach close must be harmless.
    });
  });
}
