//! Reading the plugin configuration from JSON text, strictly: unknown
//! fields, wrong types and unknown variants are refused with the field path,
//! in serde's wording (`rules[0].pathz: unknown field `pathz`, expected one
//! of ...`), and every such problem is reported, not only the first.
//!
//! Hand-written over `json::read` instead of serde so that the filter
//! carries no serde deserializer (docs/performance.md "Module size"). A
//! native test checks that it accepts exactly what the serde derives on
//! these types accept, with the same values.

use super::types::{
    ClaimCondition, Effect, ForwardConfig, JwtCondition, Mode, PeerIdentitySource, PluginConfig,
    ProviderConfig, RemoteJwksConfig, RoleConfig, RuleConfig, SignatureBackendMode, TokenSource,
};
use crate::error::{Diagnostic, Diagnostics, FieldPath, Problem};
use crate::json::read::parse_value;
use crate::json::{Map, Value};
use std::collections::BTreeMap;

/// Nesting cap for configuration documents (JWKS members sit at depth ~6).
const MAX_DEPTH: usize = 32;

/// Parse the configuration text; every syntax or shape problem is reported.
pub fn parse(text: &str) -> Result<PluginConfig, Diagnostics> {
    let value = parse_value(text.as_bytes(), MAX_DEPTH).map_err(|e| {
        Diagnostics::from(Diagnostic::error(
            FieldPath::root(),
            Problem::Syntax(e.to_string()),
        ))
    })?;
    let mut d = Diagnostics::new();
    let cfg = plugin_config(&mut d, &value, &FieldPath::root());
    match cfg {
        Some(cfg) if !d.has_errors() => Ok(cfg),
        _ => Err(d),
    }
}

/// serde's words for what a value is: `string "x"`, `integer `5``, ...
fn unexpected(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) if n.is_f64() => {
            format!("floating point `{}`", crate::json::write::to_text(v))
        }
        Value::Number(_) => format!("integer `{}`", crate::json::write::to_text(v)),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "a sequence".into(),
        Value::Object(_) => "a map".into(),
    }
}

fn syntax(d: &mut Diagnostics, path: &FieldPath, msg: String) {
    d.error(path.clone(), Problem::Syntax(msg));
}

fn invalid_type(d: &mut Diagnostics, path: &FieldPath, v: &Value, expected: &str) {
    syntax(
        d,
        path,
        format!("invalid type: {}, expected {expected}", unexpected(v)),
    );
}

fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.as_slice() {
        [] => "nothing".into(),
        [one] => one.clone(),
        [a, b] => format!("{a} or {b}"),
        _ => format!("one of {}", quoted.join(", ")),
    }
}

/// An object's fields, read one by one; unknown ones are refused up front.
struct Fields<'v> {
    map: &'v Map<String, Value>,
    path: FieldPath,
}

