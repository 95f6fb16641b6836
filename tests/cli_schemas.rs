//! The JSON Schemas in istio/schemas/ describe what the compiler emits and
//! what the OAM vocabulary accepts: every example plugin config validates
//! against plugin-config.schema.json, every example mesh-access trait and
//! mesh-identity policy against theirs, and the schemas refuse typos.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use serde_json::{json, Value};
use std::path::Path;

fn schema(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("istio/schemas")
        .join(name);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::draft202012::new(&v).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

const EXAMPLES: &[&str] = &[
    "shop",
    "deploy-api",
    "artifact-store",
    "remote-jwks",
    "quickstart",
];

#[test]
fn example_plugin_configs_match_the_schema() {
    let v = schema("plugin-config.schema.json");
    let mut seen = 0;
    for app in EXAMPLES {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{app}/compiled/envoy"));
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let doc: Value =
                serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap();
            let errs = errors(&v, &doc);
            assert!(errs.is_empty(), "{}: {errs:?}", e.path().display());
            seen += 1;
        }
        // The pluginConfig inside each WasmPlugin, too.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{app}/compiled"));
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            // WasmPlugins only (the IdP manifests of --idp-manifests are
            // checked against Istio's schemas by istio/schema-check).
            if !name.starts_with("oam-authz-") || name.contains("-idp-") {
                continue;
            }
            let doc: Value =
                serde_norway::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap();
            let errs = errors(&v, &doc["spec"]["pluginConfig"]);
            assert!(errs.is_empty(), "{name}: {errs:?}");
            seen += 1;
        }
    }
    assert!(seen >= 10, "only {seen} configs checked");
}

#[test]
fn example_oam_properties_match_their_schemas() {
    let access = schema("mesh-access.schema.json");
    let identity = schema("mesh-identity.schema.json");
    for app in EXAMPLES {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{app}/app.yaml"));
        let doc: Value = serde_norway::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for c in doc["spec"]["components"].as_array().unwrap() {
            for t in c["traits"].as_array().into_iter().flatten() {
                if t["type"] == "mesh-access" {
                    let errs = errors(&access, &t["properties"]);
                    assert!(errs.is_empty(), "{app}/{}: {errs:?}", c["name"]);
                }
            }
        }
        for p in doc["spec"]["policies"].as_array().into_iter().flatten() {
            if p["type"] == "mesh-identity" {
                let errs = errors(&identity, &p["properties"]);
                assert!(errs.is_empty(), "{app}/{}: {errs:?}", p["name"]);
            }
        }
    }
}

