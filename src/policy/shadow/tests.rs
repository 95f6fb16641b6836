//! The shadow policy and the audit plan as `Policy::check` sees them: every
//! pairing rule with its exact message and path, the shadow's own
//! diagnostics under `shadow`, and the recorded claims.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::type_complexity)]

use super::Verifier;
use crate::config::parse;
use crate::engine::tests::{fx, policy_json, GITLAB};
use crate::policy::{Policy, MAX_RULE_COUNTERS};
use serde_json::{json, Value};

fn base() -> Value {
    let f = fx();
    serde_json::from_str(&policy_json(&f.gitlab, &f.okta, "enforce")).unwrap()
}

/// The base policy with `edit` applied to its shadow (a copy of itself).
fn with_shadow(edit: impl FnOnce(&mut Value)) -> Value {
    let mut cfg = base();
    let mut s = base();
    s["policy_version"] = json!("test-2");
    edit(&mut s);
    cfg["shadow"] = s;
    cfg
}

fn check(cfg: &Value) -> (Option<Policy>, Vec<String>, Vec<String>) {
    let parsed = parse(&cfg.to_string()).unwrap();
    let (p, d) = Policy::check(&parsed);
    let errors = d.errors().map(ToString::to_string).collect();
    let warnings = d.warnings().map(ToString::to_string).collect();
    (p, errors, warnings)
}

#[test]
fn a_copy_with_other_rules_shares_authentication() {
    let cfg = with_shadow(|s| {
        s["rules"][4]["hosts"] = Value::Null;
    });
    let (p, errors, warnings) = check(&cfg);
    assert_eq!(errors, Vec::<String>::new());
    assert_eq!(warnings, Vec::<String>::new());
    let p = p.unwrap();
    let s = p.shadow.as_ref().unwrap();
    assert_eq!(s.policy.version, "test-2");
    assert_eq!(
        s.verifiers,
        vec![Verifier::Enforced(0), Verifier::Enforced(1)]
    );
    assert_eq!(s.twin_of, vec![Some(0), Some(1)]);
    assert!(s.shares_authentication);
}

#[test]
fn providers_in_another_order_still_share() {
    let cfg = with_shadow(|s| {
        let ps = s["providers"].as_array_mut().unwrap();
        ps.reverse();
    });
    let (p, errors, _) = check(&cfg);
    assert_eq!(errors, Vec::<String>::new());
    let p = p.unwrap();
    let s = p.shadow.as_ref().unwrap();
    assert_eq!(
        s.verifiers,
        vec![Verifier::Enforced(1), Verifier::Enforced(0)]
    );
    assert_eq!(s.twin_of, vec![Some(1), Some(0)]);
    assert!(s.shares_authentication);
}

#[test]
fn a_dropped_or_added_provider_means_its_own_token_search() {
    // Without gitlab (and the roles and rules that need it).
    let dropped = with_shadow(|s| {
        s["providers"].as_array_mut().unwrap().remove(0);
        s["roles"].as_array_mut().unwrap().remove(3);
        s["rules"].as_array_mut().unwrap().remove(3);
    });
    let (p, errors, _) = check(&dropped);
    assert_eq!(errors, Vec::<String>::new());
    let p = p.unwrap();
    let s = p.shadow.as_ref().unwrap();
    assert_eq!(s.verifiers, vec![Verifier::Enforced(1)]);
    assert_eq!(s.twin_of, vec![None, Some(0)]);
    assert!(!s.shares_authentication);

    // A provider of a new issuer, verified by the shadow itself.
    let added = with_shadow(|s| {
        let mut extra = s["providers"][1].clone();
        extra["name"] = json!("azure");
        extra["issuer"] = json!("https://login.example.net/v2.0");
        s["providers"].as_array_mut().unwrap().push(extra);
    });
    let (p, errors, warnings) = check(&added);
    assert_eq!(errors, Vec::<String>::new());
    assert_eq!(warnings, Vec::<String>::new());
    let p = p.unwrap();
    let s = p.shadow.as_ref().unwrap();
    assert_eq!(
        s.verifiers,
        vec![Verifier::Enforced(0), Verifier::Enforced(1), Verifier::Own]
    );
    assert!(!s.shares_authentication);
}

