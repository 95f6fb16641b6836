//! The whole decision, structure-aware: a generated policy (roles with
//! principal patterns and claim conditions; allow, deny and public rules on
//! methods, hosts and paths; Ed25519 providers reading the token from a
//! header, a query parameter or a cookie) or raw configuration text, and a
//! generated request (path and host tricks, spoofed identity headers, garbage
//! or validly signed tokens, odd peer SPIFFE IDs), through `decide` exactly
//! as the filter calls it. Checked on every input:
//!
//! - no panic;
//! - identity never comes from a header: the decision is the same with the
//!   identity headers (ours, `x-forwarded-client-cert`, ...) removed, or set
//!   to an admin's; the peer is the given SPIFFE ID or none, and a token
//!   identity is the one token we signed validly, with its claims;
//! - audit mode does not change the engine's decision (the handler only
//!   stops enforcing it), nor does the token cache;
//! - a path hiding `//`, dot segments or encoded separators is refused;
//! - deny wins, default deny, and the exact reason and rule, against the
//!   oracle (`decision_oracle.rs`) over the configuration JSON;
//! - for a generated policy and a request with one token in one place: the
//!   token is accepted exactly when it is valid and its provider reads
//!   that place.
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use oam_authz::{
    decide, Decision, Headers, Mode, PluginConfig, Policy, Reason, Request, TokenCache,
};
use serde_json::{json, Map, Value};

#[path = "decision_oracle.rs"]
mod oracle;
use oracle::{Caller, NOW};

const NS: [&str; 5] = ["shop", "ci", "admin", "a-b", "x.y"];
const SA: [&str; 4] = ["frontend", "deployer", "default", "admin"];
const TD: [&str; 3] = ["cluster.local", "old.example.com", "partner.example"];
/// Claim paths of conditions; a token's claims use the first segment.
const CLAIMS: [&str; 6] = ["grp", "scope", "lvl", "ctx.role", "ok", "sub"];
const WORDS: [&str; 8] = [
    "admins",
    "dev",
    "read",
    "write",
    "platform/",
    "platform/tools",
    "",
    "a b",
];
const HOSTS: [&str; 5] = [
    "api.example.com",
    "example.com",
    "other.test",
    "[::1]",
    "127.0.0.1",
];
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "get"];
const SEGS: [&str; 6] = ["a", "b", "api", "v1", "x.png", "debug"];
const ENCODED: [&str; 14] = [
    "%2F", "%2f", "%2E", "%41", "%25", "%2541", "%20", "%5C", "%zz", "%00", ";x", "\\", "#f",
    "%C3%A9",
];
const ISSUERS: [&str; 2] = ["https://idp0.example.com", "https://idp1.example.com"];
const AUDIENCES: [&str; 2] = ["api://a0", "api://a1"];
/// Headers a client could set to claim an identity: none may change a decision.
const IDENTITY_HEADERS: [&str; 10] = [
    "x-forwarded-client-cert",
    "x-oam-principal",
    "x-oam-subject",
    "x-oam-issuer",
    "x-oam-roles",
    "x-oam-claim",
    "x-spiffe-id",
    "x-forwarded-for",
    "x-envoy-peer-metadata",
    "x-user",
];
const OTHER_HEADERS: [&str; 4] = ["authorization", "cookie", "x-token", "accept"];
const ADMIN: &str = "spiffe://cluster.local/ns/admin/sa/admin";

fn pick<'a>(list: &[&'a str], i: u8) -> &'a str {
    list.get(usize::from(i) % list.len())
        .copied()
        .unwrap_or_default()
}

#[derive(Arbitrary, Debug)]
struct Input {
    // The caller first: arbitrary fills fields in order, and a short input
    // still gets a token and a peer.
    token: Option<TokenIn>,
    peer: PeerIn,
    config: ConfigIn,
    request: RequestIn,
}

#[derive(Arbitrary, Debug)]
enum ConfigIn {
    Generated(Spec),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
struct Spec {
    audit: bool,
    aliases: bool,
    encoded_percent: bool,
    /// At least one provider unless `no_providers` (an mTLS-only policy).
    no_providers: bool,
    provider: ProviderSpec,
    second_provider: Option<ProviderSpec>,
    roles: Vec<RoleSpec>,
    /// At least one rule (a policy without rules is refused).
    rule: RuleSpec,
    more_rules: Vec<RuleSpec>,
    forward: Option<ForwardSpec>,
}

/// Where a token travels.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Loc {
    Bearer,
    XToken,
    Query,
    Cookie,
}

