//! Table tests of the classic policy edits, and a property test over
//! random policy pairs and random requests (docs/diff.md "Tests").

#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use super::callers::{Caller, TokenExample, NOW};
use super::component::ComponentDiff;
use super::eval::decide;
use super::regions::Change;
use super::side::Side;
use super::words::{what, who};
use crate::config::{PluginConfig, TokenSource};
use crate::pattern::spiffe::SpiffeId;
use crate::policy::Policy;
use serde_json::{json, Value};

const IDP_A: &str = "https://idp-a.example";
const IDP_B: &str = "https://idp-b.example";

fn provider(name: &str, issuer: &str, audiences: &[&str], lifetime: u64) -> Value {
    json!({
        "name": name, "issuer": issuer, "audiences": audiences, "algorithms": ["RS256"],
        "remote_jwks": {"uri": format!("{issuer}/keys"), "cluster": "idp"},
        "max_lifetime_seconds": lifetime,
    })
}

fn config(v: &Value) -> PluginConfig {
    let mut v = v.clone();
    let o = v.as_object_mut().unwrap();
    o.entry("schema_version").or_insert(json!(1));
    o.entry("trust_domain").or_insert(json!("cluster.local"));
    serde_json::from_value(v).unwrap()
}

struct Compiled {
    config: PluginConfig,
    policy: Policy,
}

fn compiled(v: &Value) -> Option<Compiled> {
    let config = config(v);
    let policy = Policy::compile(&config).ok()?;
    Some(Compiled { config, policy })
}

fn side(c: &Compiled) -> Side<'_> {
    Side {
        config: &c.config,
        policy: &c.policy,
    }
}

fn diff_of(old: &Compiled, new: &Compiled) -> ComponentDiff {
    ComponentDiff::compute("app", "svc", &[side(old), side(new)], "svc").unwrap()
}

/// Each region as "change | who | what; what | old -> new".
fn lines(d: &ComponentDiff) -> Vec<String> {
    let (ops, callers) = (d.ops.as_ref().unwrap(), d.callers.as_ref().unwrap());
    d.regions
        .iter()
        .map(|f| {
            let r = &f.region;
            assert!(f.example.confirmed, "{:?}", f.example);
            let whats: Vec<String> = r.what.iter().map(|(w, _)| what(ops, w)).collect();
            let pairs: Vec<String> = r
                .pairs
                .iter()
                .map(|(a, b)| format!("{} {} -> {} {}", a.status, a.reason, b.status, b.reason))
                .collect();
            format!(
                "{} | {} | {} | {}",
                r.change.word(),
                who(callers, &r.who),
                whats.join(" + "),
                pairs.join(", ")
            )
        })
        .collect()
}

fn check(old: &Value, new: &Value, want: &[&str], change: Option<Change>) {
    let (a, b) = (compiled(old).unwrap(), compiled(new).unwrap());
    let d = diff_of(&a, &b);
    let got = lines(&d);
    assert_eq!(got, want, "\n{}", got.join("\n"));
    assert_eq!(d.change(), change);
}

fn two_roles() -> Value {
    json!([
        {"name": "web", "principals": ["ns/shop/sa/web"]},
        {"name": "ops", "principals": ["ns/ops/*"]},
    ])
}

#[test]
fn a_rule_removed() {
    let old = json!({"roles": two_roles(), "rules": [
        {"name": "read", "roles": ["web"], "methods": ["GET"], "paths": ["/orders/{*}"]},
        {"name": "admin", "roles": ["ops"], "paths": ["/admin/{**}"]},
    ]});
    let new = json!({"roles": two_roles(), "rules": [
        {"name": "admin", "roles": ["ops"], "paths": ["/admin/{**}"]},
    ]});
    check(
        &old,
        &new,
        &[
            "narrowed | holds web | GET; any host; /orders/{*} | 200 role_granted -> 403 no_matching_rule",
            "changed | does not hold web | GET; any host; /orders/{*} | 403 role_required -> 403 no_matching_rule",
        ],
        Some(Change::Narrowed),
    );
}

