// Validates what oam-authz generates against published schemas:
//  - every WasmPlugin (and the RequestAuthentication / AuthorizationPolicy /
//    PeerAuthentication manifests) against Istio's own CRD schemas, as
//    packaged by @kubernetes-models/istio;
//  - every pluginConfig and plain plugin-config JSON against
//    istio/schemas/plugin-config.schema.json;
//  - every mesh-access trait and mesh-identity policy in the example
//    applications against istio/schemas/mesh-{access,identity}.schema.json.
// Usage: node check.mjs [FILE_OR_DIR...]   (default: examples/ and istio/)
// Exit 1 when anything fails; the last line is "schema-check: N passed, M failed".

import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import Ajv2020 from "ajv/dist/2020.js";
import { WasmPlugin } from "@kubernetes-models/istio/extensions.istio.io/v1alpha1/WasmPlugin";
import { AuthorizationPolicy } from "@kubernetes-models/istio/security.istio.io/v1/AuthorizationPolicy";
import { RequestAuthentication } from "@kubernetes-models/istio/security.istio.io/v1/RequestAuthentication";
import { PeerAuthentication } from "@kubernetes-models/istio/security.istio.io/v1/PeerAuthentication";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "..", "..");
const schema = (name) => JSON.parse(readFileSync(join(repo, "istio", "schemas", name), "utf8"));
const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true });
const pluginConfig = ajv.compile(schema("plugin-config.schema.json"));
const meshAccess = ajv.compile(schema("mesh-access.schema.json"));
const meshIdentity = ajv.compile(schema("mesh-identity.schema.json"));
const ISTIO = {
  "extensions.istio.io/v1alpha1/WasmPlugin": WasmPlugin,
  "security.istio.io/v1/AuthorizationPolicy": AuthorizationPolicy,
  "security.istio.io/v1/RequestAuthentication": RequestAuthentication,
  "security.istio.io/v1/PeerAuthentication": PeerAuthentication,
};

let passed = 0;
let failed = 0;
const ok = (what) => {
  passed++;
  console.log(`PASS  ${what}`);
};
const fail = (what, why) => {
  failed++;
  console.log(`FAIL  ${what}: ${why}`);
};
const ajvCheck = (validate, value, what) => {
  if (validate(value)) ok(what);
  else fail(what, ajv.errorsText(validate.errors, { dataVar: "" }));
};

function istioCheck(doc, what) {
  const Model = ISTIO[`${doc.apiVersion}/${doc.kind}`];
  if (!Model) return false;
  try {
    new Model(doc).validate();
    ok(`${what} (Istio ${doc.kind} schema)`);
  } catch (e) {
    fail(`${what} (Istio ${doc.kind} schema)`, e.message);
  }
  if (doc.kind === "WasmPlugin") {
    ajvCheck(pluginConfig, doc.spec?.pluginConfig, `${what} pluginConfig (plugin-config.schema.json)`);
  }
  return true;
}

function checkFile(file) {
  const rel = relative(repo, file);
  const text = readFileSync(file, "utf8");
  if (file.endsWith(".json")) {
    if (rel.includes("schemas") || rel.includes("node_modules") || rel.endsWith("jwks.json")) return;
    if (rel.includes("package")) return;
    ajvCheck(pluginConfig, JSON.parse(text), `${rel} (plugin-config.schema.json)`);
    return;
  }
  const docs = parseAllDocuments(text);
  docs.forEach((d, i) => {
    if (d.errors.length) {
      fail(`${rel}#${i}`, d.errors[0].message);
      return;
    }
    const doc = d.toJS();
    if (!doc || typeof doc !== "object") return;
    const what = `${rel}#${i} ${doc.kind ?? ""} ${doc.metadata?.name ?? ""}`.trim();
    if (istioCheck(doc, what)) return;
    if (doc.kind === "Application") {
      (doc.spec?.components ?? []).forEach((c, ci) =>
        (c.traits ?? []).forEach((t, ti) => {
          if (t.type === "mesh-access")
            ajvCheck(meshAccess, t.properties, `${what} spec.components[${ci}].traits[${ti}] (mesh-access.schema.json)`);
        }),
      );
      (doc.spec?.policies ?? []).forEach((p, pi) => {
        if (p.type === "mesh-identity")
          ajvCheck(meshIdentity, p.properties ?? {}, `${what} spec.policies[${pi}] (mesh-identity.schema.json)`);
      });
    }
  });
}

function walk(path, out) {
  if (statSync(path).isDirectory()) {
    for (const e of readdirSync(path).sort()) {
      if (e === "node_modules" || e.startsWith(".") || e === "envoy" && path.endsWith("examples")) continue;
      walk(join(path, e), out);
    }
  } else if (/\.(ya?ml|json)$/.test(path)) out.push(path);
  return out;
}

// The validators must refuse what they should, or a pass means nothing.
function selfTest() {
  const bad = {
    apiVersion: "extensions.istio.io/v1alpha1",
    kind: "WasmPlugin",
    metadata: { name: "x" },
    spec: { phase: "AUTHENTICATE", failStrategy: "FAIL_CLOSE", url: "oci://x", match: [{ mode: "SERVER" }] },
  };
  let refused = false;
  try {
    new WasmPlugin(bad).validate();
  } catch {
    refused = true;
  }
  if (refused) ok("self-test: Istio schema refuses phase AUTHENTICATE");
  else fail("self-test", "Istio schema accepted an invalid phase");
  if (!pluginConfig({ schema_version: 1, trust_domain: "cluster.local", rules: [{ name: "r", methods: ["GET"] }], extra: 1 }))
    ok("self-test: plugin-config schema refuses unknown fields and subject-less allow rules");
  else fail("self-test", "plugin-config schema accepted an invalid config");
  if (!meshAccess({ rules: [{ name: "r", roles: ["a"], method: ["GET"] }] }))
    ok("self-test: mesh-access schema refuses the typo 'method'");
  else fail("self-test", "mesh-access schema accepted an unknown field");
  if (!meshIdentity({ providers: [{ name: "p", issuer: "i", algorithms: ["RS256"], jwks: { keys: [] } }] }))
    ok("self-test: mesh-identity schema refuses a provider without audiences");
  else fail("self-test", "mesh-identity schema accepted a provider without audiences");
}

const args = process.argv.slice(2);
const roots = args.length ? args.map((a) => resolve(a)) : [join(repo, "examples"), join(repo, "istio")];
selfTest();
for (const f of roots.flatMap((r) => walk(r, []))) checkFile(f);
console.log(`schema-check: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
