#!/usr/bin/env node
// The `archway` command line: finds the command, parses its flags strictly, and maps failures to exit codes.
import { parseArgs } from 'node:util';
import { UsageError, type Command } from './cli/command.js';
import { migrateCommand } from './cli/migrate.command.js';
import { serveCommand } from './cli/serve.command.js';
import { usersCommand } from './cli/users.command.js';
import { backupHostCommand } from './cli/backup-host.command.js';
import { keysCommand } from './cli/keys.command.js';
import { doctorCommand } from './cli/doctor.command.js';
import { paymentsCommand } from './cli/payments.command.js';
import { auditCommand } from './cli/audit.command.js';
import { ConfigError } from './config.js';

const COMMANDS: Command[] = [
  serveCommand,
  migrateCommand,
  usersCommand,
  paymentsCommand,
  auditCommand,
  keysCommand,
  backupHostCommand,
  doctorCommand,
];

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `Usage: archway <command> [options]

Archway lets a hosting provider's customers reach their backups safely.

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Run "archway <command> --help" for a command's options. Settings come from ARCHWAY_* environment
variables; see .env.example.
`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(overview());
    return name === undefined ? 64 : 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (command === undefined) throw new UsageError(`Unknown command "${name}". Commands: ${COMMANDS.map((c) => c.name).join(', ')}.`);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${command.usage}\n`);
    return 0;
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: rest, options: command.options, strict: true, allowPositionals: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (parsed.positionals.length > (command.maxPositionals ?? 0)) {
    throw new UsageError(`Unexpected argument "${parsed.positionals[command.maxPositionals ?? 0]}" for "archway ${command.name}".`);
  }
  return command.run({ values: parsed.values as Record<string, string | boolean | undefined>, positionals: parsed.positionals });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`archway: ${error.message}\nRun "archway --help" for usage.\n`);
      process.exitCode = 64;
    } else if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exitCode = 78;
    } else {
      process.stderr.write(`archway: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 1;
    }
  },
);