impl<'v> Fields<'v> {
    fn new(
        d: &mut Diagnostics,
        v: &'v Value,
        path: &FieldPath,
        name: &str,
        known: &[&'static str],
    ) -> Option<Fields<'v>> {
        let Value::Object(map) = v else {
            invalid_type(d, path, v, &format!("struct {name}"));
            return None;
        };
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                syntax(
                    d,
                    &path.key(key),
                    format!("unknown field `{key}`, expected {}", one_of(known)),
                );
            }
        }
        Some(Fields {
            map,
            path: path.clone(),
        })
    }

    fn at(&self, name: &'static str) -> FieldPath {
        self.path.field(name)
    }

    /// Present and not null (serde reads `null` as an absent `Option`).
    fn opt(&self, name: &'static str) -> Option<&'v Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn required(&self, d: &mut Diagnostics, name: &'static str) -> Option<&'v Value> {
        let v = self.map.get(name);
        if v.is_none() {
            syntax(d, &self.path, format!("missing field `{name}`"));
        }
        v
    }

    fn string(&self, d: &mut Diagnostics, name: &'static str) -> Option<String> {
        let v = self.required(d, name)?;
        string(d, v, &self.at(name))
    }

    fn opt_string(&self, d: &mut Diagnostics, name: &'static str) -> Option<String> {
        string(d, self.opt(name)?, &self.at(name))
    }

    fn opt_u64(&self, d: &mut Diagnostics, name: &'static str) -> Option<u64> {
        let v = self.opt(name)?;
        let n = v.as_u64();
        if n.is_none() {
            invalid_type(d, &self.at(name), v, "u64");
        }
        n
    }

    /// A boolean that defaults to false when absent (`null` is refused).
    fn flag(&self, d: &mut Diagnostics, name: &'static str) -> bool {
        match self.map.get(name) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                invalid_type(d, &self.at(name), v, "a boolean");
                false
            }
        }
    }

    fn opt_strings(&self, d: &mut Diagnostics, name: &'static str) -> Option<Vec<String>> {
        list(d, self.opt(name)?, &self.at(name), string)
    }

    /// A list that defaults to empty when absent (`null` is refused).
    fn strings_or_empty(&self, d: &mut Diagnostics, name: &'static str) -> Vec<String> {
        match self.map.get(name) {
            None => Vec::new(),
            Some(v) => list(d, v, &self.at(name), string).unwrap_or_default(),
        }
    }

    fn items<T>(
        &self,
        d: &mut Diagnostics,
        name: &'static str,
        item: impl Fn(&mut Diagnostics, &Value, &FieldPath) -> Option<T>,
    ) -> Option<Vec<T>> {
        let v = self.required(d, name)?;
        list(d, v, &self.at(name), item)
    }

    /// A list of structs that defaults to empty when absent.
    fn items_or_empty<T>(
        &self,
        d: &mut Diagnostics,
        name: &'static str,
        item: impl Fn(&mut Diagnostics, &Value, &FieldPath) -> Option<T>,
    ) -> Vec<T> {
        match self.map.get(name) {
            None => Vec::new(),
            Some(v) => list(d, v, &self.at(name), item).unwrap_or_default(),
        }
    }

    /// A unit-variant enum (`"enforce"`), its default when absent.
    fn variant<T: Copy + Default>(
        &self,
        d: &mut Diagnostics,
        name: &'static str,
        variants: &[(&'static str, T)],
    ) -> T {
        let Some(v) = self.map.get(name) else {
            return T::default();
        };
        let names: Vec<&str> = variants.iter().map(|(n, _)| *n).collect();
        match v.as_str() {
            Some(s) => match variants.iter().find(|(n, _)| *n == s) {
                Some((_, t)) => *t,
                None => {
                    syntax(
                        d,
                        &self.at(name),
                        format!("unknown variant `{s}`, expected {}", one_of(&names)),
                    );
                    T::default()
                }
            },
            None => {
                invalid_type(d, &self.at(name), v, "a variant name");
                T::default()
            }
        }
    }
}

fn string(d: &mut Diagnostics, v: &Value, path: &FieldPath) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        other => {
            invalid_type(d, path, other, "a string");
            None
        }
    }
}

/// Every item read (items with problems are reported and left out; the
/// caller's result is discarded when there are errors).
fn list<T>(
    d: &mut Diagnostics,
    v: &Value,
    path: &FieldPath,
    item: impl Fn(&mut Diagnostics, &Value, &FieldPath) -> Option<T>,
) -> Option<Vec<T>> {
    let Value::Array(items) = v else {
        invalid_type(d, path, v, "a sequence");
        return None;
    };
    Some(
        items
            .iter()
            .enumerate()
            .filter_map(|(i, x)| item(d, x, &path.index(i)))
            .collect(),
    )
}

