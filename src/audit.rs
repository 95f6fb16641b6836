//! Audit events: one JSON line per decision, tied to the proven identity.
//! The token itself never appears; only its `iss` and `sub`.

use crate::config::Mode;
use crate::decision::Decision;
use crate::json::write as json;
use crate::pattern::spiffe::SpiffeId;
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
    pub peer: Option<&'a str>,
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
        peer: d.identity.peer.as_ref().map(SpiffeId::as_str),
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
#[cfg(test)]
pub fn line(ev: &AuditEvent<'_>) -> String {
    let mut out = String::new();
    write(&mut out, ev);
    out
}

/// Append the audit line to `out`. Keys and punctuation are literal text;
/// only the values are escaped (this runs once per request).
pub fn write(out: &mut String, ev: &AuditEvent<'_>) {
    let opt = |out: &mut String, v: Option<&str>| match v {
        Some(v) => json::string(out, v),
        None => out.push_str("null"),
    };
    out.reserve(
        AUDIT_PREFIX.len()
            + 200
            + ev.policy.len()
            + ev.host.len()
            + ev.path.len()
            + ev.request_id.len()
            + ev.peer.map_or(0, str::len)
            + ev.sub.map_or(0, str::len)
            + ev.iss.map_or(0, str::len),
    );
    out.push_str(AUDIT_PREFIX);
    out.push_str("{\"ts\":\"");
    out.push_str(&ev.ts);
    out.push_str("\",\"request_id\":");
    json::string(out, ev.request_id);
    out.push_str(",\"policy\":");
    json::string(out, ev.policy);
    out.push_str(",\"mode\":\"");
    out.push_str(ev.mode);
    out.push_str("\",\"decision\":\"");
    out.push_str(ev.decision);
    out.push_str("\",\"status\":");
    json::u64(out, u64::from(ev.status));
    out.push_str(",\"reason\":\"");
    out.push_str(ev.reason);
    out.push_str("\",\"rule\":");
    opt(out, ev.rule);
    out.push_str(",\"roles\":[");
    for (i, r) in ev.roles.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::string(out, r);
    }
    out.push_str("],\"peer\":");
    opt(out, ev.peer);
    out.push_str(",\"iss\":");
    opt(out, ev.iss);
    out.push_str(",\"sub\":");
    opt(out, ev.sub);
    out.push_str(",\"method\":");
    json::string(out, ev.method);
    out.push_str(",\"host\":");
    json::string(out, ev.host);
    out.push_str(",\"path\":");
    json::string(out, ev.path);
    out.push('}');
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
    // Digits by hand: `format!` costs more than the rest of the event.
    let mut out = String::with_capacity(24);
    let fields = [
        ('\0', y.clamp(0, 9999) as u64, 4),
        ('-', m as u64, 2),
        ('-', d as u64, 2),
        ('T', sod / 3600, 2),
        (':', (sod / 60) % 60, 2),
        (':', sod % 60, 2),
        ('.', ms % 1000, 3),
    ];
    for (sep, v, n) in fields {
        if sep != '\0' {
            out.push(sep);
        }
        for i in (0..n).rev() {
            out.push(char::from(b'0' + ((v / 10u64.pow(i)) % 10) as u8));
        }
    }
    out.push('Z');
    out
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
