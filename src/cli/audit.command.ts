// `archway audit verify`: checks that no audit row was changed, removed or reordered since it was written.
import { verifyAuditChain } from '../users/audit-verify.js';
import { UsageError, type Command } from './command.js';
import { withDatabase } from './with-database.js';

export const auditCommand: Command = {
  name: 'audit',
  summary: 'Verify the audit trail (hash chain).',
  usage: `Usage:
  archway audit verify

verify  Walks the audit trail's hash chain from its start (or where the retention purge left it)
        to its newest row, recomputing each row's hash. Prints the number of rows and the head
        hash and exits 0 when every row is as written; names the first row that is not (changed,
        missing, or out of place) and exits 1. Keep the head hash somewhere else (a ticket, a
        log server): a later run whose chain does not pass through it shows a rewritten trail.`,
  options: {},
  maxPositionals: 1,
  async run({ positionals }) {
    const [action] = positionals;
    if (action !== 'verify') {
      throw new UsageError(
        action === undefined ? 'Say what to do: archway audit verify.' : `Unknown action "${action}" for "archway audit": use verify.`,
      );
    }
    return withDatabase(async ({ db }) => {
      const report = await verifyAuditChain(db);
      if (report.intact) {
        const from = report.anchorSeq === 0 ? 'from its start' : `from row ${report.anchorSeq + 1} (older rows were purged)`;
        process.stdout.write(`Audit trail intact: ${report.rows} rows ${from}; head hash ${report.headHash}\n`);
        return 0;
      }
      const r = report.row;
      const where =
        r.id === null
          ? `row ${r.chainSeq} of the chain`
          : `row ${r.chainSeq} of the chain (id ${r.id}, ${r.at?.toISOString()}, ${r.action})`;
      process.stdout.write(`Audit trail broken at ${where}: ${report.problem}.\n${report.rows} rows before it are intact.\n`);
      return 1;
    });
  },
};