#[derive(Arbitrary, Debug)]
struct ProviderSpec {
    /// Empty: the default (`Authorization: Bearer`).
    from: Vec<Loc>,
    client_id_audience: bool,
    forward_token: bool,
}

#[derive(Arbitrary, Debug)]
struct RoleSpec {
    principals: Option<Vec<PrincipalSpec>>,
    jwt: Option<JwtSpec>,
}

#[derive(Arbitrary, Debug)]
enum PrincipalSpec {
    Any,
    Namespace(u8),
    NamespaceSa(u8),
    Workload(u8, u8),
    Full(u8, u8, u8),
    Domain(u8),
}

#[derive(Arbitrary, Debug)]
struct JwtSpec {
    provider: u8,
    claims: Vec<(u8, OpSpec)>,
}

#[derive(Arbitrary, Debug)]
enum OpSpec {
    Equals(Scalar),
    OneOf(Vec<Scalar>),
    Contains(Scalar),
    ScopeContains(u8),
    Prefix(u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Scalar {
    Word(u8),
    Int(i8),
    Bool(bool),
}

#[derive(Arbitrary, Debug)]
struct RuleSpec {
    deny: bool,
    who: Who,
    hosts: Option<Vec<HostSpec>>,
    methods: Option<Vec<u8>>,
    paths: Option<Vec<PathSpec>>,
}

#[derive(Arbitrary, Debug)]
enum Who {
    Public,
    Roles(Vec<u8>),
    Everyone,
}

#[derive(Arbitrary, Debug)]
enum HostSpec {
    Exact(u8),
    Upper(u8),
    Subdomain(u8),
}

#[derive(Arbitrary, Debug)]
enum PathSpec {
    Any,
    Exact(Vec<u8>),
    Prefix(Vec<u8>, bool),
    Suffix(u8),
    Template(Vec<TemplateSeg>),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum TemplateSeg {
    Lit(u8),
    One,
    Rest,
}

#[derive(Arbitrary, Debug)]
struct ForwardSpec {
    principal: bool,
    subject: bool,
    issuer: bool,
    roles: bool,
    claim: bool,
    strip_user: bool,
}

#[derive(Arbitrary, Debug)]
struct RequestIn {
    method: Text,
    path: PathIn,
    host: HostIn,
    headers: Vec<(Text, String)>,
}

/// One of a list of known values, or anything.
#[derive(Arbitrary, Debug)]
enum Text {
    Known(u8),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum PathIn {
    Built {
        segs: Vec<PathSeg>,
        trailing_slash: bool,
        query: Option<String>,
    },
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum PathSeg {
    Lit(u8),
    Dot,
    DotDot,
    Empty,
    Encoded(u8, u8),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum HostIn {
    Known {
        host: u8,
        upper: bool,
        port: Option<u16>,
        trailing_dot: bool,
    },
    Raw(String),
}

#[derive(Arbitrary, Debug)]
struct TokenIn {
    provider: u8,
    kind: Kind,
    kid: bool,
    sub: Option<u8>,
    claims: Vec<(u8, ClaimValue)>,
    /// Where the token is sent; more than one place is `multiple_tokens`.
    place: Place,
    more_places: Vec<Place>,
}

/// How a minted token is (in)valid.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Valid,
    Expired,
    NotYetValid,
    WrongAudience,
    WrongIssuer,
    WrongKey,
    Tampered,
    AlgNone,
    TooLongLived,
    NoExp,
}

#[derive(Arbitrary, Debug)]
enum ClaimValue {
    Scalar(Scalar),
    Text(String),
    Array(Vec<Scalar>),
    Object(Scalar),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Place {
    Bearer,
    BearerOddCase,
    XToken,
    Query,
    Cookie,
    CookieQuoted,
}

impl Place {
    fn loc(self) -> Loc {
        match self {
            Place::Bearer | Place::BearerOddCase => Loc::Bearer,
            Place::XToken => Loc::XToken,
            Place::Query => Loc::Query,
            Place::Cookie | Place::CookieQuoted => Loc::Cookie,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum PeerIn {
    None,
    Valid(u8, u8, u8),
    Upper(u8, u8, u8),
    TrailingSlash(u8, u8, u8),
    ExtraSegment(u8, u8, u8),
    TwoJoined(u8, u8, u8),
    Raw(String),
}

fn scalar(s: Scalar) -> Value {
    match s {
        Scalar::Word(w) => json!(pick(&WORDS, w)),
        Scalar::Int(i) => json!(i % 4),
        Scalar::Bool(b) => json!(b),
    }
}

fn source(loc: Loc) -> Value {
    match loc {
        Loc::Bearer => json!({"header": {"name": "authorization", "prefix": "Bearer "}}),
        Loc::XToken => json!({"header": {"name": "x-token", "prefix": "Token "}}),
        Loc::Query => json!({"query": "access_token"}),
        Loc::Cookie => json!({"cookie": "tok"}),
    }
}

/// The locations provider `p` of `spec` reads (empty: no such provider).
fn reads(spec: &Spec, p: usize) -> Vec<Loc> {
    match spec.providers().get(p) {
        Some(ps) if ps.from.is_empty() => vec![Loc::Bearer],
        Some(ps) => ps.from.iter().take(3).copied().collect(),
        _ => Vec::new(),
    }
}

impl Spec {
    fn providers(&self) -> Vec<&ProviderSpec> {
        if self.no_providers {
            return Vec::new();
        }
        std::iter::once(&self.provider)
            .chain(self.second_provider.as_ref())
            .collect()
    }
}

impl TokenIn {
    fn places(&self) -> Vec<Place> {
        std::iter::once(self.place)
            .chain(self.more_places.iter().take(2).copied())
            .collect()
    }
}

fn provider_json(i: usize, p: &ProviderSpec) -> Value {
    let mut v = json!({
        "name": format!("p{i}"), "issuer": ISSUERS[i % 2], "audiences": [AUDIENCES[i % 2]],
        "algorithms": ["EdDSA"], "jwks": oracle::jwks(i as u8 % 2), "forward_token": p.forward_token,
    });
    if !p.from.is_empty() {
        v["from"] = p.from.iter().take(3).map(|l| source(*l)).collect();
    }
    if p.client_id_audience {
        v["audience_claim"] = json!("client_id");
    }
    v
}

fn principal(p: &PrincipalSpec) -> String {
    match p {
        PrincipalSpec::Any => "*".into(),
        PrincipalSpec::Namespace(n) => format!("ns/{}/*", pick(&NS, *n)),
        PrincipalSpec::NamespaceSa(n) => format!("ns/{}/sa/*", pick(&NS, *n)),
        PrincipalSpec::Workload(n, s) => format!("ns/{}/sa/{}", pick(&NS, *n), pick(&SA, *s)),
        PrincipalSpec::Full(t, n, s) => {
            format!(
                "spiffe://{}/ns/{}/sa/{}",
                pick(&TD, *t),
                pick(&NS, *n),
                pick(&SA, *s)
            )
        }
        PrincipalSpec::Domain(t) => format!("spiffe://{}/*", pick(&TD, *t)),
    }
}

fn role_json(i: usize, r: &RoleSpec) -> Value {
    let mut v = json!({"name": format!("r{i}")});
    if let Some(ps) = &r.principals {
        v["principals"] = ps.iter().take(3).map(|p| json!(principal(p))).collect();
    }
    if let Some(j) = &r.jwt {
        let claims: Vec<Value> = j
            .claims
            .iter()
            .take(3)
            .map(|(c, op)| {
                let mut cond = json!({"claim": pick(&CLAIMS, *c)});
                let (name, value) = match op {
                    OpSpec::Equals(s) => ("equals", scalar(*s)),
                    OpSpec::OneOf(l) => ("one_of", l.iter().take(3).map(|s| scalar(*s)).collect()),
                    OpSpec::Contains(s) => ("contains", scalar(*s)),
                    OpSpec::ScopeContains(w) => ("scope_contains", json!(pick(&WORDS, *w))),
                    OpSpec::Prefix(w) => ("prefix", json!(pick(&WORDS, *w))),
                };
                cond[name] = value;
                cond
            })
            .collect();
        v["jwt"] = json!({"provider": format!("p{}", j.provider % 3), "claims": claims});
    }
    v
}

fn path_pattern(p: &PathSpec) -> String {
    let segs = |s: &[u8]| -> String {
        s.iter()
            .take(3)
            .map(|i| format!("/{}", pick(&SEGS, *i)))
            .collect()
    };
    match p {
        PathSpec::Any => "*".into(),
        PathSpec::Exact(s) if s.is_empty() => "/".into(),
        PathSpec::Exact(s) => segs(s),
        PathSpec::Prefix(s, slash) => format!(
            "{}{}*",
            segs(s),
            if *slash || s.is_empty() { "/" } else { "" }
        ),
        PathSpec::Suffix(i) => format!("*{}", pick(&[".png", "/b", "x"], *i)),
        PathSpec::Template(ts) => ts
            .iter()
            .take(4)
            .map(|t| match t {
                TemplateSeg::Lit(i) => format!("/{}", pick(&SEGS, *i)),
                TemplateSeg::One => "/{*}".into(),
                TemplateSeg::Rest => "/{**}".into(),
            })
            .collect::<String>(),
        PathSpec::Raw(s) => s.clone(),
    }
}

fn rule_json(i: usize, r: &RuleSpec, roles: usize) -> Value {
    let mut v =
        json!({"name": format!("rule{i}"), "effect": if r.deny { "deny" } else { "allow" }});
    match &r.who {
        Who::Public => v["public"] = json!(true),
        Who::Roles(rs) => {
            v["roles"] = rs
                .iter()
                .take(3)
                .map(|r| json!(format!("r{}", usize::from(*r) % roles.max(1))))
                .collect()
        }
        Who::Everyone => {}
    }
    if let Some(hs) = &r.hosts {
        v["hosts"] = hs
            .iter()
            .take(3)
            .map(|h| match h {
                HostSpec::Exact(i) => json!(pick(&HOSTS, *i)),
                HostSpec::Upper(i) => json!(pick(&HOSTS, *i).to_ascii_uppercase()),
                HostSpec::Subdomain(i) => json!(format!("*.{}", pick(&HOSTS, *i))),
            })
            .collect();
    }
    if let Some(ms) = &r.methods {
        v["methods"] = ms
            .iter()
            .take(3)
            .map(|m| json!(pick(&METHODS[..6], *m)))
            .collect();
    }
    if let Some(ps) = &r.paths {
        v["paths"] = ps.iter().take(3).map(|p| json!(path_pattern(p))).collect();
    }
    v
}

fn spec_json(s: &Spec) -> Value {
    let roles = s.roles.len().min(6);
    let mut v = json!({
        "schema_version": 1, "trust_domain": "cluster.local",
        "mode": if s.audit { "audit" } else { "enforce" },
        "providers": s.providers().into_iter().enumerate().map(|(i, p)| provider_json(i, p)).collect::<Vec<_>>(),
        "roles": s.roles.iter().take(6).enumerate().map(|(i, r)| role_json(i, r)).collect::<Vec<_>>(),
        "rules": std::iter::once(&s.rule).chain(s.more_rules.iter().take(7)).enumerate().map(|(i, r)| rule_json(i, r, roles)).collect::<Vec<_>>(),
    });
    if s.aliases {
        v["trust_domain_aliases"] = json!(["old.example.com"]);
    }
    if s.encoded_percent {
        v["allow_encoded_percent"] = json!(true);
    }
    if let Some(f) = &s.forward {
        let mut fw = Map::new();
        let mut set = |on: bool, key: &str, name: &str| {
            if on {
                fw.insert(key.into(), json!(name));
            }
        };
        set(f.principal, "principal_header", "x-oam-principal");
        set(f.subject, "subject_header", "x-oam-subject");
        set(f.issuer, "issuer_header", "x-oam-issuer");
        set(f.roles, "roles_header", "x-oam-roles");
        if f.claim {
            fw.insert("claim_headers".into(), json!({"x-oam-claim": "grp"}));
        }
        if f.strip_user {
            fw.insert("strip_headers".into(), json!(["x-user"]));
        }
        v["forward"] = Value::Object(fw);
    }
    v
}

/// The token as minted: its text and, when it is valid, its claims.
struct Minted {
    token: String,
    provider: usize,
    kind: Kind,
    claims: Map<String, Value>,
}

fn mint(t: &TokenIn) -> Minted {
    let p = usize::from(t.provider % 2);
    let mut c = Map::new();
    c.insert(
        "iss".into(),
        json!(if t.kind == Kind::WrongIssuer {
            "https://evil.example"
        } else {
            ISSUERS[p]
        }),
    );
    let aud = if t.kind == Kind::WrongAudience {
        "api://other"
    } else {
        AUDIENCES[p]
    };
    c.insert("aud".into(), json!(aud));
    c.insert("client_id".into(), json!(aud));
    let (iat, exp) = match t.kind {
        Kind::Expired => (NOW - 7200, NOW - 3600),
        Kind::TooLongLived => (NOW - 60, NOW + 200_000),
        _ => (NOW - 60, NOW + 600),
    };
    c.insert("iat".into(), json!(iat));
    if t.kind != Kind::NoExp {
        c.insert("exp".into(), json!(exp));
    }
    if t.kind == Kind::NotYetValid {
        c.insert("nbf".into(), json!(NOW + 3600));
    }
    if let Some(s) = t.sub {
        c.insert("sub".into(), json!(pick(&WORDS, s)));
    }
    for (name, value) in t.claims.iter().take(6) {
        let key = pick(&CLAIMS[..5], *name)
            .split('.')
            .next()
            .unwrap_or("x")
            .to_string();
        let v = match value {
            ClaimValue::Scalar(s) => scalar(*s),
            ClaimValue::Text(s) => json!(s.chars().take(64).collect::<String>()),
            ClaimValue::Array(l) => l.iter().take(4).map(|s| scalar(*s)).collect(),
            ClaimValue::Object(s) => json!({"role": scalar(*s)}),
        };
        c.insert(key, v);
    }
    let claims = Value::Object(c.clone());
    let kid = t.kid.then(|| format!("k{p}"));
    let mut header = json!({"alg": "EdDSA", "typ": "JWT"});
    if let Some(k) = &kid {
        header["kid"] = json!(k);
    }
    let key = oracle::test_key(if t.kind == Kind::WrongKey { 2 } else { p as u8 });
    let mut token = oracle::sign(&key.sk, &header, &claims);
    match t.kind {
        Kind::Tampered => {
            let mut other = c.clone();
            // A claim the generator never sets: the payload always changes.
            other.insert("tampered".into(), json!(true));
            let sig = token.rsplit('.').next().unwrap_or("").to_string();
            let forged = oracle::sign(&key.sk, &header, &Value::Object(other));
            let head_payload = forged.rsplit_once('.').map(|(h, _)| h).unwrap_or("");
            token = format!("{head_payload}.{sig}");
        }
        Kind::AlgNone => {
            let none = oracle::sign(&key.sk, &json!({"alg": "none", "typ": "JWT"}), &claims);
            token = format!("{}.", none.rsplit_once('.').map(|(h, _)| h).unwrap_or(""));
        }
        _ => {}
    }
    Minted {
        token,
        provider: p,
        kind: t.kind,
        claims: c,
    }
}

fn build_path(p: &PathIn) -> String {
    match p {
        PathIn::Raw(s) => s.clone(),
        PathIn::Built {
            segs,
            trailing_slash,
            query,
        } => {
            let mut out = String::new();
            for s in segs.iter().take(6) {
                out.push('/');
                match s {
                    PathSeg::Lit(i) => out.push_str(pick(&SEGS, *i)),
                    PathSeg::Dot => out.push('.'),
                    PathSeg::DotDot => out.push_str(".."),
                    PathSeg::Empty => {}
                    PathSeg::Encoded(i, e) => {
                        out.push_str(pick(&SEGS, *i));
                        out.push_str(pick(&ENCODED, *e));
                    }
                    PathSeg::Raw(r) => out.push_str(r),
                }
            }
            if out.is_empty() || *trailing_slash {
                out.push('/');
            }
            if let Some(q) = query {
                out.push('?');
                out.push_str(q);
            }
            out
        }
    }
}

fn build_host(h: &HostIn) -> String {
    match h {
        HostIn::Raw(s) => s.clone(),
        HostIn::Known {
            host,
            upper,
            port,
            trailing_dot,
        } => {
            let mut s = pick(&HOSTS, *host).to_string();
            if *upper {
                s = s.to_ascii_uppercase();
            }
            if *trailing_dot {
                s.push('.');
            }
            if let Some(p) = port {
                s.push_str(&format!(":{p}"));
            }
            s
        }
    }
}

fn build_peer(p: &PeerIn) -> Option<String> {
    let id = |t: u8, n: u8, s: u8| {
        format!(
            "spiffe://{}/ns/{}/sa/{}",
            pick(&TD, t),
            pick(&NS, n),
            pick(&SA, s)
        )
    };
    Some(match p {
        PeerIn::None => return None,
        PeerIn::Valid(t, n, s) => id(*t, *n, *s),
        PeerIn::Upper(t, n, s) => id(*t, *n, *s).to_ascii_uppercase(),
        PeerIn::TrailingSlash(t, n, s) => id(*t, *n, *s) + "/",
        PeerIn::ExtraSegment(t, n, s) => id(*t, *n, *s) + "/x",
        PeerIn::TwoJoined(t, n, s) => format!("{},{ADMIN}", id(*t, *n, *s)),
        PeerIn::Raw(s) => s.clone(),
    })
}

/// Put the token where `place` says (on the path for a query parameter).
fn place_token(place: Place, token: &str, path: &mut String, headers: &mut Vec<(String, String)>) {
    let mut h = |k: &str, v: String| headers.push((k.into(), v));
    match place {
        Place::Bearer => h("authorization", format!("Bearer {token}")),
        Place::BearerOddCase => h("authorization", format!("bEaReR   {token}  ")),
        Place::XToken => h("x-token", format!("Token {token}")),
        Place::Cookie => h("cookie", format!("a=1; tok={token}")),
        Place::CookieQuoted => h("cookie", format!("tok=\"{token}\"")),
        Place::Query => {
            path.push(if path.contains('?') { '&' } else { '?' });
            path.push_str("access_token=");
            path.push_str(token);
        }
    }
}

/// What is compared between decisions that must be the same.
#[derive(Debug, PartialEq)]
struct Summary {
    code: &'static str,
    rule: Option<usize>,
    roles: Vec<usize>,
    peer: Option<String>,
    token: Option<(usize, Map<String, Value>)>,
}

fn summary(d: &Decision) -> Summary {
    Summary {
        code: d.reason.code(),
        rule: d.rule,
        roles: d.roles.clone(),
        peer: d.identity.peer.as_ref().map(|p| p.to_string()),
        token: d
            .identity
            .token
            .as_ref()
            .map(|t| (t.provider, t.token.claims.clone())),
    }
}

struct Case<'a> {
    policy: &'a Policy,
    method: &'a str,
    path: &'a str,
    host: &'a str,
    peer: Option<&'a str>,
}

impl Case<'_> {
    fn decide(&self, headers: &[(String, String)], cache: &mut TokenCache) -> Decision {
        let headers = Headers::from_pairs(headers);
        let req = Request {
            method: self.method,
            path: self.path,
            host: self.host,
            headers: &headers,
            peer: self.peer,
            now: NOW,
            crypto: None,
        };
        decide(self.policy, &req, cache, None)
    }
}

/// Header names that are token locations of the policy (never perturbed).
fn token_headers(policy: &Policy) -> Vec<String> {
    let mut out = vec!["cookie".to_string(), "authorization".to_string()];
    for (src, _) in &policy.token_sources {
        if let Ok(v) = serde_json::to_value(src) {
            if let Some(name) = v.pointer("/header/name").and_then(Value::as_str) {
                out.push(name.to_ascii_lowercase());
            }
        }
    }
    out
}

fn run(input: &Input) {
    let (generated, spec) = match &input.config {
        ConfigIn::Generated(s) => (Some(spec_json(s)), Some(s)),
        ConfigIn::Raw(_) => (None, None),
    };
    let text = match (&generated, &input.config) {
        (Some(v), _) => v.to_string(),
        (None, ConfigIn::Raw(t)) => t.clone(),
        (None, ConfigIn::Generated(_)) => return,
    };
    let Ok(mut policy) = Policy::from_json(&text) else {
        return;
    };
    stats::count(&stats::COMPILED);
    let cfg = match generated {
        Some(v) => v,
        None => {
            // The filter's reader and the serde types must agree
            // (src/config/read.rs); the oracle reads what serde read.
            let typed: PluginConfig = serde_json::from_str(&text).unwrap_or_else(|e| {
                panic!("the filter accepted a configuration serde refuses ({e}): {text}")
            });
            serde_json::to_value(&typed).unwrap_or_default()
        }
    };

    let r = &input.request;
    let method = match &r.method {
        Text::Known(i) => pick(&METHODS, *i).to_string(),
        Text::Raw(s) => s.clone(),
    };
    let base_path = build_path(&r.path);
    let host = build_host(&r.host);
    let peer = build_peer(&input.peer);
    let mut headers: Vec<(String, String)> = r
        .headers
        .iter()
        .take(8)
        .map(|(name, value)| {
            let name = match name {
                Text::Known(i) => {
                    let all: Vec<&str> = IDENTITY_HEADERS
                        .iter()
                        .chain(&OTHER_HEADERS)
                        .copied()
                        .collect();
                    pick(&all, *i).to_string()
                }
                Text::Raw(s) => s.clone(),
            };
            (name, value.clone())
        })
        .collect();
    let tokenish = |n: &str| {
        ["authorization", "x-token", "cookie"]
            .iter()
            .any(|t| t.eq_ignore_ascii_case(n))
    };
    let clean = !headers.iter().any(|(n, _)| tokenish(n))
        && !base_path.contains("access_token")
        && input
            .token
            .as_ref()
            .is_none_or(|t| t.more_places.is_empty());
    let mut path = base_path;
    let minted = input.token.as_ref().map(mint);
    if let (Some(t), Some(m)) = (&input.token, &minted) {
        for place in t.places() {
            place_token(place, &m.token, &mut path, &mut headers);
        }
    }

    let case = Case {
        policy: &policy,
        method: &method,
        path: &path,
        host: &host,
        peer: peer.as_deref(),
    };
    let mut cache = TokenCache::new(8);
    let d = case.decide(&headers, &mut cache);
    let got = summary(&d);
    if matches!(d.reason, Reason::InvalidToken(_)) {
        stats::count(&stats::TOKEN_REFUSED);
    }

    // Identity never from a header: without the identity headers, and with
    // an admin's in all of them, the decision is the same.
    let protected = token_headers(&policy);
    let spoofable: Vec<String> = IDENTITY_HEADERS
        .iter()
        .map(|s| s.to_string())
        .chain(policy.strip_headers.iter().cloned())
        .filter(|n| !protected.contains(n))
        .collect();
    let is_spoofable = |n: &str| spoofable.iter().any(|s| s.eq_ignore_ascii_case(n));
    let mut stripped: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| !is_spoofable(n))
        .cloned()
        .collect();
    let without = summary(&case.decide(&stripped, &mut cache));
    assert_eq!(got, without, "identity headers changed the decision");
    let roles = policy
        .roles
        .iter()
        .map(|r| r.name.clone())
        .collect::<Vec<_>>()
        .join(",");
    for name in &spoofable {
        let value = match name.as_str() {
            "x-forwarded-client-cert" => format!("By={ADMIN};URI={ADMIN}"),
            "x-oam-roles" => roles.clone(),
            _ => ADMIN.to_string(),
        };
        stripped.push((name.clone(), value));
    }
    let spoofed = summary(&case.decide(&stripped, &mut cache));
    assert_eq!(
        got, spoofed,
        "spoofed identity headers changed the decision"
    );

    // Audit mode is the handler's business: the engine decides the same.
    // (The first decision verified the token; this and the two above are
    // cache hits, so a cache hit must decide as a fresh verification.)
    policy.mode = if policy.mode == Mode::Audit {
        Mode::Enforce
    } else {
        Mode::Audit
    };
    let case = Case {
        policy: &policy,
        method: &method,
        path: &path,
        host: &host,
        peer: peer.as_deref(),
    };
    let flipped = summary(&case.decide(&headers, &mut cache));
    assert_eq!(
        got, flipped,
        "the mode (or the token cache) changed the decision"
    );

    check_identity(&got, peer.as_deref(), minted.as_ref(), spec.is_some());
    check_decision(&cfg, &d, &got, &method, &path, &host);
    if let (Some(spec), true) = (spec, clean) {
        check_token_outcome(spec, &d, input.token.as_ref(), minted.as_ref());
    }
}

/// The peer is the given SPIFFE ID when well-formed, else none; a token
/// identity is the one token we signed, valid, with exactly its claims.
fn check_identity(got: &Summary, peer: Option<&str>, minted: Option<&Minted>, generated: bool) {
    let want_peer = peer.filter(|p| oracle::spiffe_parts(p).is_some());
    assert_eq!(got.peer.as_deref(), want_peer, "peer identity");
    if let Some((provider, claims)) = &got.token {
        let m = minted
            .unwrap_or_else(|| panic!("a token identity without a token we signed: {claims:?}"));
        assert_eq!(claims, &m.claims, "token claims are not the ones signed");
        if generated {
            assert_eq!(m.kind, Kind::Valid, "an invalid token was accepted");
            assert_eq!(*provider, m.provider, "token accepted for another provider");
        }
    }
}

/// Path refusal, then deny wins, default deny and the exact verdict.
fn check_decision(cfg: &Value, d: &Decision, got: &Summary, method: &str, path: &str, host: &str) {
    let canonical = oracle::operation_path(cfg, path);
    if oracle::hides_a_trick(path) {
        assert!(
            canonical.is_none(),
            "a path trick was accepted as canonical: {path:?}"
        );
    }
    assert_eq!(
        got.code == "path_not_canonical",
        canonical.is_none(),
        "path {path:?} refused or accepted wrongly"
    );
    if !d.reason.reached_authorization() {
        assert!(
            !d.allowed() && d.rule.is_none() && d.roles.is_empty(),
            "refused before authorization, yet {got:?}"
        );
        return;
    }
    let Some(path) = canonical else { return };
    stats::count(&stats::AUTHORIZED);
    if d.allowed() {
        stats::count(&stats::ALLOWED);
    }
    if got.code == "denied_by_rule" {
        stats::count(&stats::DENIED_BY_RULE);
    }
    if got.token.is_some() {
        stats::count(&stats::TOKEN_ACCEPTED);
    }
    let host = oracle::operation_host(host);
    let caller = Caller {
        peer: got.peer.as_deref(),
        token: got.token.as_ref().map(|(p, c)| (*p, c)),
    };
    let rules = cfg
        .get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let covering: Vec<&Value> = rules
        .iter()
        .filter(|r| oracle::covers(r, method, &host, path))
        .collect();
    let deny_applies = covering
        .iter()
        .any(|r| r.get("effect") == Some(&json!("deny")) && oracle::applies(cfg, r, caller));
    if deny_applies {
        assert_eq!(got.code, "denied_by_rule", "deny must win: {got:?}");
    }
    if covering.is_empty() {
        assert_eq!(got.code, "no_matching_rule", "default deny: {got:?}");
    }
    if d.allowed() {
        let rule = d.rule.and_then(|i| rules.get(i));
        assert!(
            rule.is_some_and(|r| r.get("effect") != Some(&json!("deny"))
                && covering.contains(&r)
                && oracle::applies(cfg, r, caller)),
            "allowed without an allow rule that covers and applies: {got:?}"
        );
    }
    let want = oracle::authorize(cfg, method, &host, path, caller);
    assert_eq!(
        (got.code, got.rule),
        (want.code, want.rule),
        "verdict differs from the oracle"
    );
    let held = oracle::held_roles(cfg, caller);
    if cfg.pointer("/forward/roles_header").is_some() {
        assert_eq!(got.roles, held, "forwarded roles");
    } else {
        assert!(
            got.roles.iter().all(|r| held.contains(r)),
            "roles {:?} not held ({held:?})",
            got.roles
        );
    }
}

/// One token in one place of a generated policy: accepted exactly when it
/// is valid and its provider reads that place; refused when another
/// provider reads it; ignored when nobody does.
fn check_token_outcome(
    spec: &Spec,
    d: &Decision,
    token: Option<&TokenIn>,
    minted: Option<&Minted>,
) {
    if matches!(d.reason, Reason::PathNotCanonical(_)) {
        return;
    }
    let place = token.map(|t| t.place.loc());
    let (Some(loc), Some(m)) = (place, minted) else {
        assert!(
            d.identity.token.is_none() && d.reason.reached_authorization(),
            "no token sent: {:?}",
            d.reason
        );
        return;
    };
    let readers: Vec<usize> = (0..2).filter(|p| reads(spec, *p).contains(&loc)).collect();
    if readers.is_empty() {
        assert!(
            d.identity.token.is_none() && d.reason.reached_authorization(),
            "token in an unread place: {:?}",
            d.reason
        );
    } else if m.kind == Kind::Valid && readers.contains(&m.provider) {
        let t = d
            .identity
            .token
            .as_ref()
            .unwrap_or_else(|| panic!("valid token refused: {:?}", d.reason));
        assert_eq!(t.provider, m.provider);
    } else {
        assert!(
            matches!(d.reason, Reason::InvalidToken(_)),
            "{:?} token not refused: {:?}",
            m.kind,
            d.reason
        );
    }
}

/// How far inputs get, printed every 2^16 inputs when DECISION_STATS is set
/// (to see that the checks above are reached, not only passed).
mod stats {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    pub static INPUTS: AtomicU64 = AtomicU64::new(0);
    pub static COMPILED: AtomicU64 = AtomicU64::new(0);
    pub static AUTHORIZED: AtomicU64 = AtomicU64::new(0);
    pub static ALLOWED: AtomicU64 = AtomicU64::new(0);
    pub static DENIED_BY_RULE: AtomicU64 = AtomicU64::new(0);
    pub static TOKEN_ACCEPTED: AtomicU64 = AtomicU64::new(0);
    pub static TOKEN_REFUSED: AtomicU64 = AtomicU64::new(0);

    pub fn count(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    pub fn report() {
        let n = INPUTS.fetch_add(1, Relaxed) + 1;
        if n % 65_536 == 0 && std::env::var_os("DECISION_STATS").is_some() {
            let g = |c: &AtomicU64| c.load(Relaxed);
            eprintln!(
                "decision stats: inputs {n} compiled {} authorized {} allowed {} denied_by_rule {} token_accepted {} token_refused {}",
                g(&COMPILED), g(&AUTHORIZED), g(&ALLOWED), g(&DENIED_BY_RULE), g(&TOKEN_ACCEPTED), g(&TOKEN_REFUSED)
            );
        }
    }
}

fuzz_target!(|input: Input| {
    run(&input);
    stats::report();
});