#[test]
fn a_deny_added() {
    let rules = json!([{"name": "read", "roles": ["web", "ops"], "paths": ["/orders/{**}"]}]);
    let old = json!({"roles": two_roles(), "rules": rules});
    let new = json!({"roles": two_roles(), "rules": [
        {"name": "no-export", "effect": "deny", "roles": ["ops"], "methods": ["GET"], "paths": ["/orders/export/{**}"]},
        rules[0],
    ]});
    check(
        &old,
        &new,
        &["narrowed | holds ops | GET; any host; /orders/export/{**} | 200 role_granted -> 403 denied_by_rule"],
        Some(Change::Narrowed),
    );
}

#[test]
fn a_role_widened_from_one_workload_to_a_namespace() {
    let rules = json!([{"name": "read", "roles": ["ci"], "methods": ["GET"], "paths": ["/artifacts/{**}"]}]);
    let old = json!({"roles": [{"name": "ci", "principals": ["ns/x/sa/y"]}], "rules": rules});
    let new = json!({"roles": [{"name": "ci", "principals": ["ns/x/*"]}], "rules": rules});
    check(
        &old,
        &new,
        &["widened | holds ci (new); does not hold ci (old) | GET; any host; /artifacts/{**} | 403 role_required -> 200 role_granted"],
        Some(Change::Widened),
    );
    let (a, b) = (compiled(&old).unwrap(), compiled(&new).unwrap());
    let d = diff_of(&a, &b);
    let peer = d.regions[0].example.caller.peer.as_ref().unwrap();
    assert_eq!(peer.namespace(), "x");
    assert_ne!(peer.service_account(), "y");
}

#[test]
fn a_claim_condition_changed() {
    let role = |g: &str| json!([{"name": "admins", "jwt": {"provider": "a", "claims": [{"claim": "groups", "contains": g}]}}]);
    let rules = json!([{"name": "admin", "roles": ["admins"], "paths": ["/admin"]}]);
    let providers = json!([provider("a", IDP_A, &["api"], 600)]);
    let old = json!({"providers": providers, "roles": role("admins"), "rules": rules});
    let new = json!({"providers": providers, "roles": role("platform-admins"), "rules": rules});
    check(
        &old,
        &new,
        &[
            "widened | holds admins (new); does not hold admins (old) | any method; any host; /admin | 403 role_required -> 200 role_granted",
            "narrowed | holds admins (old); does not hold admins (new) | any method; any host; /admin | 200 role_granted -> 403 role_required",
        ],
        Some(Change::Widened),
    );
    let (a, b) = (compiled(&old).unwrap(), compiled(&new).unwrap());
    let d = diff_of(&a, &b);
    let claims = &d.regions[0].example.caller.token.as_ref().unwrap().claims;
    assert_eq!(claims["groups"], json!(["platform-admins"]));
}

#[test]
fn one_segment_widened_to_any_depth() {
    let rules =
        |p: &str| json!([{"name": "read", "roles": ["web"], "methods": ["GET"], "paths": [p]}]);
    let old = json!({"roles": two_roles(), "rules": rules("/files/{*}")});
    let new = json!({"roles": two_roles(), "rules": rules("/files/{**}")});
    check(
        &old,
        &new,
        &[
            "widened | holds web | GET; any host; /files/{**} except /files/{*} | 403 no_matching_rule -> 200 role_granted",
            "changed | does not hold web | GET; any host; /files/{**} except /files/{*} | 403 no_matching_rule -> 403 role_required",
        ],
        Some(Change::Widened),
    );
}

#[test]
fn a_rule_moved_so_it_shadows_another() {
    // Deny rules win wherever they are and allow rules allow either way:
    // moving the public rule first only changes the reason for web.
    let read = json!({"name": "read", "roles": ["web"], "paths": ["/docs/{*}"]});
    let public = json!({"name": "public-docs", "public": true, "paths": ["/docs/{**}"]});
    let deny = json!({"name": "no-drafts", "effect": "deny", "paths": ["/docs/drafts"]});
    let old = json!({"roles": two_roles(), "rules": [read, public, deny]});
    let new = json!({"roles": two_roles(), "rules": [deny, public, read]});
    check(
        &old,
        &new,
        &["changed | holds web | any method; any host; /docs/{*} except /docs/drafts | 200 role_granted -> 200 public_rule"],
        Some(Change::Changed),
    );
}