fn plugin_config(d: &mut Diagnostics, v: &Value, path: &FieldPath) -> Option<PluginConfig> {
    const KNOWN: &[&str] = &[
        "schema_version",
        "policy_version",
        "mode",
        "trust_domain",
        "trust_domain_aliases",
        "providers",
        "roles",
        "rules",
        "forward",
        "signature_backend",
        "peer_identity",
        "allow_encoded_percent",
    ];
    let f = Fields::new(d, v, path, "PluginConfig", KNOWN)?;
    let schema_version = f.required(d, "schema_version").and_then(|v| {
        let n = v.as_u64().and_then(|n| u32::try_from(n).ok());
        if n.is_none() {
            invalid_type(d, &f.at("schema_version"), v, "u32");
        }
        n
    });
    let mode = f.variant(
        d,
        "mode",
        &[("enforce", Mode::Enforce), ("audit", Mode::Audit)],
    );
    let signature_backend = f.variant(
        d,
        "signature_backend",
        &[
            ("auto", SignatureBackendMode::Auto),
            ("wasm", SignatureBackendMode::Wasm),
            ("host", SignatureBackendMode::Host),
        ],
    );
    let peer_identity = f.variant(
        d,
        "peer_identity",
        &[
            ("auto", PeerIdentitySource::Auto),
            ("connection", PeerIdentitySource::Connection),
            ("istio_waypoint", PeerIdentitySource::IstioWaypoint),
        ],
    );
    // Every field is read before any is found missing: all problems count.
    let policy_version = f.opt_string(d, "policy_version");
    let trust_domain = f.string(d, "trust_domain");
    let trust_domain_aliases = f.strings_or_empty(d, "trust_domain_aliases");
    let providers = f.items_or_empty(d, "providers", provider);
    let roles = f.items_or_empty(d, "roles", role);
    let rules = f.items(d, "rules", rule);
    let forward = f
        .opt("forward")
        .and_then(|v| forward(d, v, &f.at("forward")));
    let allow_encoded_percent = f.flag(d, "allow_encoded_percent");
    Some(PluginConfig {
        schema_version: schema_version?,
        policy_version,
        mode,
        trust_domain: trust_domain?,
        trust_domain_aliases,
        providers,
        roles,
        rules: rules?,
        forward,
        signature_backend,
        peer_identity,
        allow_encoded_percent,
    })
}

fn provider(d: &mut Diagnostics, v: &Value, path: &FieldPath) -> Option<ProviderConfig> {
    const KNOWN: &[&str] = &[
        "name",
        "issuer",
        "audiences",
        "algorithms",
        "jwks",
        "remote_jwks",
        "from",
        "clock_skew_seconds",
        "max_lifetime_seconds",
        "forward_token",
        "audience_claim",
        "allow_http_issuer",
    ];
    let f = Fields::new(d, v, path, "ProviderConfig", KNOWN)?;
    let name = f.string(d, "name");
    let issuer = f.string(d, "issuer");
    let audiences = f
        .required(d, "audiences")
        .and_then(|v| list(d, v, &f.at("audiences"), string));
    let algorithms = f
        .required(d, "algorithms")
        .and_then(|v| list(d, v, &f.at("algorithms"), string));
    let remote_jwks = f
        .opt("remote_jwks")
        .and_then(|v| remote_jwks(d, v, &f.at("remote_jwks")));
    let from = f
        .opt("from")
        .and_then(|v| list(d, v, &f.at("from"), token_source));
    let clock_skew_seconds = f.opt_u64(d, "clock_skew_seconds");
    let max_lifetime_seconds = f.opt_u64(d, "max_lifetime_seconds");
    let forward_token = f.flag(d, "forward_token");
    let audience_claim = f.opt_string(d, "audience_claim");
    let allow_http_issuer = f.flag(d, "allow_http_issuer");
    Some(ProviderConfig {
        name: name?,
        issuer: issuer?,
        audiences: audiences?,
        algorithms: algorithms?,
        jwks: f.opt("jwks").cloned(),
        remote_jwks,
        from,
        clock_skew_seconds,
        max_lifetime_seconds,
        forward_token,
        audience_claim,
        allow_http_issuer,
    })
}

