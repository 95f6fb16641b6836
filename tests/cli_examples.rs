//! The example applications: their checked-in compiled output must be what
//! `oam-authz compile` produces now (byte for byte), and their policy test
//! cases must pass. Regenerate with `examples/regenerate.sh`.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXAMPLES: &[&str] = &[
    "shop",
    "deploy-api",
    "artifact-store",
    "remote-jwks",
    "quickstart",
];
const URL: &str = "oci://registry.example.com/oam-authz/filter:0.1.0";

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_oam-authz"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn run(args: &[&str]) -> Output {
    match bin().args(args).output() {
        Ok(o) => o,
        Err(e) => panic!("cannot run oam-authz {args:?}: {e}"),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oam-authz-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                out.push(rel.to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn checked_in_output_matches_compile() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for app in EXAMPLES {
        let src = format!("examples/{app}/app.yaml");
        let out = scratch(app);
        let envoy = out.join("envoy");
        let (o, e) = (
            out.to_string_lossy().to_string(),
            envoy.to_string_lossy().to_string(),
        );
        let a = run(&[
            "compile",
            &src,
            "--url",
            URL,
            "--namespace-default",
            "--idp-manifests",
            "--out-dir",
            &o,
        ]);
        assert!(a.status.success(), "{app}: {}", text(&a.stderr));
        let b = run(&["compile", &src, "--format", "envoy", "--out-dir", &e]);
        assert!(b.status.success(), "{app}: {}", text(&b.stderr));
        let x = run(&["export-istio", &src]);
        assert!(x.status.success(), "{app}: {}", text(&x.stderr));
        if let Err(err) = std::fs::write(out.join("istio-native.yaml"), &x.stdout) {
            panic!("{err}");
        }

        let checked_in = root.join(format!("examples/{app}/compiled"));
        assert_eq!(
            files(&checked_in),
            files(&out),
            "{app}: the set of compiled files changed; run examples/regenerate.sh"
        );
        for f in files(&out) {
            assert!(
                read(&checked_in.join(&f)) == read(&out.join(&f)),
                "examples/{app}/compiled/{} drifted from `oam-authz compile`; run examples/regenerate.sh and review the diff",
                f.display()
            );
        }
        let _ = std::fs::remove_dir_all(&out);
    }
}

#[test]
fn compile_is_deterministic() {
    for app in EXAMPLES {
        let src = format!("examples/{app}/app.yaml");
        let a = run(&["compile", &src, "--url", URL]);
        let b = run(&["compile", &src, "--url", URL]);
        assert!(a.status.success(), "{}", text(&a.stderr));
        assert_eq!(a.stdout, b.stdout, "{app}: two runs differ");
        assert!(text(&a.stdout).contains("kind: WasmPlugin"));
    }
}

#[test]
fn example_policy_tests_pass() {
    for app in EXAMPLES {
        let o = run(&[
            "test",
            &format!("examples/{app}/app.yaml"),
            &format!("examples/{app}/cases.yaml"),
        ]);
        let stdout = text(&o.stdout);
        assert!(o.status.success(), "{app}:\n{stdout}{}", text(&o.stderr));
        let last = stdout.lines().last().unwrap_or_default().to_string();
        assert!(last.ends_with(" passed, 0 failed"), "{app}: {last}");
        assert!(!stdout.contains("FAIL"), "{app}:\n{stdout}");
    }
}

#[test]
fn examples_validate_without_findings() {
    let args: Vec<String> = EXAMPLES
        .iter()
        .map(|a| format!("examples/{a}/app.yaml"))
        .collect();
    let mut cmd = bin();
    cmd.arg("validate").arg("--strict").args(&args);
    let o = match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    assert_eq!(text(&o.stdout), "");
}

#[test]
fn every_compiled_plugin_config_loads_in_the_engine() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for app in EXAMPLES {
        let dir = root.join(format!("examples/{app}/compiled/envoy"));
        for f in files(&dir) {
            let cfg = read(&dir.join(&f));
            if let Err(e) = oam_authz::Policy::from_json(&cfg) {
                panic!("{app}/{}: {e}", f.display());
            }
        }
    }
}

#[test]
fn rollout_manifests_match_compile() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (dir, mode, ambient) in [
        ("istio/rollout/plain/1-audit", Some("audit"), false),
        ("istio/rollout/plain/2-enforce", Some("enforce"), false),
        ("istio/rollout/kustomize/base", None, false),
        ("istio/rollout/ambient/1-audit", Some("audit"), true),
        ("istio/rollout/ambient/2-enforce", Some("enforce"), true),
    ] {
        let out = scratch(&dir.replace('/', "-"));
        let o = out.to_string_lossy().to_string();
        let mut args = vec![
            "compile",
            "examples/shop/app.yaml",
            "--url",
            URL,
            "--out-dir",
            &o,
        ];
        if let Some(m) = mode {
            args.extend(["--mode", m]);
        }
        if ambient {
            args.push("--ambient");
        }
        let r = run(&args);
        assert!(r.status.success(), "{}", text(&r.stderr));
        for f in files(&out) {
            assert!(
                read(&root.join(dir).join(&f)) == read(&out.join(&f)),
                "{dir}/{} drifted from `oam-authz compile`; run examples/regenerate.sh",
                f.display()
            );
        }
        let _ = std::fs::remove_dir_all(&out);
    }
}
