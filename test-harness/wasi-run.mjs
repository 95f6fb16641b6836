// Runs a wasm32-wasip1 test binary (libtest harness included) inside Node's
// V8 — the same engine as Envoy's wasm runtime — so engine tests also
// exercise 32-bit and wasm-only behaviour. Usage: node wasi-run.mjs FILE [args…]
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import process from 'node:process';

const [file, ...args] = process.argv.slice(2);
const wasi = new WASI({
  version: 'preview1',
  args: [file, ...args],
  env: { RUST_BACKTRACE: '0' },
  preopens: { '.': process.cwd() },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(file));
// The library links the proxy-wasm ABI (imports from "env"). Unit tests never
// call it; if one did, it must fail loudly rather than pass silently.
const imports = wasi.getImportObject();
for (const imp of WebAssembly.Module.imports(module)) {
  if (imp.module === 'wasi_snapshot_preview1' || imp.kind !== 'function') continue;
  imports[imp.module] ??= {};
  imports[imp.module][imp.name] = () => {
    throw new Error(`host call ${imp.module}.${imp.name} is not available in unit tests`);
  };
}
const instance = await WebAssembly.instantiate(module, imports);
// proxy_wasm::main! exports `_initialize` (a reactor entry) next to libtest's
// `_start`; Node refuses both, so hand it the command view only.
const { memory, _start } = instance.exports;
process.exitCode = wasi.start({ exports: { memory, _start } });
