//! `hostshim [--count] IN.wasm OUT.wasm`: every call to an imported function `f` is sent
//! through a new local function named `hostcall:f` that only forwards its
//! arguments. In a perf profile of V8 (with a perf map), every sample taken
//! inside a host call then has `hostcall:<import>` as its innermost wasm frame,
//! which names the host call even when Envoy's own binary has no symbols.
//!
//! Callers reach a shim through `call_indirect` on a table of its own: TurboFan
//! inlines small direct callees (a direct call to the shim would vanish from
//! the stack), but without Liftoff's call feedback (Envoy runs V8 with
//! `--no-liftoff`) it does not inline indirect calls. The cost is one indirect
//! wasm call per host call (a few ns). Used by test-harness/bench/v8profile.py.
//!
//! `--count` makes a counting build instead (for a separate run: it adds a
//! host call to every host call): `proxy_on_vm_start` also defines one Envoy
//! counter per import, `hostcall.<import>` (Envoy shows it as
//! `wasmcustom.hostcall.<import>`), and each shim increments its counter
//! before forwarding, so Envoy's /stats tell how many calls of each kind a
//! request makes.

use std::collections::HashMap;
use walrus::ir::{
    dfs_pre_order_mut, BinaryOp, CallIndirect, Const, Instr, InstrSeq, LoadKind, MemArg, StoreKind,
    Value, VisitorMut,
};
use walrus::{ConstExpr, ElementItems, ElementKind, ExportItem, FunctionBuilder, FunctionId};
use walrus::{GlobalId, ImportKind, Module, RefType, TableId, TypeId, ValType};

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
                    out.push((
                        Instr::Const(Const {
                            value: Value::I32(slot),
                        }),
                        loc,
                    ));
                    out.push((
                        Instr::CallIndirect(CallIndirect {
                            ty,
                            table: self.table,
                        }),
                        loc,
                    ));
                }
                _ => out.push((instr, loc)),
            }
        }
        seq.instrs = out;
    }
}

/// The counting build's state: the counter ids (globals) and the imports it calls.
struct Counting {
    defined: GlobalId,
    ids: Vec<GlobalId>,
    increment: FunctionId,
}

fn import_func(m: &mut Module, name: &str, params: &[ValType], results: &[ValType]) -> FunctionId {
    let existing = m.imports.iter().find_map(|i| match i.kind {
        ImportKind::Function(f) if i.name == name => Some(f),
        _ => None,
    });
    existing.unwrap_or_else(|| {
        let ty = m.types.add(params, results);
        m.add_import_func("env", name, ty).0
    })
}

/// Wraps the `proxy_on_vm_start` export: after it ran, one counter per import
/// is defined (its name written into a buffer from the module's own
/// `proxy_on_memory_allocate`) and its id kept in a global.
fn define_counters(m: &mut Module, names: &[String], c: &Counting) -> Result<(), String> {
    let export = |m: &Module, n: &str| {
        m.exports.iter().find_map(|e| match e.item {
            ExportItem::Function(f) if e.name == n => Some((e.id(), f)),
            _ => None,
        })
    };
    let (vm_start_export, vm_start) =
        export(m, "proxy_on_vm_start").ok_or("no proxy_on_vm_start export")?;
    let (_, alloc) =
        export(m, "proxy_on_memory_allocate").ok_or("no proxy_on_memory_allocate export")?;
    let define = import_func(
        m,
        "proxy_define_metric",
        &[ValType::I32; 4],
        &[ValType::I32],
    );
    let memory = m.memories.iter().next().ok_or("no memory")?.id();
    let ty = m.funcs.get(vm_start).ty();
    let (params, results) = {
        let (p, r) = m.types.params_results(ty);
        (p.to_vec(), r.to_vec())
    };
    let args: Vec<_> = params.iter().map(|t| m.locals.add(*t)).collect();
    let (buf, ret) = (m.locals.add(ValType::I32), m.locals.add(ValType::I32));
    let mut b = FunctionBuilder::new(&mut m.types, &params, &results);
    b.name("hostcount:proxy_on_vm_start".to_string());
    let mut body = b.func_body();
    for a in &args {
        body.local_get(*a);
    }
    body.call(vm_start).local_set(ret);
    body.i32_const(256).call(alloc).local_set(buf);
    let byte = MemArg {
        align: 1,
        offset: 0,
    };
    for (name, id) in names.iter().zip(&c.ids) {
        let full = format!("hostcall.{name}");
        if full.len() > 200 {
            return Err(format!("import name too long: {name}"));
        }
        for (k, ch) in full.bytes().enumerate() {
            body.local_get(buf).i32_const(ch as i32).store(
                memory,
                StoreKind::I32_8 { atomic: false },
                MemArg {
                    offset: k as u32,
                    ..byte
                },
            );
        }
        // proxy_define_metric(counter = 0, name, len, &id) -> status
        body.i32_const(0)
            .local_get(buf)
            .i32_const(full.len() as i32);
        body.local_get(buf).i32_const(248).binop(BinaryOp::I32Add);
        body.call(define).drop();
        body.local_get(buf)
            .load(
                memory,
                LoadKind::I32 { atomic: false },
                MemArg {
                    align: 4,
                    offset: 248,
                },
            )
            .global_set(*id);
    }
    body.i32_const(1).global_set(c.defined).local_get(ret);
    let wrapper = b.finish(args, &mut m.funcs);
    m.exports.get_mut(vm_start_export).item = ExportItem::Function(wrapper);
    Ok(())
}

