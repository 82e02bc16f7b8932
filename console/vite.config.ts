// The console's build: `vite build console` (run by `npm run build` and at `npm ci`),
// into dist/console, which the controller serves at /ui/.
import { defineConfig } from 'vite';

export default defineConfig({
  root: 'console',
  base: '/ui/',
  build: { outDir: '../dist/console', emptyOutDir: true, chunkSizeWarningLimit: 1024 },
});
