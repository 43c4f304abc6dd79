/**
 * How `custos server` reaches its share nodes, from its flags: the CA their
 * certificates chain to (`--share-node-ca`), this node's client certificate
 * for share nodes that require mutual TLS (`--share-node-client-cert/-key`),
 * and whether plain http:// off loopback is accepted
 * (`--insecure-share-node-http`). One link serves both the threshold share
 * nodes (`--share-node`) and share-node repositories (`--repositories`), and
 * every configured URL is checked here, so a node configured to send partial
 * requests or a repository token in clear across a network refuses to start.
 */
import { readFileSync } from "node:fs";
import { ShareNodeLink } from "../threshold/share-node-link.js";
import { CliError, EXIT } from "./client.js";

export interface ShareNodeFlags {
  shareNodeCa?: string;
  shareNodeClientCert?: string;
  shareNodeClientKey?: string;
  insecureShareNodeHttp?: boolean;
}

export function shareNodeLink(opts: ShareNodeFlags): ShareNodeLink {
  if ((opts.shareNodeClientCert === undefined) !== (opts.shareNodeClientKey === undefined))
    throw new CliError("give --share-node-client-cert and --share-node-client-key together", EXIT.usage);
  const read = (flag: string, file: string | undefined) => {
    if (file === undefined) return undefined;
    try {
      return readFileSync(file);
    } catch (err) {
      throw new CliError(`${flag} ${file}: ${(err as Error).message}`, EXIT.usage);
    }
  };
  try {
    return new ShareNodeLink({
      tls: {
        ca: read("--share-node-ca", opts.shareNodeCa),
        cert: read("--share-node-client-cert", opts.shareNodeClientCert),
        key: read("--share-node-client-key", opts.shareNodeClientKey),
      },
      allowInsecureHttp: opts.insecureShareNodeHttp === true,
    });
  } catch (err) {
    // The link builds its TLS context now: a PEM that does not parse, or a key that does not match, stops here.
    throw new CliError(`share-node TLS options: ${(err as Error).message}`, EXIT.usage);
  }
}