#[test]
fn pairing_errors_name_the_field() {
    let same = "a shadow decides on the token the enforced policy verified, without checking it again, so a provider both policies name must be the same; try a provider change in audit mode instead";
    let table: Vec<(&str, Box<dyn Fn(&mut Value)>, Vec<String>)> = vec![
        (
            "changed audiences",
            Box::new(|s| s["providers"][0]["audiences"] = json!(["https://other.example.com"])),
            vec![format!("shadow.providers[0].audiences: differs from the enforced policy's provider 'gitlab' (providers[0]): {same}")],
        ),
        (
            "changed lifetime and keys",
            Box::new(|s| {
                s["providers"][1]["max_lifetime_seconds"] = json!(600);
                s["providers"][1]["jwks"] = s["providers"][0]["jwks"].clone();
            }),
            vec![
                format!("shadow.providers[1].jwks: differs from the enforced policy's provider 'okta' (providers[1]): {same}"),
                format!("shadow.providers[1].max_lifetime_seconds: differs from the enforced policy's provider 'okta' (providers[1]): {same}"),
            ],
        ),
        (
            "same issuer, another name",
            Box::new(|s| {
                s["providers"][0]["name"] = json!("gitlab-ci");
                s["roles"][3]["jwt"]["provider"] = json!("gitlab-ci");
            }),
            vec![format!("shadow.providers[0].name: 'gitlab-ci' verifies issuer '{GITLAB}', as the enforced policy's provider 'gitlab' (providers[0]) does: a shadow shares the tokens the enforced policy verified, so give it the same name and settings")],
        ),
        (
            "nested shadow",
            Box::new(|s| s["shadow"] = base()),
            vec!["shadow.shadow: a shadow policy has no shadow of its own".into()],
        ),
        (
            "audit mode",
            Box::new(|s| s["mode"] = json!("audit")),
            vec!["shadow.mode: a shadow never changes a response, so it has no audit mode: leave mode out (the enforced policy's mode says what is enforced)".into()],
        ),
        (
            "peer identity",
            Box::new(|s| s["peer_identity"] = json!("istio_waypoint")),
            vec!["shadow.peer_identity: differs from the enforced policy's peer_identity: the shadow judges the caller the enforced policy reads; set the same".into()],
        ),
        (
            "signature backend",
            Box::new(|s| s["signature_backend"] = json!("wasm")),
            vec!["shadow.signature_backend: differs from the enforced policy's signature_backend: both verify signatures on the same backend; set the same".into()],
        ),
        (
            "audit settings",
            Box::new(|s| s["audit"] = json!({"claims": ["sub"]})),
            vec!["shadow.audit: the enforced policy writes the audit events: set audit there (its events record the claims the shadow's roles consult by default)".into()],
        ),
        (
            "its own mistakes, at its own paths",
            Box::new(|s| {
                s["rules"][0]["roles"] = json!(["nobody"]);
                s["schema_version"] = json!(2);
            }),
            vec![
                "shadow.schema_version: schema_version 2 is not supported by this filter build (supported: 1); upgrade the filter or compile the policy for version 1".into(),
                "shadow.rules[0].roles[0]: rule 'no-debug' names role 'nobody', which is not defined (defined: admin, frontend, partner, reader, realm, release, shop-ns)".into(),
            ],
        ),
    ];
    for (name, edit, want) in table {
        let cfg = with_shadow(edit);
        let (p, errors, _) = check(&cfg);
        assert!(p.is_none(), "{name}");
        assert_eq!(errors, want, "{name}");
    }
}

#[test]
fn the_shadow_s_warnings_are_kept_under_its_path() {
    let cfg = with_shadow(|s| {
        s["roles"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "spare", "principals": ["ns/x/*"]}));
    });
    let (p, errors, warnings) = check(&cfg);
    assert_eq!(errors, Vec::<String>::new());
    assert_eq!(
        warnings,
        vec!["shadow.roles[7]: role 'spare' is defined but no rule uses it".to_string()]
    );
    assert!(p.is_some());
    // Loaded, the policy keeps them (the filter logs them).
    let loaded = Policy::compile(&parse(&cfg.to_string()).unwrap()).unwrap();
    assert_eq!(loaded.warnings.len(), 1);
}

#[test]
fn recorded_claims_by_default_and_as_written() {
    // Default: every claim a role consults (the shadow's too), and aud.
    let cfg = with_shadow(|s| {
        s["roles"][4]["jwt"]["claims"][0] = json!({"claim": "tenant", "equals": "a"});
    });
    let p = check(&cfg).0.unwrap();
    assert_eq!(
        p.audit.claims,
        vec![
            "namespace_path",
            "ref_protected",
            "groups",
            "scp",
            "realm_access.roles",
            "level",
            "mfa",
            "tenant",
            "aud"
        ]
    );
    assert_eq!(
        p.audit.sources_json,
        r#"["header:authorization Bearer","query:access_token","cookie:okta_token"]"#
    );

    // As written: iss and sub are always recorded; a missing claim warns.
    let mut cfg = base();
    cfg["audit"] = json!({"claims": ["sub", "groups", "realm_access", "level"]});
    let (p, errors, warnings) = check(&cfg);
    assert_eq!(errors, Vec::<String>::new());
    assert_eq!(
        p.unwrap().audit.claims,
        vec!["groups", "realm_access", "level"]
    );
    assert_eq!(
        warnings,
        vec!["audit.claims: does not record 'namespace_path' (role 'release'), 'ref_protected' (role 'release'), 'scp' (role 'reader'), 'mfa' (role 'realm'), which roles consult: oam-authz replay reports the events that need them as undecidable".to_string()]
    );

    let mut cfg = base();
    cfg["audit"] = json!({"claims": ["groups", "a..b", "groups", ""]});
    let (_, errors, _) = check(&cfg);
    assert_eq!(
        errors,
        vec![
            "audit.claims[1]: 'a..b' has an empty segment; use dotted names like realm_access.roles",
            "audit.claims[2]: duplicate name 'groups'",
            "audit.claims[3]: must not be empty",
        ]
    );
}

#[test]
fn more_rules_than_counters_warn() {
    let mut cfg = base();
    let rules: Vec<Value> = (0..MAX_RULE_COUNTERS + 4)
        .map(|i| json!({"name": format!("r{i}"), "public": true, "paths": [format!("/p{i}")]}))
        .collect();
    cfg["rules"] = json!(rules);
    cfg["roles"] = json!([]);
    let (p, errors, warnings) = check(&cfg);
    assert_eq!(errors, Vec::<String>::new());
    assert!(p.is_some());
    assert_eq!(
        warnings,
        vec![format!("rules: 260 rules: the first {MAX_RULE_COUNTERS} get a hit counter each, the hits of the others are counted together (oam_authz.rules_over_cap_hits)")]
    );
}
