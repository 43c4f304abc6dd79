/**
 * The transport seam and the client's retry. SwtpmTransport is tested against
 * a real swtpm (stopped, restarted) and against bare TCP servers that
 * misbehave in ways swtpm cannot be made to (never answering, answering
 * nonsense). The retry logic is tested with a fake Transport that answers
 * TPM_RC_RETRY: swtpm does not return it on demand, and what is under test
 * is our loop, not the TPM.
 */
import { createServer, type Server, type Socket } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TpmClient } from "../../src/tpm/client.js";
import { createPrimary } from "../../src/tpm/commands/create-primary.js";
import { flushContext } from "../../src/tpm/commands/flush-context.js";
import { getRandom } from "../../src/tpm/commands/get-random.js";
import { TPM_CC, TPM_RH, TPMA_SESSION } from "../../src/tpm/constants.js";
import { TpmReader, TpmWriter } from "../../src/tpm/marshal.js";
import { TpmError, TpmUnavailableError } from "../../src/tpm/rc.js";
import { AuthSession } from "../../src/tpm/session.js";
import { AES128_CFB } from "../../src/tpm/structures.js";
import {
  DeviceTransport,
  SwtpmTransport,
  type Transport,
  transportFromAddress,
} from "../../src/tpm/transport.js";
import { type Swtpm, skipSwtpm, startSwtpm } from "../helpers/swtpm.js";
import { connect, hex, hmacKeyTemplate, password } from "./support.js";

/** A bare TPM response: tag NO_SESSIONS, size, code, then `params`. */
function response(rc: number, params: Uint8Array = new Uint8Array(0)): Uint8Array {
  return new TpmWriter()
    .u16(0x8001)
    .u32(10 + params.length)
    .u32(rc)
    .bytes(params)
    .finish();
}

const randomReply = (bytes: number[]) =>
  response(0, new TpmWriter().tpm2b(Uint8Array.from(bytes), 64, "randomBytes").finish());

/** A Transport that answers from a script and records what it was sent. */
function scripted(replies: Uint8Array[]): Transport & { sent: Uint8Array[] } {
  const sent: Uint8Array[] = [];
  return {
    sent,
    async send(command) {
      sent.push(command.slice());
      const r = replies.length > 1 ? replies.shift() : replies[0];
      if (!r) throw new Error("script exhausted");
      return r;
    },
    close: async () => {},
  };
}

describe("TpmClient retry (fake Transport: a unit test of our loop)", () => {
  it("retries a TPM_RC_RETRY (0x922) answer and returns the next one", async () => {
    const t = scripted([response(0x922), randomReply([1, 2, 3, 4])]);
    const client = new TpmClient(t);
    expect(hex(await getRandom(client, 4))).toBe("01020304");
    expect(t.sent).toHaveLength(2);
  });

  it("retries TESTING and YIELDED too", async () => {
    const t = scripted([response(0x90a), response(0x908), randomReply([9])]);
    expect(hex(await getRandom(new TpmClient(t), 1))).toBe("09");
    expect(t.sent).toHaveLength(3);
  });

  it("gives up after `retries` attempts with the retryable TpmError", async () => {
    const t = scripted([response(0x922)]);
    const err = await getRandom(new TpmClient(t, { retries: 3 }), 4).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TpmError);
    expect((err as TpmError).is("RETRY")).toBe(true);
    expect((err as TpmError).retryable).toBe(true);
    expect(t.sent).toHaveLength(3);
  });

  it("does not retry OBJECT_MEMORY (0x902) or an error", async () => {
    for (const rc of [0x902, 0x9a2, 0x101]) {
      const t = scripted([response(rc), randomReply([1])]);
      await expect(getRandom(new TpmClient(t), 1)).rejects.toBeInstanceOf(TpmError);
      expect(t.sent).toHaveLength(1);
    }
  });

  it("rebuilds a retried command with a fresh nonceCaller (a session command is never resent byte for byte)", async () => {
    const t = scripted([response(0x922), response(0x922), response(0x902)]);
    const session = new AuthSession(
      0x0200_0000,
      "hmac",
      new Uint8Array(32).fill(1),
      new Uint8Array(32).fill(2),
      AES128_CFB,
    );
    const client = new TpmClient(t);
    await expect(
      client.exec({
        code: TPM_CC.GetRandom,
        handles: [],
        auths: [{ kind: "session", session, authValue: new Uint8Array(0) }],
        params: new TpmWriter().u16(8).finish(),
        responseHandles: 0,
      }),
    ).rejects.toThrow(/OBJECT_MEMORY/);
    expect(t.sent).toHaveLength(3);
    const nonces = t.sent.map((c) => {
      const r = new TpmReader(c, 10 + 4 + 4); // header, authorizationSize, session handle
      return hex(r.tpm2b(64, "nonceCaller"));
    });
    expect(new Set(nonces).size).toBe(3);
    expect(t.sent[0]?.[10 + 4 + 4 + 2 + 32]).toBe(TPMA_SESSION.continueSession);
  });

  it("shows each attempt to the tap", async () => {
    const seen: string[] = [];
    const t = scripted([response(0x922), randomReply([7])]);
    await getRandom(new TpmClient(t, { tap: (_c, r) => seen.push(hex(r.subarray(6, 10))) }), 1);
    expect(seen).toEqual(["00000922", "00000000"]);
  });
});

