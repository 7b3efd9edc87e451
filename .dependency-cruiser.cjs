// Import rules (docs/ARCHITECTURE.md, "Layers"). scripts/check-boundaries.mjs runs them in `npm test`
// and adds the one rule dependency-cruiser does not phrase: no cycle between folders of src/.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'dispatcher-is-self-contained',
      comment: 'The root program on the backup host: only src/protocol and Node built-ins, nothing of the portal.',
      severity: 'error',
      from: { path: '^src/dispatcher/' },
      to: { pathNot: ['^src/dispatcher/', '^src/protocol/'], dependencyTypesNot: ['core'] },
    },
    {
      name: 'protocol-imports-nothing',
      comment: 'Shared by both sides: Node built-ins only.',
      severity: 'error',
      from: { path: '^src/protocol/' },
      to: { pathNot: '^src/protocol/', dependencyTypesNot: ['core'] },
    },
    {
      name: 'no-importing-routes',
      comment: 'Routes are leaves: only app.ts registers them. Shared code lives in a service or a view helper.',
      severity: 'error',
      from: { pathNot: '^src/app[.]ts$' },
      to: { path: '[.]routes[.]ts$' },
    },
    {
      name: 'no-route-imports-a-job',
      comment: 'A page needs a constant or a rule, not a job: shared values live in a policy or repository module.',
      severity: 'error',
      from: { path: '[.]routes[.]ts$' },
      to: { path: '([.]worker|-poller|link-mailer|event-sync|[.]job)[.]ts$|^src/jobs/' },
    },
    {
      name: 'users-core-below-capabilities',
      comment: 'The user record, sessions, the audit trail and shared formatting: imported by the capabilities, importing none.',
      severity: 'error',
      from: { path: '^src/users/' },
      to: { path: '^src/(auth|accounts|two-factor|devices|archives|operator|mail|first-look|doctor|cli)/' },
    },
    {
      name: 'migrations-and-db-import-no-capability',
      comment: 'The database layer knows no capability; only the Database type gathers their table types.',
      severity: 'error',
      from: { path: '^src/db/' },
      to: {
        path: '^src/(auth|accounts|two-factor|devices|archives|operator|mail|first-look|doctor|cli|users)/',
        dependencyTypesNot: ['type-only'],
      },
    },
    {
      name: 'no-module-cycles',
      severity: 'error',
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
