import {configDefaults, defineConfig} from 'vitest/config'

// CHARGE_OPS_TEST_EXCLUDE: comma-separated globs left out of every project, to leave a folder out by
// hand (e.g. test/docker on a machine without a Docker engine). vitest's CLI `--exclude` does not
// reach a project that sets its own `exclude` (the services project does).
const extraExclude = (process.env.CHARGE_OPS_TEST_EXCLUDE ?? '')
  .split(',')
  .map((g) => g.trim())
  .filter(Boolean)

// Two projects over test/**/*.test.ts:
//   unit      test/unit/**: pure logic, no services, so no global setup;
//   services  everything else (integration, e2e …): globalSetup starts ONE shared
//             PostgreSQL cluster and ONE shared Chroma server for the run
//             (test/support/global-setup.ts; tests reach them via test/support/shared.ts).
// vitest runs a project's globalSetup only when that project has test files in the run,
// so `vitest run test/unit` starts no server.
export default defineConfig({
  test: {
    // no root `include`: a project that `extends` the root would concatenate it with its own
    pool: 'forks',
    maxWorkers: 2, // CI machines have 2 cores
    // hang guards, not performance budgets (those live in bench/): multi-step e2e tests against
    // real servers take 40 s+ on a loaded 2-core machine, so the guard sits well above that
    testTimeout: 180_000,
    hookTimeout: 240_000,
    teardownTimeout: 30_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...extraExclude],
        },
      },
      {
        extends: true,
        test: {
          name: 'services',
          include: ['test/**/*.test.ts'],
          exclude: ['**/node_modules/**', 'test/unit/**', ...extraExclude],
          globalSetup: ['test/support/global-setup.ts'],
        },
      },
    ],
  },
})
