/**
 * The `custos` command. Conventions of the `vault` CLI: the server address in
 * CUSTOS_ADDR, the token in CUSTOS_TOKEN, subcommands per area. Exit codes
 * (README, "CLI exit codes"): 0 success, 1 refused by the server, 2 bad usage
 * or local input, 3 server unreachable or failing, 4 sealed. Errors go to
 * stderr as one line saying what went wrong and what to do next.
 */
import { Command, CommanderError } from "commander";
import { CliError, Client, EXIT } from "./client.js";
import { approvalCommands } from "./commands/approvals.js";
import { auditCommands } from "./commands/audit.js";
import { custodyCommands } from "./commands/custody.js";
import { keyCommands } from "./commands/keys.js";
import { policyCommands } from "./commands/policy.js";
import { rekeyCommands } from "./commands/rekey.js";
import { serverCommand } from "./commands/server.js";
import { shareNodeCommand } from "./commands/share-node.js";
import { tokenCommands } from "./commands/tokens.js";
import { tpmCommands } from "./commands/tpm.js";
import { witnessCommand } from "./commands/witness.js";

const program = new Command("custos")
  .description("key custody for electronic health records")
  .option("--addr <url>", "server address (default: CUSTOS_ADDR or http://127.0.0.1:8200)")
  .option("--token <token>", "access token (default: CUSTOS_TOKEN)")
  .exitOverride()
  .showHelpAfterError("(custos --help lists the commands)");

const client = () => {
  const { addr, token } = program.opts<{ addr?: string; token?: string }>();
  return new Client({ addr, token });
};

serverCommand(program);
shareNodeCommand(program);
custodyCommands(program, client);
tpmCommands(program.commands.find((c) => c.name() === "operator") as Command, client);
rekeyCommands(program.commands.find((c) => c.name() === "operator") as Command, client);
keyCommands(program, client);
tokenCommands(program, client);
auditCommands(program, client);
approvalCommands(program, client);
policyCommands(program);
witnessCommand(program, () => program.opts<{ token?: string }>().token ?? process.env.CUSTOS_TOKEN);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  } else if (err instanceof CliError) {
    const detail = err.details && Object.keys(err.details).length ? ` ${JSON.stringify(err.details)}` : "";
    process.stderr.write(`custos: ${err.message}${err.code ? ` [${err.code}]` : ""}${detail}\n`);
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(`custos: unexpected error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = EXIT.unavailable;
  }
}
