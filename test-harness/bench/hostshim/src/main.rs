//! `hostshim IN.wasm OUT.wasm`: every call to an imported function `f` is sent
//! through a new local function named `hostcall:f` that only forwards its
//! arguments. In a perf profile of V8 (with a perf map), every sample taken
//! inside a host call then has `hostcall:<import>` as its innermost wasm frame,
//! which names the host call even when Envoy's own binary has no symbols.
//!
//! Callers reach a shim through `call_indirect` on a table of its own: TurboFan
//! inlines small direct callees (a direct call to the shim would vanish from
//! the stack), but without Liftoff's call feedback (Envoy runs V8 with
//! `--no-liftoff`) it does not inline indirect calls. The cost is one indirect
//! wasm call per host call (a few ns). Used by test-harness/bench/profile.py.

use std::collections::HashMap;
use walrus::ir::{dfs_pre_order_mut, CallIndirect, Const, Instr, InstrSeq, Value, VisitorMut};
use walrus::{ConstExpr, ElementItems, ElementKind, FunctionBuilder, FunctionId, ImportKind, Module, RefType};
use walrus::{TableId, TypeId};

/// For each import: its slot in the shim table and its type.
struct Redirect<'a> {
    slots: &'a HashMap<FunctionId, (i32, TypeId)>,
    table: TableId,
}

impl VisitorMut for Redirect<'_> {
    fn start_instr_seq_mut(&mut self, seq: &mut InstrSeq) {
        let mut out = Vec::with_capacity(seq.instrs.len());
        for (instr, loc) in seq.instrs.drain(..) {
            match &instr {
                Instr::Call(c) if self.slots.contains_key(&c.func) => {
                    let (slot, ty) = self.slots[&c.func];
                    out.push((Instr::Const(Const { value: Value::I32(slot) }), loc));
                    out.push((Instr::CallIndirect(CallIndirect { ty, table: self.table }), loc));
                }
                _ => out.push((instr, loc)),
            }
        }
        seq.instrs = out;
    }
}

fn run(input: &str, output: &str) -> Result<usize, String> {
    let mut m = Module::from_file(input).map_err(|e| format!("{input}: {e}"))?;
    let imports: Vec<(FunctionId, String)> = m
        .imports
        .iter()
        .filter_map(|i| match i.kind {
            ImportKind::Function(f) => Some((f, i.name.clone())),
            _ => None,
        })
        .collect();
    let mut slots = HashMap::new();
    let mut shims = Vec::new();
    for (f, name) in &imports {
        let ty = m.funcs.get(*f).ty();
        let (params, results) = {
            let (p, r) = m.types.params_results(ty);
            (p.to_vec(), r.to_vec())
        };
        let args: Vec<_> = params.iter().map(|t| m.locals.add(*t)).collect();
        let mut b = FunctionBuilder::new(&mut m.types, &params, &results);
        b.name(format!("hostcall:{name}"));
        {
            let mut body = b.func_body();
            for a in &args {
                body.local_get(*a);
            }
            body.call(*f);
        }
        let shim = b.finish(args, &mut m.funcs);
        let slot = i32::try_from(shims.len()).map_err(|_| "too many imports".to_string())?;
        slots.insert(*f, (slot, ty));
        shims.push(shim);
    }
    let n = shims.len() as u64;
    let table = m.tables.add_local(false, n, Some(n), RefType::Funcref);
    m.elements.add(
        ElementKind::Active { table, offset: ConstExpr::Value(Value::I32(0)) },
        ElementItems::Functions(shims.clone()),
    );
    for (id, func) in m.funcs.iter_local_mut() {
        if shims.contains(&id) {
            continue;
        }
        let entry = func.entry_block();
        dfs_pre_order_mut(&mut Redirect { slots: &slots, table }, func, entry);
    }
    m.emit_wasm_file(output).map_err(|e| format!("{output}: {e}"))?;
    Ok(shims.len())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 2 {
        eprintln!("usage: hostshim IN.wasm OUT.wasm");
        std::process::exit(2);
    }
    match run(&args[0], &args[1]) {
        Ok(n) => println!("hostshim: {n} imported functions wrapped"),
        Err(e) => {
            eprintln!("hostshim: {e}");
            std::process::exit(1);
        }
    }
}
