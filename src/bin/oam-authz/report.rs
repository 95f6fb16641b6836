//! Findings for CI tools: SARIF 2.1.0 (GitHub code scanning, GitLab, Azure
//! DevOps and most IDEs) and GitLab Code Quality JSON, so a merge request
//! shows each finding on its line.

use oam_authz::oam::{Finding, Severity};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

fn level(f: &Finding) -> &'static str {
    match f.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// `path: message`, the text a reviewer sees on the line.
fn text(f: &Finding) -> String {
    if f.path.is_empty() {
        f.message.clone()
    } else {
        format!("{}: {}", f.path, f.message)
    }
}

/// A SARIF 2.1.0 log with one run: every rule seen, every finding a result.
pub fn sarif(findings: &[Finding]) -> Value {
    let mut rules: BTreeMap<String, usize> = BTreeMap::new();
    for f in findings {
        let n = rules.len();
        rules.entry(f.rule_id()).or_insert(n);
    }
    let mut ordered: Vec<(&String, &usize)> = rules.iter().collect();
    ordered.sort_by_key(|(_, i)| **i);
    let rule_defs: Vec<Value> = ordered
        .iter()
        .map(|(id, _)| {
            json!({
                "id": id,
                "shortDescription": {"text": format!("oam-authz validate: {id}")},
                "help": {"text": "see docs/cli.md, \"oam-authz validate\""},
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let id = f.rule_id();
            let mut region = serde_json::Map::new();
            if let Some(p) = f.pos {
                region.insert("startLine".into(), json!(p.line));
                region.insert("startColumn".into(), json!(p.column));
            } else {
                region.insert("startLine".into(), json!(1));
            }
            json!({
                "ruleId": id,
                "ruleIndex": rules.get(&id).copied().unwrap_or(0),
                "level": level(f),
                "message": {"text": text(f)},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.file.replace('\\', "/")},
                        "region": Value::Object(region),
                    },
                    "logicalLocations": [{"fullyQualifiedName": f.path, "kind": "member"}],
                }],
                "partialFingerprints": {"oamAuthz/v1": fingerprint(f)},
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "oam-authz",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rule_defs,
            }},
            "results": results,
        }],
    })
}

/// Stable across runs and line moves: file, field path and message.
fn fingerprint(f: &Finding) -> String {
    let digest = Sha256::digest(format!("{}\n{}\n{}", f.file, f.path, f.message).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// GitLab Code Quality (`artifacts:reports:codequality`): a JSON array.
pub fn code_quality(findings: &[Finding]) -> Value {
    Value::Array(
        findings
            .iter()
            .map(|f| {
                json!({
                    "description": text(f),
                    "check_name": f.rule_id(),
                    "fingerprint": fingerprint(f),
                    "severity": match f.severity {
                        Severity::Error => "major",
                        Severity::Warning => "minor",
                    },
                    "location": {
                        "path": f.file,
                        "lines": {"begin": f.pos.map_or(1, |p| p.line)},
                    },
                })
            })
            .collect(),
    )
}
