//! One input file, checked: its applications loaded and compiled, and every
//! finding (the loader's, the engine's mapped to OAM paths, the analyses')
//! with the file, the application and the line and column of its field.

use super::compile::{compile_app, CompiledComponent, Options};
use super::finding::Finding;
use super::load::{load_str, Application};

/// Every application of a file, compiled, and every finding.
#[derive(Debug)]
pub struct Checked {
    pub apps: Vec<(Application, Vec<CompiledComponent>)>,
    pub findings: Vec<Finding>,
}

/// Load and compile every application in `text`; `file` names it in findings.
pub fn check_text(text: &str, file: &str, opts: &Options) -> Checked {
    let (apps, mut findings) = load_str(text);
    let mut out = Vec::new();
    for app in apps {
        let (compiled, mut found) = compile_app(&app, opts);
        for f in &mut found {
            f.pos = app.positions.find(&f.path);
            f.application = Some(app.name.clone());
        }
        findings.extend(found);
        out.push((app, compiled));
    }
    for f in &mut findings {
        f.file = file.to_string();
    }
    Checked {
        apps: out,
        findings,
    }
}