#[test]
fn a_host_added() {
    let rules = |hosts: &[&str]| json!([{"name": "read", "roles": ["web"], "hosts": hosts, "paths": ["/api/{**}"]}]);
    let old = json!({"roles": two_roles(), "rules": rules(&["api.example.com"])});
    let new =
        json!({"roles": two_roles(), "rules": rules(&["api.example.com", "*.eu.example.com"])});
    check(
        &old,
        &new,
        &[
            "widened | holds web | any method; *.eu.example.com; /api/{**} | 403 no_matching_rule -> 200 role_granted",
            "changed | does not hold web | any method; *.eu.example.com; /api/{**} | 403 no_matching_rule -> 403 role_required",
        ],
        Some(Change::Widened),
    );
}

#[test]
fn an_issuers_audience_changed() {
    let roles = json!([{"name": "ci", "jwt": {"provider": "a"}}]);
    let rules =
        json!([{"name": "deploy", "roles": ["ci"], "methods": ["POST"], "paths": ["/deploy"]}]);
    let old = json!({"providers": [provider("a", IDP_A, &["deploy-v1"], 600)], "roles": roles, "rules": rules});
    let new = json!({"providers": [provider("a", IDP_A, &["deploy-v2"], 600)], "roles": roles, "rules": rules});
    let (a, b) = (compiled(&old).unwrap(), compiled(&new).unwrap());
    let d = diff_of(&a, &b);
    let got = lines(&d);
    let want_widened = "widened | holds ci; a token that the old revision refuses | POST; any host; /deploy | 401 token_audience_mismatch -> 200 role_granted";
    let want_narrowed = "narrowed | holds ci; a token that the new revision refuses | POST; any host; /deploy | 200 role_granted -> 401 token_audience_mismatch";
    assert!(
        got.contains(&want_widened.to_string()),
        "{}",
        got.join("\n")
    );
    assert!(
        got.contains(&want_narrowed.to_string()),
        "{}",
        got.join("\n")
    );
    // Everywhere else only the reason changes: the other audience is now refused.
    assert!(
        got.iter().all(|l| l.contains("token_audience_mismatch")),
        "{}",
        got.join("\n")
    );
    assert_eq!(
        d.regions
            .iter()
            .filter(|f| f.region.change != Change::Changed)
            .count(),
        2
    );
    let narrowed = d
        .regions
        .iter()
        .find(|f| f.region.change == Change::Narrowed)
        .unwrap();
    let claims = &narrowed.example.caller.token.as_ref().unwrap().claims;
    assert_eq!(claims["aud"], json!("deploy-v1"));
    assert_eq!(d.change(), Some(Change::Widened));
}

#[test]
fn no_change_and_renamed_rules_report_nothing() {
    let old = json!({"roles": two_roles(), "rules": [{"name": "read", "roles": ["web"], "paths": ["/a"]}]});
    let new = json!({"roles": two_roles(), "rules": [{"name": "read-a", "roles": ["web"], "paths": ["/a"]}]});
    check(&old, &new, &[], None);
}

#[test]
fn mode_and_key_changes_are_notes() {
    let p = |algs: &[&str]| {
        let mut v = provider("a", IDP_A, &["api"], 600);
        v["algorithms"] = json!(algs);
        v
    };
    let roles = json!([{"name": "ci", "jwt": {"provider": "a"}}]);
    let rules = json!([{"name": "r", "roles": ["ci"], "paths": ["/x"]}]);
    let old = json!({"providers": [p(&["RS256"])], "roles": roles, "rules": rules});
    let new = json!({"mode": "audit", "providers": [p(&["RS256", "ES256"])], "roles": roles, "rules": rules});
    let (a, b) = (compiled(&old).unwrap(), compiled(&new).unwrap());
    let d = diff_of(&a, &b);
    assert!(d.regions.is_empty());
    let texts: Vec<&str> = d.notes.iter().map(|n| n.text.as_str()).collect();
    assert!(texts[0].starts_with("mode enforce -> audit"), "{texts:?}");
    assert!(
        texts[1].contains("accepted algorithms [\"RS256\"] -> [\"RS256\", \"ES256\"]"),
        "{texts:?}"
    );
    assert_eq!(d.change(), Some(Change::Widened));
}

