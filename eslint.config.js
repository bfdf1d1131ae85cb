// @ts-check
// Lint rules for Tideline. Type-aware: TypeScript files are checked through the
// project service (tsconfig.json); plain JS files (this file, scripts/*.mjs) are
// linted without type information.
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/**
 * Import direction (STYLE.md): shared/ imports neither client/ nor server/, and
 * client/ and server/ never import each other.
 * @param {string} message
 * @param {string[]} forbidden top-level directories the files may not import
 */
function forbidImportsOf(message, forbidden) {
  return {
    'no-restricted-imports': ['error', { patterns: [{ regex: `(^|/)(${forbidden.join('|')})(/|$)`, message }] }],
  };
}

export default defineConfig(
  globalIgnores(['node_modules/', 'dist/', 'lib/', 'data/', 'bench/results/', 'test-results/', 'playwright-report/']),

  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,

  {
    languageOptions: {
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    linterOptions: {
      reportUnusedDisableDirectives: 'error',
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': [
        'error',
        { prefer: 'type-imports', fixStyle: 'separate-type-imports' },
      ],
      // tsc (noUnusedLocals/noUnusedParameters) also reports these; keep the
      // same `_` escape hatch for deliberately unused names.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' },
      ],
      // An `async` method without `await` is the normal way to implement a
      // Promise-returning interface (in-memory Store doubles, adapters).
      '@typescript-eslint/require-await': 'off',
    },
  },

  {
    files: ['**/*.{js,mjs,cjs}'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: {
      globals: globals.node,
    },
  },

  {
    files: ['shared/**'],
    rules: forbidImportsOf('shared/ must not import client/ or server/.', ['client', 'server']),
  },
  {
    files: ['client/**'],
    rules: forbidImportsOf('client/ must not import server/; share code through shared/.', ['server']),
  },
  {
    // The storefront is a Tideline consumer (STYLE.md rule 11): it imports the
    // public entry points by their package names (aliased to the sources, see
    // sourceAliases in vite.config.ts) and its own schema in shared/apps/, nothing
    // else from client/, shared/ or server/.
    files: ['client/app/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^\\.\\.(/|$)(?!\\.\\./shared/apps/)',
              message:
                'client/app is a Tideline consumer: import tideline/client, tideline/schema or tideline/react, not internal modules (its own schema lives in shared/apps/).',
            },
            {
              regex: '^tideline/(?!(client|schema|react)$)',
              message: 'client/app runs in browsers: only tideline/client, tideline/schema and tideline/react.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['server/**'],
    rules: forbidImportsOf('server/ must not import client/; share code through shared/.', ['client']),
  },
);
