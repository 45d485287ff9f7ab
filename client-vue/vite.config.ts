import vue from '@vitejs/plugin-vue';
import { defineConfig } from 'vite';

// The homeserver serves dist/ at `/` (homeserver/src/http/static.ts); `pnpm dev` proxies the
// API to a homeserver on :8008 so the page and the API share an origin, as in production.
export default defineConfig({
  plugins: [vue()],
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: true,
    chunkSizeWarningLimit: 800,
  },
  server: {
    proxy: {
      '/api': { target: 'http://127.0.0.1:8008', ws: true },
      '/health': 'http://127.0.0.1:8008',
    },
  },
});
