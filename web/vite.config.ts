import { defineConfig } from 'vitest/config';

// The build goes where the ASP.NET Core server serves static files from (not committed; built by
// the server project's BuildWebUi target or `npm run build`).
export default defineConfig({
  base: './',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: '../src/NextToken.Server/wwwroot',
    emptyOutDir: true,
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 1000,
  },
  test: { include: ['test/**/*.test.ts'] },
});