#[test]
fn schemas_refuse_what_the_parsers_refuse() {
    let pc = schema("plugin-config.schema.json");
    let base = json!({"schema_version": 1, "trust_domain": "cluster.local",
        "rules": [{"name": "h", "public": true, "paths": ["/healthz"]}]});
    assert!(pc.is_valid(&base));
    for (what, doc) in [
        (
            "unknown top-level field",
            json!({"schema_version": 1, "trust_domain": "cluster.local", "rules": [{"name": "h", "public": true}], "rule": []}),
        ),
        (
            "schema_version 2",
            json!({"schema_version": 2, "trust_domain": "cluster.local", "rules": [{"name": "h", "public": true}]}),
        ),
        (
            "empty rules",
            json!({"schema_version": 1, "trust_domain": "cluster.local", "rules": []}),
        ),
        (
            "allow rule with neither roles nor public",
            json!({"schema_version": 1, "trust_domain": "cluster.local", "rules": [{"name": "h"}]}),
        ),
        (
            "public deny rule",
            json!({"schema_version": 1, "trust_domain": "cluster.local", "rules": [{"name": "h", "effect": "deny", "public": true}]}),
        ),
        (
            "claim with two operators",
            json!({"schema_version": 1, "trust_domain": "cluster.local", "rules": [{"name": "h", "public": true}],
            "roles": [{"name": "r", "jwt": {"provider": "p", "claims": [{"claim": "a", "equals": "x", "contains": "y"}]}}]}),
        ),
        (
            "HS256",
            json!({"schema_version": 1, "trust_domain": "cluster.local", "rules": [{"name": "h", "public": true}],
            "providers": [{"name": "p", "issuer": "https://idp.example.com", "audiences": ["a"], "algorithms": ["HS256"]}]}),
        ),
        (
            "issuer without a scheme",
            json!({"schema_version": 1, "trust_domain": "cluster.local", "rules": [{"name": "h", "public": true}],
            "providers": [{"name": "p", "issuer": "gitlab.example.com", "audiences": ["a"], "algorithms": ["RS256"], "jwks": {"keys": [{"kty": "RSA"}]}}]}),
        ),
        (
            "empty claim prefix",
            json!({"schema_version": 1, "trust_domain": "cluster.local", "rules": [{"name": "h", "public": true}],
            "roles": [{"name": "r", "jwt": {"provider": "p", "claims": [{"claim": "a", "prefix": ""}]}}]}),
        ),
        (
            "upper-case trust domain",
            json!({"schema_version": 1, "trust_domain": "Cluster.local", "rules": [{"name": "h", "public": true}]}),
        ),
    ] {
        assert!(!pc.is_valid(&doc), "plugin-config schema accepted: {what}");
    }
    // Every such document is refused by the engine too.
    for doc in [
        json!({"schema_version": 1, "trust_domain": "cluster.local", "rules": [{"name": "h"}]}),
        json!({"schema_version": 1, "trust_domain": "cluster.local", "rules": []}),
    ] {
        assert!(oam_authz::Policy::from_json(&doc.to_string()).is_err());
    }

    let access = schema("mesh-access.schema.json");
    assert!(access.is_valid(&json!({"rules": [{"name": "r", "roles": ["a"], "methods": ["GET"]}]})));
    assert!(!access.is_valid(&json!({"rules": [{"name": "r", "roles": ["a"], "method": ["GET"]}]})));
    assert!(!access.is_valid(&json!({"rules": [{"name": "r", "roles": ["a"]}], "roles": [{"name": "a", "principals": ["web"], "jwt": {"provider": "p", "claims": [{"claim": "x", "one_of": ["a"]}]}}]})));
    let identity = schema("mesh-identity.schema.json");
    assert!(!identity.is_valid(&json!({"providers": [{"name": "p", "issuer": "https://idp.example.com", "algorithms": ["RS256"], "jwks": {"keys": []}}]})));
    assert!(
        !identity.is_valid(&json!({"trustDomain": "cluster.local", "trust_domain_aliases": []}))
    );
}

#[test]
fn schemas_take_exactly_one_of_jwks_and_remote_jwks() {
    let remote = json!({"uri": "https://example.okta.com/oauth2/default/v1/keys", "cluster": "idp-okta",
        "refreshSeconds": 300, "timeoutMs": 5000, "maxStaleSeconds": 86400,
        "minRefetchIntervalSeconds": 30});
    let provider = |extra: Value| {
        let mut p = json!({"name": "okta", "issuer": "https://example.okta.com/oauth2/default",
            "audiences": ["api://x"], "algorithms": ["RS256"]});
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        json!({"providers": [p]})
    };
    let jwks = json!({"keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}]});
    for name in ["mesh-identity.schema.json", "mesh-access.schema.json"] {
        let v = schema(name);
        // mesh-access takes the same shape as its `identity`.
        let doc = |id: Value| {
            if name.starts_with("mesh-access") {
                json!({"rules": [{"name": "h", "public": true}], "identity": id})
            } else {
                id
            }
        };
        assert!(
            v.is_valid(&doc(provider(json!({"jwks": jwks})))),
            "{name}: jwks"
        );
        assert!(
            v.is_valid(&doc(provider(json!({"remoteJwks": remote})))),
            "{name}: remoteJwks"
        );
        assert!(
            v.is_valid(&doc(provider(
                json!({"remoteJwks": {"cluster": "idp", "discovery": true}})
            ))),
            "{name}: discovery from the issuer"
        );
        for (what, extra) in [
            ("neither", json!({})),
            ("both", json!({"jwks": jwks, "remoteJwks": remote})),
            (
                "no cluster",
                json!({"remoteJwks": {"uri": "https://idp/keys"}}),
            ),
            (
                "no uri, no discovery",
                json!({"remoteJwks": {"cluster": "idp"}}),
            ),
            (
                "not a URL",
                json!({"remoteJwks": {"uri": "idp/keys", "cluster": "idp"}}),
            ),
            (
                "snake_case field",
                json!({"remoteJwks": {"uri": "https://idp/keys", "cluster": "idp", "refresh_seconds": 5}}),
            ),
            (
                "timeout below 100 ms",
                json!({"remoteJwks": {"uri": "https://idp/keys", "cluster": "idp", "timeoutMs": 50}}),
            ),
        ] {
            assert!(
                !v.is_valid(&doc(provider(extra))),
                "{name} accepted: {what}"
            );
        }
    }
}
