import { defineConfig } from 'vitest/config';

// `fast` is everything that runs in-process against the shared Postgres and Redis (also run
// under Node 24 in CI); `slow` spawns real `parley` processes with their own embedded
// Postgres; `client` is the web client's unit tests (DOM from happy-dom); `e2e` drives
// Debian's Chromium through the built client against in-process homeservers.
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
      {
        // The app's Vite config (its Vue plugin), so tests can mount single-file components.
        extends: './client-vue/vite.config.ts',
        test: {
          name: 'client',
          root: './client-vue',
          include: ['test/**/*.test.ts'],
          environment: 'happy-dom',
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['client-vue/e2e/**/*.e2e.test.ts', 'admin/e2e/**/*.e2e.test.ts'],
          testTimeout: 180_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
