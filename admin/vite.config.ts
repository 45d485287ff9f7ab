import vue from '@vitejs/plugin-vue';
import { defineConfig } from 'vite';

// The homeserver serves dist/ at `/admin/` (homeserver/src/http/static-admin.ts); `pnpm dev`
// proxies the API to a homeserver on :8008 so the console and the API share an origin.
export default defineConfig({
  plugins: [vue()],
  base: '/admin/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: true,
    chunkSizeWarningLimit: 800,
  },
  server: {
    proxy: {
      '/api': 'http://127.0.0.1:8008',
      '/health': 'http://127.0.0.1:8008',
    },
  },
});
