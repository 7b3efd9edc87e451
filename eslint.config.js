// Lint rules that hold the code's habits (docs/ARCHITECTURE.md, "Rules held by commands").
// The type-aware promise rules matter most here: hooks, loops and stoppers pass promises around.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'var/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { project: './tsconfig.test.json', tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/return-await': ['error', 'in-try-catch'],
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/only-throw-error': 'error',
      '@typescript-eslint/prefer-promise-reject-errors': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true }],
      // Rejecting control characters in input is deliberate wherever a pattern names them.
      'no-control-regex': 'off',
    },
  },
  // The data-access rule (docs/ARCHITECTURE.md): routes, plugins, hooks and commands call a function
  // that takes (db: Db, ...); they never build a query or open a transaction themselves.
  {
    files: ['src/**/*.routes.ts', 'src/**/*.plugin.ts', 'src/**/*.hooks.ts', 'src/cli/**/*.ts', 'src/app.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: 'CallExpression[callee.property.name=/^(selectFrom|insertInto|updateTable|deleteFrom|transaction|executeQuery)$/]',
          message: 'No queries here: call a repository or service function that takes (db: Db, ...).',
        },
        { selector: "TaggedTemplateExpression[tag.name='sql']", message: 'No SQL here: call a repository or service function.' },
      ],
    },
  },
  // Tests read the dispatcher's JSON answers as they come.
  { files: ['test/**/*.ts'], rules: { '@typescript-eslint/no-explicit-any': 'off' } },
  { files: ['bench/**/*.mjs', 'scripts/**/*.mjs', '*.config.js', '*.cjs'], languageOptions: { globals: globals.node } },
  { files: ['public/**/*.js'], languageOptions: { globals: globals.browser } },
);