fn remote_jwks(d: &mut Diagnostics, v: &Value, path: &FieldPath) -> Option<RemoteJwksConfig> {
    const KNOWN: &[&str] = &[
        "uri",
        "cluster",
        "refresh_seconds",
        "timeout_ms",
        "max_stale_seconds",
        "min_refetch_interval_seconds",
        "discovery",
    ];
    let f = Fields::new(d, v, path, "RemoteJwksConfig", KNOWN)?;
    let uri = f.opt_string(d, "uri");
    let cluster = f.string(d, "cluster");
    Some(RemoteJwksConfig {
        uri,
        cluster: cluster?,
        refresh_seconds: f.opt_u64(d, "refresh_seconds"),
        timeout_ms: f.opt_u64(d, "timeout_ms"),
        max_stale_seconds: f.opt_u64(d, "max_stale_seconds"),
        min_refetch_interval_seconds: f.opt_u64(d, "min_refetch_interval_seconds"),
        discovery: f.flag(d, "discovery"),
    })
}

/// Externally tagged, as serde writes it: `{"header": {...}}`, `{"query": "x"}`.
fn token_source(d: &mut Diagnostics, v: &Value, path: &FieldPath) -> Option<TokenSource> {
    const VARIANTS: &[&str] = &["header", "query", "cookie"];
    let Value::Object(map) = v else {
        invalid_type(d, path, v, "enum TokenSource");
        return None;
    };
    let mut entries = map.iter();
    let (Some((tag, inner)), None) = (entries.next(), entries.next()) else {
        syntax(
            d,
            path,
            "invalid type: map, expected map with a single key".into(),
        );
        return None;
    };
    let ipath = path.key(tag);
    match tag.as_str() {
        "header" => {
            let f = Fields::new(d, inner, &ipath, "Header", &["name", "prefix"])?;
            let name = f.string(d, "name");
            let prefix = f.opt_string(d, "prefix");
            Some(TokenSource::Header {
                name: name?,
                prefix,
            })
        }
        "query" => string(d, inner, &ipath).map(TokenSource::Query),
        "cookie" => string(d, inner, &ipath).map(TokenSource::Cookie),
        other => {
            syntax(
                d,
                path,
                format!("unknown variant `{other}`, expected {}", one_of(VARIANTS)),
            );
            None
        }
    }
}

fn role(d: &mut Diagnostics, v: &Value, path: &FieldPath) -> Option<RoleConfig> {
    let f = Fields::new(d, v, path, "RoleConfig", &["name", "principals", "jwt"])?;
    let name = f.string(d, "name");
    let principals = f.opt_strings(d, "principals");
    let jwt = f.opt("jwt").and_then(|v| jwt_condition(d, v, &f.at("jwt")));
    Some(RoleConfig {
        name: name?,
        principals,
        jwt,
    })
}

fn jwt_condition(d: &mut Diagnostics, v: &Value, path: &FieldPath) -> Option<JwtCondition> {
    let f = Fields::new(d, v, path, "JwtCondition", &["provider", "claims"])?;
    let provider = f.string(d, "provider");
    let claims = f.items_or_empty(d, "claims", claim_condition);
    Some(JwtCondition {
        provider: provider?,
        claims,
    })
}

fn claim_condition(d: &mut Diagnostics, v: &Value, path: &FieldPath) -> Option<ClaimCondition> {
    const KNOWN: &[&str] = &[
        "claim",
        "equals",
        "one_of",
        "contains",
        "scope_contains",
        "prefix",
    ];
    let f = Fields::new(d, v, path, "ClaimCondition", KNOWN)?;
    let claim = f.string(d, "claim");
    Some(ClaimCondition {
        claim: claim?,
        equals: f.opt("equals").cloned(),
        one_of: f.opt("one_of").and_then(|v| match v {
            Value::Array(a) => Some(a.clone()),
            other => {
                invalid_type(d, &f.at("one_of"), other, "a sequence");
                None
            }
        }),
        contains: f.opt("contains").cloned(),
        scope_contains: f.opt_string(d, "scope_contains"),
        prefix: f.opt_string(d, "prefix"),
    })
}

