//! `oam-authz diff` and `oam-authz test --coverage` end to end through the
//! binary: exit codes, the three outputs, `REV:PATH` inputs from git, and
//! every example `explain` replays with the decisions the diff reported.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oam-authz"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn run(args: &[&str]) -> Output {
    run_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// (old, new, exit code): every revision pair of examples/diff.
const PAIRS: [(&str, &str, i32); 4] = [
    ("examples/shop/app.yaml", "examples/diff/shop-v2.yaml", 4),
    (
        "examples/deploy-api/app.yaml",
        "examples/diff/deploy-api-v2.yaml",
        4,
    ),
    (
        "examples/artifact-store/app.yaml",
        "examples/diff/artifact-store-v2.yaml",
        4,
    ),
    ("examples/shop/app.yaml", "examples/shop/app.yaml", 0),
];

#[test]
fn exit_codes_say_whether_access_widened() {
    for (old, new, code) in PAIRS {
        let o = run(&["diff", old, new]);
        assert_eq!(
            o.status.code(),
            Some(code),
            "{old} {new}\n{}{}",
            out(&o),
            err(&o)
        );
    }
    // The reverse of a widening is a narrowing (and, here, nothing widens).
    let o = run(&[
        "diff",
        "examples/diff/artifact-store-v2.yaml",
        "examples/artifact-store/app.yaml",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", out(&o));
    assert!(
        out(&o).contains("[1] narrowed: allow 200 role_granted -> deny 403 role_required"),
        "{}",
        out(&o)
    );
    assert!(
        out(&o).ends_with("result: access narrowed, none widened (exit 3)\n"),
        "{}",
        out(&o)
    );
}

#[test]
fn text_shows_who_what_how_and_the_example() {
    let o = run(&[
        "diff",
        "examples/artifact-store/app.yaml",
        "examples/diff/artifact-store-v2.yaml",
    ]);
    let t = out(&o);
    for want in [
        "component artifact-store/store: 1 region (1 widened)",
        "    tekton-release (new): peer spiffe://cluster.local/ns/ci/* AND a token of https://kubernetes.default.svc.cluster.local with sub equals \"system:serviceaccount:ci:tekton-release\"",
        "  [1] widened: deny 403 role_required -> allow 200 role_granted",
        "      who:     holds tekton-release (new); does not hold tekton-release (old)",
        "      what:    PUT; any host; /artifacts/releases/{**}",
        "               old: deny 403 role_required, rule 'push-releases'",
        "               new: allow 200 role_granted, rule 'push-releases'",
        "result: access widened (exit 4)",
    ] {
        assert!(t.contains(want), "missing {want:?} in\n{t}");
    }
}

/// Each region's example, replayed with `oam-authz explain` on both
/// revisions, gets the decisions the diff reported.
#[test]
fn explain_replays_every_example() {
    let mut replayed = 0;
    for (old, new, _) in PAIRS {
        let o = run(&["diff", old, new, "--output", "json"]);
        let report: Value = serde_json::from_str(&out(&o)).unwrap();
        for c in report["components"].as_array().unwrap() {
            for r in c["regions"].as_array().unwrap() {
                let e = &r["example"];
                assert_eq!(e["confirmed"], true, "{e}");
                let Some(args) = e["explain_args"].as_str() else {
                    continue;
                };
                for (file, side) in [(old, "old"), (new, "new")] {
                    let cmd = format!(
                        "'{}' explain {file} {args}",
                        env!("CARGO_BIN_EXE_oam-authz")
                    );
                    let x = Command::new("bash")
                        .arg("-c")
                        .arg(&cmd)
                        .current_dir(env!("CARGO_MANIFEST_DIR"))
                        .output()
                        .unwrap();
                    let text = out(&x);
                    let want = &e[side];
                    let line = format!(
                        "decision:  {} {} {}",
                        want["decision"].as_str().unwrap().to_uppercase(),
                        want["status"],
                        want["reason"].as_str().unwrap()
                    );
                    assert!(text.contains(&line), "{cmd}: want {line}\n{text}");
                    replayed += 1;
                }
            }
        }
    }
    assert!(replayed >= 16, "only {replayed} explain runs");
}

#[test]
fn json_and_markdown_carry_the_same_regions() {
    let args = [
        "diff",
        "examples/shop/app.yaml",
        "examples/diff/shop-v2.yaml",
    ];
    let j: Value =
        serde_json::from_str(&out(&run(&[&args[..], &["-o", "json"]].concat()))).unwrap();
    assert_eq!(j["change"], "widened");
    assert_eq!(j["exit_code"], 4);
    let orders = j["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["component"] == "orders")
        .unwrap();
    let regions = orders["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 7);
    assert_eq!(regions[0]["change"], "widened");
    assert_eq!(
        regions[0]["who"]["holds"],
        serde_json::json!(["support-agents"])
    );
    assert_eq!(
        regions[0]["what"][0]["paths"]["matching"],
        serde_json::json!(["/admin/orders/{**}"])
    );
    assert_eq!(
        regions[0]["what"][0]["paths"]["except"],
        serde_json::json!(["/admin/orders/{*}"])
    );
    let md = out(&run(&[&args[..], &["-o", "markdown"]].concat()));
    assert!(
        md.starts_with("### oam-authz diff: access widened\n"),
        "{md}"
    );
    assert!(md.contains("| **widened** | holds support-agents | `GET; any host; /admin/orders/{**} except /admin/orders/{*}` |"), "{md}");
    assert_eq!(md.matches("| **").count(), 7, "{md}");
    assert!(
        md.contains("No change: `shop/frontend`, `shop/payments`."),
        "{md}"
    );
}

fn git(dir: &Path, args: &[&str]) {
    let o = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "git {args:?}: {}", err(&o));
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oam-authz-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn either_side_may_be_a_git_revision() {
    let dir = scratch("diff-git");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    git(&dir, &["init", "-q", "-b", "main"]);
    std::fs::copy(
        root.join("examples/artifact-store/app.yaml"),
        dir.join("app.yaml"),
    )
    .unwrap();
    git(&dir, &["add", "app.yaml"]);
    git(
        &dir,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-q",
            "-m",
            "v1",
        ],
    );
    std::fs::copy(
        root.join("examples/diff/artifact-store-v2.yaml"),
        dir.join("app.yaml"),
    )
    .unwrap();
    let o = run_in(&dir, &["diff", "HEAD:app.yaml", "app.yaml"]);
    assert_eq!(o.status.code(), Some(4), "{}{}", out(&o), err(&o));
    assert!(
        out(&o).starts_with("oam-authz diff HEAD:app.yaml -> app.yaml\n"),
        "{}",
        out(&o)
    );
    let o = run_in(&dir, &["diff", "HEAD:app.yaml", "HEAD:app.yaml"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let o = run_in(&dir, &["diff", "HEAD~3:app.yaml", "app.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).starts_with("error: HEAD~3:app.yaml: git show failed: "),
        "{}",
        err(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plugin_configs_diff_like_applications() {
    let dir = scratch("diff-plugin");
    let old = "examples/shop/compiled/envoy/oam-authz-shop-orders.json";
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(old)).unwrap();
    let new = dir.join("orders.json");
    std::fs::write(
        &new,
        text.replace("\"/admin/orders/{*}\"", "\"/admin/orders/{**}\""),
    )
    .unwrap();
    let o = run(&["diff", old, new.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(4), "{}", err(&o));
    assert!(
        out(&o).contains("component plugin-config/policy: 1 region (1 widened)"),
        "{}",
        out(&o)
    );
    // No explain line: explain reads applications, not plugin configs.
    assert!(!out(&o).contains("explain:"), "{}", out(&o));
    let o = run(&["diff", old, "examples/shop/app.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("compare an OAM application with an OAM application"),
        "{}",
        err(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn one_side_may_come_from_stdin() {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_oam-authz"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["diff", "-", "examples/diff/artifact-store-v2.yaml"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let app = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/artifact-store/app.yaml"),
    )
    .unwrap();
    child.stdin.take().unwrap().write_all(&app).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(4));
    assert!(
        out(&o).starts_with("oam-authz diff - -> examples/diff/artifact-store-v2.yaml\n"),
        "{}",
        out(&o)
    );
}

#[test]
fn bad_inputs_are_refused() {
    let o = run(&["diff", "nope.yaml", "examples/shop/app.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(err(&o), "error: nope.yaml: no such file (a git revision is written REV:PATH, e.g. HEAD~1:app.yaml)\n");
    let o = run(&[
        "diff",
        "examples/shop/app.yaml",
        "examples/shop/app.yaml",
        "--component",
        "nope",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        err(&o),
        "error: --component 'nope': neither revision protects a component of that name\n"
    );
    let o = run(&["diff", "examples/shop/cases.yaml", "examples/shop/app.yaml"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
}

#[test]
fn coverage_lists_what_the_cases_leave_out() {
    let dir = scratch("coverage");
    let cases = dir.join("cases.yaml");
    std::fs::write(
        &cases,
        "cases:\n  - {name: health, component: store, path: /healthz, expect: {decision: allow}}\n  - {name: gc, component: store, principal: gc, method: DELETE, path: /artifacts/builds/x, expect: {decision: allow}}\n",
    )
    .unwrap();
    let app = "examples/artifact-store/app.yaml";
    let o = run(&["test", app, cases.to_str().unwrap(), "--coverage"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(out(&o).lines().last(), Some("2 passed, 0 failed"));
    let t = err(&o);
    assert!(t.contains("coverage: 2 of 13 items (15.4%)"), "{t}");
    assert!(t.contains("  component store: 2 of 13\n"), "{t}");
    assert!(
        !t.contains("rule 'prune'"),
        "covered items are not listed: {t}"
    );
    assert!(t.contains("    not covered: rule 'push-builds': no case is decided by it (spec.components[0].traits[0].properties.rules[2])"), "{t}");
    assert!(t.contains("    not covered: role 'janitor': principal one of [spiffe://cluster.local/ns/artifacts/sa/artifact-gc]: met in case 1, never failed"), "{t}");
    let o = run(&["test", app, cases.to_str().unwrap(), "--min-coverage", "20"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).ends_with("\ncoverage 15.4% is below --min-coverage 20\n"),
        "{}",
        err(&o)
    );
    let o = run(&["test", app, cases.to_str().unwrap(), "--min-coverage", "15"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let o = run(&[
        "test",
        app,
        cases.to_str().unwrap(),
        "--min-coverage",
        "120",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        err(&o),
        "error: --min-coverage 120: a percentage from 0 to 100\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_example_suite_covers_its_policy_completely() {
    for app in [
        "quickstart",
        "shop",
        "deploy-api",
        "artifact-store",
        "remote-jwks",
    ] {
        let o = run(&[
            "test",
            &format!("examples/{app}/app.yaml"),
            &format!("examples/{app}/cases.yaml"),
            "--min-coverage",
            "100",
        ]);
        assert_eq!(o.status.code(), Some(0), "{app}:\n{}{}", out(&o), err(&o));
        assert!(
            err(&o).contains("(100.0%)") && !err(&o).contains("not covered"),
            "{app}: {}",
            err(&o)
        );
    }
}
