// Bundles the SPA with esbuild: node build.mjs OUTDIR -> OUTDIR/app.js.
// A development build on purpose: React StrictMode double-mounts only there (spa-double-redemption).
import { build } from 'esbuild';

const outdir = process.argv[2] || 'dist';
await build({
  entryPoints: ['src/main.jsx'],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  jsx: 'automatic',
  define: { 'process.env.NODE_ENV': '"development"' },
  minify: true, // smaller captures; StrictMode's double mount does not depend on readable code
  outfile: `${outdir}/app.js`,
  logLevel: 'warning',
});
console.log(`SPA BUILT ${outdir}/app.js`);
