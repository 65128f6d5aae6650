// Loads @biscuit-auth/biscuit-wasm in Node, with no bundler.
//
// The package is built for bundlers (wasm-pack `--target bundler`): its entry
// point imports `biscuit_bg.wasm` as an ES module. Node before 24.5 imports a
// .wasm file only with `--experimental-wasm-modules`, the flag the package's
// README names. When the import fails for want of it, this module runs the
// same command again with the flag, passing standard input, output and the
// exit status through.
//
// The package also prints "biscuit-wasm loading" on standard output when it
// starts; that line is dropped here, so that a script's standard output holds
// only its result.

import { spawnSync } from "node:child_process";

const FLAG = "--experimental-wasm-modules";

async function quietImport() {
  const log = console.log;
  console.log = () => {};
  try {
    return await import("@biscuit-auth/biscuit-wasm");
  } finally {
    console.log = log;
  }
}

async function load() {
  try {
    return await quietImport();
  } catch (e) {
    const needsFlag = e?.code === "ERR_UNKNOWN_FILE_EXTENSION" && !process.execArgv.includes(FLAG);
    if (!needsFlag) {
      const why = e?.code === "ERR_MODULE_NOT_FOUND"
        ? "@biscuit-auth/biscuit-wasm is not installed (run `npm ci --prefix examples/js`)"
        : `cannot load @biscuit-auth/biscuit-wasm: ${e?.message ?? e}`;
      process.stderr.write(`${why.split("\n")[0]}\n`);
      process.exit(1);
    }
    // Without the flag's warning on standard error (Node before 20.11 has
    // no --disable-warning: there, no warnings at all).
    const quiet = process.allowedNodeEnvironmentFlags.has("--disable-warning")
      ? "--disable-warning=ExperimentalWarning"
      : "--no-warnings";
    const flags = [FLAG, quiet];
    const run = spawnSync(
      process.execPath,
      [...flags, ...process.execArgv, ...process.argv.slice(1)],
      { stdio: "inherit" },
    );
    if (run.error) {
      process.stderr.write(`cannot run ${process.execPath} ${FLAG}: ${run.error.message}\n`);
      process.exit(1);
    }
    process.exit(run.status ?? 1);
  }
}

export const biscuit = await load();
