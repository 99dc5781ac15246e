/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// The supervisor serves this build at `/`: hashed files under /assets/ are cached for long,
// index.html is not. The output directory is gitignored and shipped in the Python package.
export default defineConfig({
  plugins: [svelte()],
  base: '/',
  build: {
    outDir: '../src/corral/supervisor/webui_dist',
    emptyOutDir: true,
    target: 'es2022',
    assetsDir: 'assets',
    chunkSizeWarningLimit: 400,
    reportCompressedSize: true,
  },
  server: {
    // `npm run dev` against a supervisor on :8080 (CORRAL_URL to change it).
    proxy: Object.fromEntries(
      ['/api', '/v1', '/admin', '/health'].map((p) => [
        p,
        { target: process.env.CORRAL_URL ?? 'http://127.0.0.1:8080', changeOrigin: false },
      ]),
    ),
  },
  test: {
    include: ['src/**/*.test.ts', 'tests/**/*.test.ts'],
    environment: 'node',
  },
});
