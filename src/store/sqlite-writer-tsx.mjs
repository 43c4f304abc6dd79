/**
 * Starts the TypeScript writer thread when custos runs from sources (tsx,
 * vitest). A worker does not inherit the parent's loader, and on Node 20
 * `execArgv: ["--import", "tsx"]` does not apply it to the worker's entry
 * module, so this plain-JS entry registers tsx first and then imports the
 * writer. Compiled builds start sqlite-writer.js directly and never load this.
 */
import { register } from "tsx/esm/api";

register();
await import(new URL("./sqlite-writer.ts", import.meta.url).href);