fn run(input: &str, output: &str, count: bool) -> Result<usize, String> {
    let mut m = Module::from_file(input).map_err(|e| format!("{input}: {e}"))?;
    let imports: Vec<(FunctionId, String)> = m
        .imports
        .iter()
        .filter_map(|i| match i.kind {
            ImportKind::Function(f) => Some((f, i.name.clone())),
            _ => None,
        })
        .collect();
    let counting = if count {
        let increment = import_func(
            &mut m,
            "proxy_increment_metric",
            &[ValType::I32, ValType::I64],
            &[ValType::I32],
        );
        let global = |m: &mut Module| {
            m.globals
                .add_local(ValType::I32, true, false, ConstExpr::Value(Value::I32(0)))
        };
        let defined = global(&mut m);
        let ids = imports.iter().map(|_| global(&mut m)).collect();
        Some(Counting {
            defined,
            ids,
            increment,
        })
    } else {
        None
    };
    let mut slots = HashMap::new();
    let mut shims = Vec::new();
    for (i, (f, name)) in imports.iter().enumerate() {
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
            if let Some(c) = &counting {
                let (id, inc) = (c.ids[i], c.increment);
                body.global_get(c.defined).if_else(
                    None,
                    |then| {
                        then.global_get(id).i64_const(1).call(inc).drop();
                    },
                    |_| {},
                );
            }
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
        ElementKind::Active {
            table,
            offset: ConstExpr::Value(Value::I32(0)),
        },
        ElementItems::Functions(shims.clone()),
    );
    for (id, func) in m.funcs.iter_local_mut() {
        if shims.contains(&id) {
            continue;
        }
        let entry = func.entry_block();
        dfs_pre_order_mut(
            &mut Redirect {
                slots: &slots,
                table,
            },
            func,
            entry,
        );
    }
    if let Some(c) = &counting {
        let names: Vec<String> = imports.iter().map(|(_, n)| n.clone()).collect();
        define_counters(&mut m, &names, c)?;
    }
    m.emit_wasm_file(output)
        .map_err(|e| format!("{output}: {e}"))?;
    Ok(shims.len())
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let count = args.first().is_some_and(|a| a == "--count");
    if count {
        args.remove(0);
    }
    if args.len() != 2 {
        eprintln!("usage: hostshim [--count] IN.wasm OUT.wasm");
        std::process::exit(2);
    }
    match run(&args[0], &args[1], count) {
        Ok(n) => println!("hostshim: {n} imported functions wrapped"),
        Err(e) => {
            eprintln!("hostshim: {e}");
            std::process::exit(1);
        }
    }
}
