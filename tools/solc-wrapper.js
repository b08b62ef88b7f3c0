#!/usr/bin/env node
// A drop-in for the native `solc` binary, backed by npm's solc-js, for py-solc-x and ape-solidity.
// Answers `--version` and `--standard-json` (input on stdin) exactly as native solc does;
// path flags (--allow-paths, --base-path, --include-path) are accepted and handled through an
// import callback rooted at the working directory and the given paths.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const args = process.argv.slice(2);
if (process.env.SOLC_WRAPPER_DEBUG) fs.appendFileSync(process.env.SOLC_WRAPPER_DEBUG, JSON.stringify({cwd: process.cwd(), args}) + "\n");
const roots = [];
for (let i = 0; i < args.length; i++) {
  if (["--allow-paths", "--base-path", "--include-path"].includes(args[i]) && args[i + 1]) {
    for (const p of args[i + 1].split(",")) if (p) roots.push(path.resolve(p));
    i++;
  }
}
roots.push(process.cwd());

function finish(text, code) {
  // Exit only after stdout has flushed, or large outputs are cut.
  process.stdout.write(text, () => process.exit(code));
}

if (args.includes("--version")) {
  const v = solc.version(); // e.g. 0.8.28+commit.7893614a.Emscripten.clang
  finish(`solc, the solidity compiler commandline interface\nVersion: ${v}\n`, 0);
} else if (args.includes("--standard-json")) {
  const input = fs.readFileSync(0, "utf8");
  const findImports = (importPath) => {
    const candidates = path.isAbsolute(importPath) ? [importPath] : roots.map((r) => path.join(r, importPath));
    for (const c of candidates) {
      if (fs.existsSync(c)) return { contents: fs.readFileSync(c, "utf8") };
    }
    return { error: `File not found: ${importPath}` };
  };
  finish(solc.compile(input, { import: findImports }), 0);
} else {
  process.stderr.write("solc-wrapper: only --version and --standard-json are supported\n");
  process.exit(2);
}