fn rule(d: &mut Diagnostics, v: &Value, path: &FieldPath) -> Option<RuleConfig> {
    const KNOWN: &[&str] = &[
        "name", "effect", "roles", "public", "hosts", "methods", "paths",
    ];
    let f = Fields::new(d, v, path, "RuleConfig", KNOWN)?;
    let name = f.string(d, "name");
    let effect = f.variant(
        d,
        "effect",
        &[("allow", Effect::Allow), ("deny", Effect::Deny)],
    );
    let roles = f.opt_strings(d, "roles");
    let public = f.flag(d, "public");
    let hosts = f.opt_strings(d, "hosts");
    let methods = f.opt_strings(d, "methods");
    let paths = f.opt_strings(d, "paths");
    Some(RuleConfig {
        name: name?,
        effect,
        roles,
        public,
        hosts,
        methods,
        paths,
    })
}

fn forward(d: &mut Diagnostics, v: &Value, path: &FieldPath) -> Option<ForwardConfig> {
    const KNOWN: &[&str] = &[
        "principal_header",
        "subject_header",
        "issuer_header",
        "roles_header",
        "claim_headers",
        "strip_headers",
    ];
    let f = Fields::new(d, v, path, "ForwardConfig", KNOWN)?;
    let mut claim_headers = BTreeMap::new();
    match f.map.get("claim_headers") {
        None => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                if let Some(s) = string(d, v, &f.at("claim_headers").key(k)) {
                    claim_headers.insert(k.clone(), s);
                }
            }
        }
        Some(other) => invalid_type(d, &f.at("claim_headers"), other, "a map"),
    }
    Some(ForwardConfig {
        principal_header: f.opt_string(d, "principal_header"),
        subject_header: f.opt_string(d, "subject_header"),
        issuer_header: f.opt_string(d, "issuer_header"),
        roles_header: f.opt_string(d, "roles_header"),
        claim_headers,
        strip_headers: f.strings_or_empty(d, "strip_headers"),
    })
}