// ---- property test -------------------------------------------------------

/// xorshift64: seeded, so every run tests the same pairs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    fn some<T: Clone>(&mut self, xs: &[T], max: usize) -> Vec<T> {
        let n = 1 + self.below(max.min(xs.len()));
        let mut out: Vec<T> = Vec::new();
        for _ in 0..n {
            out.push(self.pick(xs).clone());
        }
        out
    }
}

const PATHS: [&str; 9] = [
    "/a",
    "/a/{*}",
    "/a/{**}",
    "/b*",
    "*.png",
    "/a/{*}/c",
    "/",
    "/b/{*}/{**}",
    "/a/c",
];
const HOSTS: [&str; 3] = ["api.example.com", "*.example.com", "x.example.com"];
const METHODS: [&str; 3] = ["GET", "POST", "DELETE"];
const PRINCIPALS: [&str; 6] = [
    "ns/a/sa/x",
    "ns/a/*",
    "ns/b/sa/y",
    "*",
    "spiffe://other.example/ns/a/sa/x",
    "spiffe://other.example/*",
];

fn random_claims(rng: &mut Rng) -> Value {
    let pool = [
        json!({"claim": "groups", "contains": "g1"}),
        json!({"claim": "groups", "contains": "g2"}),
        json!({"claim": "tier", "equals": "gold"}),
        json!({"claim": "tier", "one_of": ["gold", "bronze"]}),
        json!({"claim": "scope", "scope_contains": "read"}),
        json!({"claim": "scope", "scope_contains": "write"}),
        json!({"claim": "org.name", "equals": "acme"}),
        json!({"claim": "org", "equals": "acme"}),
        json!({"claim": "level", "equals": 3}),
        json!({"claim": "path", "prefix": "platform/"}),
        json!({"claim": "path", "prefix": "platform/tools/"}),
        json!({"claim": "path", "equals": "platform/tools/cli"}),
        json!({"claim": "scope", "prefix": "read"}),
    ];
    let n = rng.below(3);
    Value::Array((0..n).map(|_| rng.pick(&pool).clone()).collect())
}

fn random_role(rng: &mut Rng, name: &str, providers: &[&str]) -> Value {
    let mut r = json!({"name": name});
    let jwt = !providers.is_empty() && rng.chance(60);
    if !jwt || rng.chance(40) {
        r["principals"] = json!(rng.some(&PRINCIPALS, 2));
    }
    if jwt {
        r["jwt"] = json!({"provider": rng.pick(providers), "claims": random_claims(rng)});
    }
    r
}

fn random_rule(rng: &mut Rng, name: &str, roles: usize) -> Value {
    let deny = rng.chance(25);
    let mut r = json!({"name": name, "effect": if deny { "deny" } else { "allow" }});
    let role_names: Vec<String> = (0..roles).map(|i| format!("r{i}")).collect();
    if !deny && rng.chance(20) {
        r["public"] = json!(true);
    } else if !deny || rng.chance(60) {
        r["roles"] = json!(rng.some(&role_names, 2));
    }
    if rng.chance(50) {
        r["methods"] = json!(rng.some(&METHODS, 2));
    }
    if rng.chance(30) {
        r["hosts"] = json!(rng.some(&HOSTS, 2));
    }
    if rng.chance(85) {
        r["paths"] = json!(rng.some(&PATHS, 3));
    }
    r
}

fn random_policy(rng: &mut Rng) -> Value {
    let mut providers = Vec::new();
    let mut names = Vec::new();
    for (name, issuer) in [("a", IDP_A), ("b", IDP_B)] {
        if rng.chance(60) {
            let auds = rng.some(&["aud-1", "aud-2", "aud-3"], 2);
            let auds: Vec<&str> = auds.to_vec();
            providers.push(provider(name, issuer, &auds, *rng.pick(&[600, 3600])));
            names.push(name);
        }
    }
    let nroles = 1 + rng.below(3);
    let roles: Vec<Value> = (0..nroles)
        .map(|i| random_role(rng, &format!("r{i}"), &names))
        .collect();
    let nrules = 1 + rng.below(5);
    let rules: Vec<Value> = (0..nrules)
        .map(|i| random_rule(rng, &format!("rule{i}"), nroles))
        .collect();
    let mut v = json!({"providers": providers, "roles": roles, "rules": rules});
    if rng.chance(15) {
        v["trust_domain_aliases"] = json!(["old.example"]);
    }
    v
}

