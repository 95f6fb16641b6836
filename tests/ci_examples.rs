//! The CI examples of `examples/ci/`: each parses as its system expects,
//! and the commands it runs succeed against a repository holding
//! `examples/` with a merge request (the shop widened, examples/diff/shop-v2.yaml)
//! on top of its target branch. The CI tools they call (`curl`,
//! `buildkite-agent`) are stand-ins that record what they were asked to do.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn git(dir: &Path, args: &[&str]) {
    let o = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A scratch repository: `examples/` on `main`, pushed to a bare `origin`,
/// and a branch `feature` that widens the shop.
struct Repo {
    root: PathBuf,
    work: PathBuf,
    bin: PathBuf,
    home: PathBuf,
    log: PathBuf,
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let dest = to.join(e.file_name());
        if p.is_dir() {
            copy_tree(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// Stand-ins for the CI tools: each records its arguments and stdin.
const STUB: &str = "#!/bin/sh\n{ printf '%s' \"$(basename \"$0\")\"; for a in \"$@\"; do printf ' [%s]' \"$a\"; done; printf '\\n'; if [ ! -t 0 ]; then cat; printf '\\n'; fi; } >> \"$STUB_LOG\"\n";

impl Repo {
    fn new(name: &str) -> Repo {
        let root = std::env::temp_dir().join(format!("oam-authz-ci-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (work, bin, home) = (root.join("work"), root.join("bin"), root.join("home"));
        for d in [&work, &bin, &home] {
            std::fs::create_dir_all(d).unwrap();
        }
        for app in ["shop", "deploy-api", "artifact-store", "remote-jwks"] {
            copy_tree(
                &Path::new(ROOT).join("examples").join(app),
                &work.join("examples").join(app),
            );
        }
        git(&work, &["init", "-q", "-b", "main"]);
        git(&work, &["add", "."]);
        git(
            &work,
            &[
                "-c",
                "user.name=ci",
                "-c",
                "user.email=ci@example.com",
                "commit",
                "-q",
                "-m",
                "main",
            ],
        );
        git(&root, &["init", "-q", "--bare", "origin.git"]);
        git(&work, &["remote", "add", "origin", "../origin.git"]);
        git(&work, &["push", "-q", "origin", "main"]);
        git(&work, &["checkout", "-q", "-b", "feature"]);
        std::fs::copy(
            Path::new(ROOT).join("examples/diff/shop-v2.yaml"),
            work.join("examples/shop/app.yaml"),
        )
        .unwrap();
        git(
            &work,
            &[
                "-c",
                "user.name=ci",
                "-c",
                "user.email=ci@example.com",
                "commit",
                "-q",
                "-am",
                "widen",
            ],
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_oam-authz"), bin.join("oam-authz"))
                .unwrap();
            for tool in ["curl", "buildkite-agent"] {
                let p = bin.join(tool);
                std::fs::write(&p, STUB).unwrap();
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        let log = root.join("stub.log");
        Repo {
            root,
            work,
            bin,
            home,
            log,
        }
    }

    /// Run `script` with `shell` in the work tree; (exit code, stdout+stderr).
    fn run(&self, shell: &[&str], script: &str, env: &BTreeMap<String, String>) -> (i32, String) {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let o = Command::new(shell[0])
            .args(&shell[1..])
            .arg(script)
            .current_dir(&self.work)
            .env_clear()
            .env("PATH", path)
            .env("HOME", &self.home)
            .env("STUB_LOG", &self.log)
            .envs(env)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.code().unwrap_or(-1), text)
    }

    fn stub_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.work.join(name)).unwrap_or_default()
    }
}

impl Drop for Repo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn check_junit(repo: &Repo) {
    let report = repo.file("junit.xml");
    assert!(
        report.contains("<testsuite") && report.contains("failures=\"0\""),
        "junit.xml is not a passing JUnit report:\n{report}"
    );
}

fn env_of(map: &Value) -> BTreeMap<String, String> {
    map.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
        .collect()
}

fn lines(v: &Value) -> String {
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn gitlab_ci_runs_the_checks_and_posts_the_diff_as_a_note() {
    let ci = yaml("examples/ci/gitlab-ci.yml");
    assert_eq!(
        ci["policy-test"]["artifacts"]["reports"]["junit"],
        "junit.xml"
    );
    assert_eq!(
        ci["workflow"]["rules"][0]["if"],
        "$CI_PIPELINE_SOURCE == \"merge_request_event\""
    );
    let repo = Repo::new("gitlab");
    let mut env = env_of(&ci["variables"]);
    for (k, v) in [
        ("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main"),
        ("CI_MERGE_REQUEST_IID", "7"),
        ("CI_PROJECT_ID", "42"),
        ("CI_API_V4_URL", "https://gitlab.example.com/api/v4"),
        ("OAM_AUTHZ_NOTE_TOKEN", "glpat-test"),
    ] {
        env.insert(k.into(), v.into());
    }
    // GitLab runs a job's script lines in one shell and stops at the first failure.
    let shell = ["bash", "-eo", "pipefail", "-c"];
    let (code, out) = repo.run(&shell, &lines(&ci["policy-test"]["script"]), &env);
    assert_eq!(code, 0, "{out}");
    check_junit(&repo);
    let diff = lines(&ci["policy-diff"]["script"]);
    let (code, out) = repo.run(&shell, &diff, &env);
    assert_eq!(
        code, 1,
        "widened access must stop the job until it is accepted:\n{out}"
    );
    assert!(
        out.contains("access widens: review the diff, then add the label policy-widening-approved"),
        "{out}"
    );
    assert!(repo
        .file("policy-diff.md")
        .starts_with("### oam-authz diff: access widened"));
    let log = repo.stub_log();
    assert!(
        log.contains("[PRIVATE-TOKEN: glpat-test] [--data-urlencode] [body@policy-diff.md] [https://gitlab.example.com/api/v4/projects/42/merge_requests/7/notes]"),
        "{log}"
    );
    env.insert(
        "CI_MERGE_REQUEST_LABELS".into(),
        "backend,policy-widening-approved".into(),
    );
    let (code, out) = repo.run(&shell, &diff, &env);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn buildkite_annotates_the_build_and_blocks_a_widening() {
    let ci = yaml("examples/ci/buildkite.yml");
    let steps = ci["steps"].as_array().unwrap();
    let step = |key: &str| steps.iter().find(|s| s["key"] == key).unwrap();
    assert_eq!(step("policy-test")["artifact_paths"], "junit.xml");
    assert!(steps
        .iter()
        .any(|s| s["plugins"][0].get("junit-annotate#v2.7.0").is_some()));
    assert_eq!(step("policy-diff")["if"], "build.pull_request.id != null");
    let repo = Repo::new("buildkite");
    let mut env = env_of(&ci["env"]);
    env.insert("BUILDKITE_PULL_REQUEST_BASE_BRANCH".into(), "main".into());
    // The agent runs a command with `bash -e -c`.
    let shell = ["bash", "-e", "-c"];
    let (code, out) = repo.run(
        &shell,
        step("policy-test")["command"].as_str().unwrap(),
        &env,
    );
    assert_eq!(code, 0, "{out}");
    check_junit(&repo);
    let (code, out) = repo.run(
        &shell,
        step("policy-diff")["command"].as_str().unwrap(),
        &env,
    );
    assert_eq!(code, 0, "{out}");
    let log = repo.stub_log();
    assert!(log.contains("buildkite-agent [annotate] [--style] [warning] [--context] [oam-authz-diff]\n### oam-authz diff: access widened"), "{log}");
    assert!(log.contains("buildkite-agent [pipeline] [upload]\nsteps:\n  - block: \":warning: the policy change widens access\""), "{log}");
    let uploaded = log
        .split("buildkite-agent [pipeline] [upload]\n")
        .nth(1)
        .unwrap();
    let block: Value = serde_norway::from_str(uploaded.trim_end()).unwrap();
    assert!(block["steps"][0]["prompt"].is_string(), "{block}");
}

/// `$(params.x)`, `$(workspaces.source.path)` and `$(results.x.path)`, as
/// Tekton substitutes them.
fn tekton(script: &str, params: &BTreeMap<String, String>, repo: &Repo) -> String {
    let mut s = script.replace("$(workspaces.source.path)", repo.work.to_str().unwrap());
    s = s.replace(
        "$(results.access-change.path)",
        repo.root.join("access-change").to_str().unwrap(),
    );
    for (k, v) in params {
        s = s.replace(&format!("$(params.{k})"), v);
    }
    assert!(!s.contains("$("), "unsubstituted Tekton variable in\n{s}");
    s
}

#[test]
fn tekton_task_reports_the_access_change_and_the_pipeline_gates_on_it() {
    let task = yaml("examples/ci/tekton/task.yaml");
    let pipeline = yaml("examples/ci/tekton/pipeline.yaml");
    assert_eq!(
        (task["apiVersion"].as_str(), task["kind"].as_str()),
        (Some("tekton.dev/v1"), Some("Task"))
    );
    assert_eq!(pipeline["kind"], "Pipeline");
    let params: BTreeMap<String, String> = task["spec"]["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["default"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    // Every parameter the Pipeline passes exists in the Task.
    let tasks = pipeline["spec"]["tasks"].as_array().unwrap();
    let check = tasks
        .iter()
        .find(|t| t["taskRef"]["name"] == "oam-authz-policy-check")
        .unwrap();
    for p in check["params"].as_array().unwrap() {
        assert!(params.contains_key(p["name"].as_str().unwrap()), "{p}");
    }
    let repo = Repo::new("tekton");
    for step in task["spec"]["steps"].as_array().unwrap() {
        let script = tekton(step["script"].as_str().unwrap(), &params, &repo);
        assert!(script.starts_with("#!/bin/sh\n"));
        let (code, out) = repo.run(&["sh", "-c"], &script, &BTreeMap::new());
        assert_eq!(code, 0, "step {}: {out}", step["name"]);
    }
    check_junit(&repo);
    let change = std::fs::read_to_string(repo.root.join("access-change")).unwrap();
    assert_eq!(change, "widened");
    // The gate: its `when` holds for this result (and the default accept-widening).
    let gate = tasks
        .iter()
        .find(|t| t["name"] == "widening-needs-review")
        .unwrap();
    for w in gate["when"].as_array().unwrap() {
        let input = match w["input"].as_str().unwrap() {
            "$(tasks.policy-check.results.access-change)" => change.clone(),
            "$(params.accept-widening)" => "false".to_string(),
            other => panic!("unexpected when input {other}"),
        };
        let values: Vec<&str> = w["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let listed = values.contains(&input.as_str());
        assert_eq!(listed, w["operator"] == "in", "{w}");
    }
    let stop = gate["taskSpec"]["steps"][0]["script"].as_str().unwrap();
    let (code, out) = repo.run(&["sh", "-c"], stop, &BTreeMap::new());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("the policy change widens access"), "{out}");
}

#[test]
fn drone_for_gogs_comments_on_the_pull_request() {
    let ci = yaml("examples/ci/drone.yml");
    assert_eq!(
        (ci["kind"].as_str(), ci["type"].as_str()),
        (Some("pipeline"), Some("docker"))
    );
    assert_eq!(ci["trigger"]["event"][0], "pull_request");
    let steps = ci["steps"].as_array().unwrap();
    let step = |name: &str| steps.iter().find(|s| s["name"] == name).unwrap();
    assert_eq!(
        step("policy-diff")["environment"]["GOGS_TOKEN"]["from_secret"],
        "gogs_token"
    );
    let repo = Repo::new("drone");
    let mut env = env_of(&ci["environment"]);
    for (k, v) in [
        ("DRONE_TARGET_BRANCH", "main"),
        ("DRONE_REPO", "acme/shop"),
        ("DRONE_PULL_REQUEST", "7"),
        ("GOGS_TOKEN", "gogs-test"),
    ] {
        env.insert(k.into(), v.into());
    }
    // Drone runs a step's commands as one `set -e` shell script.
    let shell = ["sh", "-e", "-c"];
    let (code, out) = repo.run(&shell, &lines(&step("policy-tests")["commands"]), &env);
    assert_eq!(code, 0, "{out}");
    check_junit(&repo);
    let (code, out) = repo.run(&shell, &lines(&step("policy-diff")["commands"]), &env);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("access widens: review the diff before merging"),
        "{out}"
    );
    let log = repo.stub_log();
    assert!(
        log.contains("[Authorization: token gogs-test] [--data-urlencode] [body@policy-diff.md] [https://gogs.example.com/api/v1/repos/acme/shop/issues/7/comments]"),
        "{log}"
    );
}

#[test]
fn on_the_target_branch_itself_nothing_changes() {
    let ci = yaml("examples/ci/gitlab-ci.yml");
    let repo = Repo::new("unchanged");
    git(&repo.work, &["checkout", "-q", "main"]);
    let mut env = env_of(&ci["variables"]);
    env.insert("CI_MERGE_REQUEST_TARGET_BRANCH_NAME".into(), "main".into());
    env.insert("OAM_AUTHZ_NOTE_TOKEN".into(), "glpat-test".into());
    let (code, out) = repo.run(
        &["bash", "-eo", "pipefail", "-c"],
        &lines(&ci["policy-diff"]["script"]),
        &env,
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("### oam-authz diff: no decision changes"),
        "{out}"
    );
    // No note for a change that changes nothing.
    assert_eq!(repo.stub_log(), "");
}