#[cfg(all(test, not(target_arch = "wasm32")))]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    /// serde's reading of the same text, with its error as `path: message`.
    fn serde_read(text: &str) -> Result<PluginConfig, String> {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            format!("{path}: {}", e.into_inner())
        })
    }

    fn examples() -> Vec<Value> {
        let mut out = Vec::new();
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
        for app in std::fs::read_dir(root).unwrap() {
            let dir = app.unwrap().path().join("compiled/envoy");
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for f in entries {
                let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
                out.push(serde_json::from_str(&text).unwrap());
            }
        }
        assert!(out.len() >= 4, "example configs found: {}", out.len());
        out
    }

    /// Every edit of every example config at every path: remove it, set it to
    /// null, to a string, a number, a boolean, a list, an object, and add an
    /// unknown field next to it. Both readers accept the same, with equal
    /// values; where serde refuses, we refuse at the same path.
    #[test]
    fn accepts_exactly_what_serde_accepts() {
        fn paths(v: &Value, here: Vec<String>, out: &mut Vec<Vec<String>>) {
            out.push(here.clone());
            match v {
                Value::Object(m) => {
                    for (k, x) in m {
                        let mut p = here.clone();
                        p.push(k.clone());
                        paths(x, p, out);
                    }
                }
                Value::Array(a) => {
                    for (i, x) in a.iter().enumerate().take(3) {
                        let mut p = here.clone();
                        p.push(i.to_string());
                        paths(x, p, out);
                    }
                }
                _ => {}
            }
        }
        fn edit(v: &Value, path: &[String], f: &dyn Fn(&mut Value)) -> Value {
            let mut out = v.clone();
            let mut cur = &mut out;
            for seg in path {
                cur = match seg.parse::<usize>() {
                    Ok(i) if cur.is_array() => &mut cur[i],
                    _ => &mut cur[seg.as_str()],
                };
            }
            f(cur);
            out
        }
        let replacements: Vec<Value> = vec![
            Value::Null,
            json!("x"),
            json!(7),
            json!(-1),
            json!(1.5),
            json!(true),
            json!([]),
            json!(["a"]),
            json!({}),
            json!({"header": {"name": "x"}}),
        ];
        let mut checked = 0;
        for base in examples() {
            let mut all = Vec::new();
            paths(&base, Vec::new(), &mut all);
            for p in &all {
                let mut variants: Vec<Value> = replacements
                    .iter()
                    .map(|r| edit(&base, p, &|v| *v = r.clone()))
                    .collect();
                variants.push(edit(&base, p, &|v| {
                    if let Value::Object(m) = v {
                        m.insert("bogus".into(), json!(1));
                    }
                }));
                if let Some((last, parent)) = p.split_last() {
                    variants.push(edit(&base, parent, &|v| {
                        if let Value::Object(m) = v {
                            m.remove(last);
                        }
                    }));
                }
                for v in variants {
                    let text = v.to_string();
                    let ours = parse(&text);
                    let theirs = serde_read(&text);
                    checked += 1;
                    match (&ours, &theirs) {
                        (Ok(a), Ok(b)) => assert_eq!(a, b, "{text}"),
                        (Err(d), Err(_))
                            if d.to_string()
                                .contains("invalid type: a sequence, expected struct") => {}
                        (Err(d), Err(e)) => {
                            let lines: Vec<String> = d.iter().map(ToString::to_string).collect();
                            let (epath, emsg) = e.split_once(": ").unwrap();
                            let emsg = emsg.split(" at line ").next().unwrap();
                            let epath = if epath == "." { "" } else { epath };
                            assert!(
                                lines.iter().any(|l| l.starts_with(epath)),
                                "serde: {e}\nours: {lines:?}\n{text}"
                            );
                            // The wording matches for the messages users see most.
                            if emsg.starts_with("unknown field")
                                || emsg.starts_with("missing field")
                            {
                                let want = if epath.is_empty() {
                                    emsg.to_string()
                                } else {
                                    format!("{epath}: {emsg}")
                                };
                                assert!(lines.contains(&want), "serde: {e}\nours: {lines:?}");
                            }
                        }
                        // serde also reads a struct from a JSON list of its
                        // fields in order; we refuse that on purpose.
                        (Err(d), Ok(_))
                            if d.to_string()
                                .contains("invalid type: a sequence, expected struct") => {}
                        _ => panic!("disagree on {text}\nours: {ours:?}\nserde: {theirs:?}"),
                    }
                }
            }
        }
        assert!(checked > 1000, "{checked}");
    }

    #[test]
    fn all_problems_are_reported() {
        let text = json!({"schema_version": "1", "trust_domain": 5, "rules": [{"name": "a", "pathz": []}], "modee": 1}).to_string();
        let d = parse(&text).unwrap_err();
        let lines: Vec<String> = d.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(
            lines.contains(&"schema_version: invalid type: string \"1\", expected u32".to_string()),
            "{lines:?}"
        );
        assert!(
            lines.contains(
                &"trust_domain: invalid type: integer `5`, expected a string".to_string()
            ),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l
                    .starts_with("rules[0].pathz: unknown field `pathz`, expected one of `name`")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("modee: unknown field `modee`")),
            "{lines:?}"
        );
        let bad = parse("not json").unwrap_err().to_string();
        assert_eq!(bad, "invalid JSON: expected a value at line 1 column 1");
    }
}