/// One to three small edits of the kinds people make.
fn mutate(rng: &mut Rng, v: &Value) -> Value {
    let mut v = v.clone();
    for _ in 0..1 + rng.below(3) {
        let nroles = v["roles"].as_array().unwrap().len();
        let names: Vec<String> = v["providers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let rules = v["rules"].as_array_mut().unwrap();
        match rng.below(7) {
            0 if rules.len() > 1 => {
                let i = rng.below(rules.len());
                rules.remove(i);
            }
            1 => {
                let at = rng.below(rules.len() + 1);
                let name = format!("new{}", rng.below(1000));
                rules.insert(at, random_rule(rng, &name, nroles));
            }
            2 if rules.len() > 1 => {
                let (i, j) = (rng.below(rules.len()), rng.below(rules.len()));
                rules.swap(i, j);
            }
            3 => {
                let i = rng.below(rules.len());
                let name = rules[i]["name"].clone();
                rules[i] = random_rule(rng, name.as_str().unwrap(), nroles);
            }
            4 => {
                let i = rng.below(nroles);
                v["roles"][i] = random_role(rng, &format!("r{i}"), &names);
            }
            5 if !names.is_empty() => {
                let i = rng.below(names.len());
                v["providers"][i]["audiences"] = json!(rng.some(&["aud-1", "aud-2", "aud-3"], 2));
                v["providers"][i]["max_lifetime_seconds"] = json!(*rng.pick(&[600, 3600]));
            }
            _ => {
                v["trust_domain_aliases"] = if v.get("trust_domain_aliases").is_some() {
                    json!([])
                } else {
                    json!(["old.example"])
                };
            }
        }
    }
    v
}

fn random_caller(rng: &mut Rng) -> Caller {
    let peer = rng.chance(70).then(|| {
        let td = *rng.pick(&["cluster.local", "old.example", "other.example", "z.example"]);
        let (ns, sa) = (*rng.pick(&["a", "b", "c"]), *rng.pick(&["x", "y", "z"]));
        SpiffeId::new(td, ns, sa).unwrap()
    });
    let token = match rng.below(10) {
        0..=2 => None,
        n => {
            let issuer = match n {
                3 => "https://unknown.example",
                4..=6 => IDP_A,
                _ => IDP_B,
            };
            let mut c = json!({
                "iss": issuer,
                "aud": rng.pick(&[json!("aud-1"), json!("aud-2"), json!("aud-3"), json!(["aud-1", "aud-3"]), json!("zzz")]).clone(),
                "iat": NOW,
                "exp": NOW + *rng.pick(&[60, 600, 3000, 3600, 7200]),
            });
            if rng.chance(60) {
                c["groups"] = if rng.chance(85) {
                    json!(rng.some(&["g1", "g2", "g3"], 3))
                } else {
                    json!("g1")
                };
            }
            if rng.chance(50) {
                c["tier"] = rng
                    .pick(&[
                        json!("gold"),
                        json!("silver"),
                        json!("bronze"),
                        json!(1),
                        json!(true),
                    ])
                    .clone();
            }
            if rng.chance(50) {
                c["scope"] = json!(rng.some(&["read", "write", "admin"], 3).join(" "));
            }
            if rng.chance(40) {
                c["org"] = rng
                    .pick(&[
                        json!({"name": "acme"}),
                        json!({"name": "other"}),
                        json!("acme"),
                    ])
                    .clone();
            }
            if rng.chance(30) {
                c["level"] = rng.pick(&[json!(3), json!(3.0), json!("3")]).clone();
            }
            Some(TokenExample {
                issuer: issuer.to_string(),
                location: TokenSource::Header {
                    name: "authorization".into(),
                    prefix: Some("Bearer ".into()),
                },
                claims: c.as_object().unwrap().clone(),
            })
        }
    };
    Caller { peer, token }
}

const REQUEST_PATHS: [&str; 14] = [
    "/", "/a", "/a/", "/a/q", "/a/q/", "/a/q/c", "/a/q/r", "/a/c", "/b", "/bq", "/b/q/r/s",
    "/x.png", "/a/x.png", "/q",
];

/// Sound and complete on samples: for random policy pairs and random
/// requests, a request is in a reported region exactly when the two
/// policies decide it differently, and then with that exact change; and
/// every region's example, re-run, gives the region's decisions.
#[test]
fn random_policy_pairs_sound_and_complete_on_samples() {
    let seed: u64 = std::env::var("DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x2545_f491_4f6c_dd1d);
    let mut rng = Rng(seed);
    let (mut pairs, mut differing, mut same, mut regions) = (0, 0, 0, 0);
    let want: usize = std::env::var("DIFF_PAIRS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150);
    while pairs < want {
        let base = random_policy(&mut rng);
        let Some(old) = compiled(&base) else { continue };
        let Some(new) = compiled(&mutate(&mut rng, &base)) else {
            continue;
        };
        pairs += 1;
        let sides = [side(&old), side(&new)];
        let d = ComponentDiff::compute("app", "svc", &sides, "svc").unwrap();
        for f in &d.regions {
            regions += 1;
            let e = &f.example;
            assert!(e.confirmed, "example not confirmed: {e:?}");
            let o = decide(&old.policy, &e.caller, &e.method, &e.host, &e.path);
            let n = decide(&new.policy, &e.caller, &e.method, &e.host, &e.path);
            assert_ne!(
                o.decided, n.decided,
                "an example that does not differ: {e:?}"
            );
        }
        for _ in 0..300 {
            let mut caller = random_caller(&mut rng);
            let mut op = (
                *rng.pick(&["GET", "POST", "DELETE", "PUT"]),
                *rng.pick(&[
                    "api.example.com",
                    "x.example.com",
                    "y.example.com",
                    "a.b.example.com",
                    "example.com",
                    "svc",
                ]),
                *rng.pick(&REQUEST_PATHS),
            );
            // Near the regions: a region's example caller, or its operation.
            if !d.regions.is_empty() && rng.chance(50) {
                let e = &d.regions[rng.below(d.regions.len())].example;
                if rng.chance(50) {
                    caller = e.caller.clone();
                } else {
                    op = (e.method.as_str(), e.host.as_str(), e.path.as_str());
                }
            }
            let (m, h, p) = op;
            let o = decide(&old.policy, &caller, m, h, p).decided;
            let n = decide(&new.policy, &caller, m, h, p).decided;
            let found = d
                .regions_containing(&sides, &caller, m, h, p)
                .unwrap_or_else(|e| {
                    panic!(
                        "{e}\nold {}\nnew {}",
                        serde_json::to_string(&old.config).unwrap(),
                        serde_json::to_string(&new.config).unwrap()
                    )
                });
            if o == n {
                same += 1;
                assert!(
                    found.is_empty(),
                    "{m} {h} {p} {caller:?} decided the same ({o:?}) but lies in {:?}",
                    found[0].region
                );
            } else {
                differing += 1;
                assert!(
                    !found.is_empty(),
                    "{m} {h} {p} {caller:?}: {o:?} -> {n:?} is in no region\nold {}\nnew {}",
                    serde_json::to_string(&old.config).unwrap(),
                    serde_json::to_string(&new.config).unwrap()
                );
                for f in found {
                    assert!(
                        f.region.pairs.contains(&(o, n)),
                        "{m} {h} {p} {caller:?}: {o:?} -> {n:?} not in {:?}",
                        f.region.pairs
                    );
                }
            }
        }
    }
    eprintln!("stats: {pairs} pairs, {differing} differing, {same} same, {regions} regions");
    // The samples must exercise both outcomes, or the test proves nothing.
    assert!(
        differing > 5_000 && same > 20_000 && regions > 500,
        "{differing} differing, {same} same, {regions} regions"
    );
}
