/**
 * Key life cycle on a real store: scheduled destruction happens only after
 * the waiting period and erases the material; automatic rotation happens when
 * the rotation period has passed; material is sealed under the root key with
 * the key name and version bound in, so a record moved to another key or
 * version does not open.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CustosNode } from "../../src/api/server.js";
import { DecryptError, unwrap } from "../../src/crypto/envelope.js";
import { materialContext } from "../../src/keys/keyring.js";
import { initialisedNode, type TestNode } from "../helpers/node.js";

describe("key ring", () => {
  let t: TestNode;
  let node: CustosNode;
  const who = { principal: "test" };

  beforeAll(async () => {
    t = await initialisedNode({ destructionWaitSeconds: 3600 });
    node = t.node;
  });

  afterAll(async () => {
    await t?.close();
  });

  it("destroys a key only after the waiting period, and erases its material", async () => {
    await node.keys.create("doomed", null, who);
    const scheduled = await node.keys.scheduleDestruction("doomed", who);
    expect(scheduled.state).toBe("pending-destruction");
    const at = new Date(scheduled.deletionAt!);
    await node.keys.sweep(new Date(at.getTime() - 1000));
    expect((await node.store.getKey("doomed"))?.state).toBe("pending-destruction");
    await node.keys.sweep(new Date(at.getTime() + 1000));
    expect((await node.store.getKey("doomed"))?.state).toBe("destroyed");
    const versions = await node.store.getKeyVersions("doomed");
    expect(versions.every((v) => v.state === "destroyed" && v.sealedMaterial.length === 0)).toBe(true);
    await expect(node.keys.usable("doomed")).rejects.toThrow(/destroyed/);
    await expect(node.keys.update("doomed", { enabled: true }, who)).rejects.toThrow(/cannot be enabled/);
  });

  it("rotates a key when its rotation period has passed", async () => {
    await node.keys.create("rolling", 3600, who);
    await node.keys.sweep(new Date(Date.now() + 1800 * 1000));
    expect((await node.store.getKey("rolling"))?.latestVersion).toBe(1);
    await node.keys.sweep(new Date(Date.now() + 3601 * 1000));
    expect((await node.store.getKey("rolling"))?.latestVersion).toBe(2);
  });

  it("never destroys a key whose destruction was cancelled while a sweep ran", async () => {
    const later = new Date(Date.now() + 7200 * 1000);
    for (const name of ["race-a", "race-b", "race-c"]) {
      await node.keys.create(name, null, who);
      await node.keys.scheduleDestruction(name, who);
    }
    const sweeping = node.keys.sweep(later);
    const cancel = await Promise.allSettled([node.keys.cancelDestruction("race-c", who)]);
    await sweeping;
    const state = (await node.store.getKey("race-c"))?.state;
    // Either the cancel won (and the key lives) or the sweep did (and the cancel was refused).
    if (cancel[0]?.status === "fulfilled") expect(state).toBe("disabled");
    else expect(state).toBe("destroyed");
    expect((await node.store.getKey("race-a"))?.state).toBe("destroyed");
  });

  it("rotates a due key once even when sweeps overlap", async () => {
    await node.keys.create("once", 3600, who);
    const later = new Date(Date.now() + 3601 * 1000);
    await Promise.all([node.keys.sweep(later), node.keys.sweep(later), node.keys.sweep(later)]);
    expect((await node.store.getKey("once"))?.latestVersion).toBe(2);
  });

  it("binds key name and version into the sealed material", async () => {
    await node.keys.create("bound", null, who);
    const [v1] = await node.store.getKeyVersions("bound");
    const root = node.seal.root();
    expect(await unwrap(root, v1!.sealedMaterial, materialContext("bound", 1))).toHaveLength(32);
    await expect(unwrap(root, v1!.sealedMaterial, materialContext("other", 1))).rejects.toBeInstanceOf(
      DecryptError,
    );
    await expect(unwrap(root, v1!.sealedMaterial, materialContext("bound", 2))).rejects.toBeInstanceOf(
      DecryptError,
    );
  });

  it("drops every loaded key when sealed", async () => {
    const { handle } = await node.keys.usable("bound");
    await node.seal.seal("test");
    await expect(handle.prf(new Uint8Array(1))).rejects.toThrow();
    await expect(node.keys.usable("bound")).rejects.toThrow(/sealed/);
  });
});
