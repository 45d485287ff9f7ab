import { defineConfig } from 'vitest/config';

// Two projects: `fast` is everything that runs in-process against the shared Postgres and
// Redis (also run under Node 24 in CI); `slow` spawns real `parley` processes with their
// own embedded Postgres.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'fast',
          include: ['{schemas,homeserver,sdk,federation}/test/**/*.test.ts'],
          exclude: ['**/*.slow.test.ts', '**/node_modules/**'],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'slow',
          include: ['{schemas,homeserver,sdk,federation}/test/**/*.slow.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