describe("TpmClient sections (fake Transport)", () => {
  it("an exclusive section's executor cannot be used after the section ends", async () => {
    const client = new TpmClient(scripted([randomReply([1])]));
    let leaked: Parameters<Parameters<TpmClient["exclusive"]>[0]>[0] | undefined;
    await client.exclusive(async (x) => {
      leaked = x;
      await getRandom(x, 1);
    });
    await expect(getRandom(leaked as NonNullable<typeof leaked>, 1)).rejects.toThrow(
      /after its exclusive section ended/,
    );
  });

  it("a failed section does not block the queue, and close() waits for queued commands", async () => {
    const t = scripted([randomReply([1])]);
    const client = new TpmClient(t);
    await expect(client.exclusive(async () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    const pending = getRandom(client, 1);
    await client.close();
    expect(hex(await pending)).toBe("01");
    expect(t.sent).toHaveLength(1);
  });
});

describe("transportFromAddress", () => {
  it("parses swtpm:HOST:PORT and device:/PATH and refuses anything else", () => {
    expect(transportFromAddress("swtpm:127.0.0.1:2321")).toBeInstanceOf(SwtpmTransport);
    expect(String(transportFromAddress("swtpm:localhost:2321"))).toBe("swtpm:localhost:2321");
    expect(transportFromAddress("device:/dev/tpmrm0")).toBeInstanceOf(DeviceTransport);
    for (const bad of [
      "",
      "swtpm:127.0.0.1",
      "swtpm::2321",
      "tcp:127.0.0.1:2321",
      "device:relative",
      "swtpm:h:123456",
    ]) {
      expect(() => transportFromAddress(bad)).toThrow(RangeError);
    }
    expect(() => transportFromAddress("swtpm:h:0")).toThrow(RangeError);
    expect(() => new SwtpmTransport({ host: "h", port: 70000 })).toThrow(RangeError);
  });

  it("DeviceTransport reports a missing device as TpmUnavailableError", async () => {
    const t = new DeviceTransport("/nonexistent/tpmrm0");
    await expect(t.send(response(0))).rejects.toBeInstanceOf(TpmUnavailableError);
  });
});

describe("SwtpmTransport against servers that misbehave", () => {
  const servers: Server[] = [];
  const sockets: Socket[] = [];

  async function serve(onConnection: (s: Socket) => void): Promise<number> {
    const server = createServer((sock) => {
      sockets.push(sock);
      onConnection(sock);
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return (server.address() as { port: number }).port;
  }

  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  it("a server that never answers: TpmUnavailableError after timeoutMs, not a hang", async () => {
    const port = await serve(() => {});
    const t = new SwtpmTransport({ host: "127.0.0.1", port, timeoutMs: 200 });
    const started = Date.now();
    await expect(t.send(response(0))).rejects.toThrow(/no reply within 200 ms/);
    expect(Date.now() - started).toBeLessThan(2000);
    await t.close();
  });

  it("a server that closes the connection mid-reply: TpmUnavailableError", async () => {
    const port = await serve((sock) => sock.once("data", () => sock.end(Buffer.from([0, 0, 0, 20, 0x80]))));
    const t = new SwtpmTransport({ host: "127.0.0.1", port, timeoutMs: 2000 });
    await expect(t.send(response(0))).rejects.toThrow(TpmUnavailableError);
    await t.close();
  });

  it("a reply whose length is not a TPM response's: TpmUnavailableError", async () => {
    const port = await serve((sock) => sock.once("data", () => sock.write(Buffer.from([0xff, 0, 0, 0]))));
    const t = new SwtpmTransport({ host: "127.0.0.1", port, timeoutMs: 2000 });
    await expect(t.send(response(0))).rejects.toThrow(/is not a TPM response/);
    await t.close();
  });

  it("frames a command as mssim TPM_SEND_COMMAND and returns the response without its length and trailer", async () => {
    let frame: Buffer | undefined;
    const reply = randomReply([5, 6]);
    const port = await serve((sock) =>
      sock.once("data", (d) => {
        frame = d;
        const out = Buffer.alloc(4 + reply.length + 4);
        out.writeUInt32BE(reply.length, 0);
        out.set(reply, 4);
        sock.write(out);
      }),
    );
    const t = new SwtpmTransport({ host: "127.0.0.1", port, timeoutMs: 2000 });
    const cmd = Uint8Array.of(0x80, 0x01, 0, 0, 0, 12, 0, 0, 1, 0x7b, 0, 2);
    expect(hex(await t.send(cmd))).toBe(hex(reply));
    expect(frame?.toString("hex")).toBe(["00000008", "00", "0000000c", hex(cmd)].join(""));
    await t.close();
  });

  it("one command at a time: a second concurrent send is refused, not interleaved", async () => {
    const reply = randomReply([1]);
    const port = await serve((sock) =>
      sock.on("data", () => {
        const out = Buffer.alloc(4 + reply.length + 4);
        out.writeUInt32BE(reply.length, 0);
        out.set(reply, 4);
        setTimeout(() => sock.write(out), 20);
      }),
    );
    const t = new SwtpmTransport({ host: "127.0.0.1", port, timeoutMs: 1000 });
    // Before the connection exists, and again once it does.
    for (let round = 0; round < 2; round++) {
      const first = t.send(response(0));
      const second = t.send(response(0));
      await expect(second).rejects.toThrow(/one command at a time/);
      expect(hex(await first)).toBe(hex(reply));
    }
    await t.close();
  });
});

describe.skipIf(skipSwtpm)("SwtpmTransport against a swtpm that stops and restarts", () => {
  let sw: Swtpm;

  beforeAll(async () => {
    sw = await startSwtpm();
  });
  afterAll(async () => {
    await sw?.destroy();
  });

  it("a stopped swtpm is TpmUnavailableError at once; after restart() the same client reconnects", async () => {
    const client = connect(sw.port, undefined, 1000);
    try {
      expect(await getRandom(client, 8)).toHaveLength(8);
      const before = await createPrimary(client, {
        hierarchy: TPM_RH.NULL,
        auth: password(),
        template: { ...hmacKeyTemplate(), objectAttributes: hmacKeyTemplate().objectAttributes | 0x20 },
      });
      await sw.stop();
      const started = Date.now();
      const err = await getRandom(client, 8).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TpmUnavailableError);
      expect(Date.now() - started).toBeLessThan(1500);
      // Still down: still an error, still bounded.
      await expect(getRandom(client, 8)).rejects.toBeInstanceOf(TpmUnavailableError);

      await sw.restart();
      expect(await getRandom(client, 8)).toHaveLength(8);
      // A restart is a TPM reset: the transient object from before is gone.
      const gone = await flushContext(client, before.handle).catch((e: unknown) => e);
      expect(gone).toBeInstanceOf(TpmError);
      expect((gone as TpmError).is("HANDLE")).toBe(true);
    } finally {
      await client.close();
    }
  });
});
