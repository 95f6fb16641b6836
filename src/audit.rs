//! Audit events: one JSON line per decision, tied to the proven identity.
//! The token itself never appears; only its `iss` and `sub`.

use crate::config::Mode;
use crate::decision::Decision;
use crate::json::write::Object;
use crate::policy::Policy;

/// Prefix of every audit line in Envoy's log, so operators can grep for it.
pub const AUDIT_PREFIX: &str = "oam-authz-audit ";

#[derive(Debug)]
pub struct AuditEvent<'a> {
    pub ts: String,
    pub request_id: &'a str,
    pub policy: &'a str,
    pub mode: &'static str,
    /// `allow`, `deny` or `audit_deny`.
    pub decision: &'static str,
    pub status: u16,
    pub reason: &'static str,
    pub rule: Option<&'a str>,
    pub roles: Vec<&'a str>,
    pub peer: Option<String>,
    pub iss: Option<&'a str>,
    pub sub: Option<&'a str>,
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
}

/// What the filter does with a decision, given the mode.
pub fn verdict(policy: &Policy, d: &Decision) -> &'static str {
    match (d.allowed(), policy.mode) {
        (true, _) => "allow",
        (false, Mode::Enforce) => "deny",
        (false, Mode::Audit) => "audit_deny",
    }
}

#[allow(clippy::too_many_arguments)]
pub fn event<'a>(
    policy: &'a Policy,
    d: &'a Decision,
    now_ms: u64,
    request_id: &'a str,
    method: &'a str,
    host: &'a str,
    path: &'a str,
) -> AuditEvent<'a> {
    let token = d.identity.token.as_ref();
    AuditEvent {
        ts: rfc3339_millis(now_ms),
        request_id,
        policy: &policy.version,
        mode: match policy.mode {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        },
        decision: verdict(policy, d),
        status: d.status(),
        reason: d.reason.code(),
        rule: policy.rule_name(d.rule),
        roles: policy.role_names(&d.roles),
        peer: d.identity.peer.as_ref().map(|p| p.to_string()),
        iss: token.map(|t| t.token.issuer.as_str()),
        sub: token.and_then(|t| t.token.subject.as_deref()),
        method,
        host,
        // The query can carry a token (`?access_token=`): never log it.
        path: path.split('?').next().unwrap_or(""),
    }
}

/// The audit line, prefix included: one compact JSON object, fields in a
/// fixed order.
pub fn line(ev: &AuditEvent<'_>) -> String {
    let mut out = String::with_capacity(320);
    out.push_str(AUDIT_PREFIX);
    Object::new(&mut out)
        .str("ts", &ev.ts)
        .str("request_id", ev.request_id)
        .str("policy", ev.policy)
        .str("mode", ev.mode)
        .str("decision", ev.decision)
        .u64("status", u64::from(ev.status))
        .str("reason", ev.reason)
        .opt_str("rule", ev.rule)
        .strs("roles", ev.roles.iter().copied())
        .opt_str("peer", ev.peer.as_deref())
        .opt_str("iss", ev.iss)
        .opt_str("sub", ev.sub)
        .str("method", ev.method)
        .str("host", ev.host)
        .str("path", ev.path)
        .end();
    out
}

/// `2026-11-22T03:07:30.123Z` from Unix milliseconds (proleptic Gregorian, UTC).
pub fn rfc3339_millis(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_795_230_450_123),
            "2026-11-21T03:07:30.123Z"
        );
        assert_eq!(
            rfc3339_millis(4_102_444_799_999),
            "2099-12-31T23:59:59.999Z"
        );
    }
}
