//! Differential tests: every case runs against the reference Apache Kafka 4.4
//! (`REFERENCE_KAFKA_BOOTSTRAP`, started by scripts/test) and against a Vltava started here, and
//! the two normalised transcripts must match step by step, except where KNOWN_DIFFERENCES.md
//! says why not.
//!
//! `cargo test -p vltava-differential --test differential -- [FILTER]` runs the cases whose name
//! contains FILTER; DIFFERENTIAL_SHOW=1 prints Kafka's side of every step.

#[allow(dead_code)] // helpers for the cases still to come
mod cases;

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use vltava_differential::known::Known;
use vltava_differential::vltava::Vltava;
use vltava_differential::{advertised, common_versions, line_diff, Ctx, Target};

fn main() -> ExitCode {
    let Ok(kafka) = std::env::var("REFERENCE_KAFKA_BOOTSTRAP") else {
        println!("SKIPPED: set REFERENCE_KAFKA_BOOTSTRAP (scripts/test does)");
        return ExitCode::SUCCESS;
    };
    match run(&kafka) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("differential: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(kafka_bootstrap: &str) -> Result<bool, String> {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected =
        |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    let filter = (!filters.is_empty()).then_some(());
    let known = Known::load()?;
    let started = Instant::now();
    let vltava = Vltava::start(&[])?;
    let vltava_no_auto = Vltava::start(&["auto.create.topics.enable=false"])?;
    let kafka = Target {
        name: "kafka",
        bootstrap: kafka_bootstrap.to_string(),
        no_auto_create: std::env::var("REFERENCE_KAFKA_NO_AUTO_CREATE_BOOTSTRAP").ok(),
    };
    let vl = Target {
        name: "vltava",
        bootstrap: vltava.bootstrap(),
        no_auto_create: Some(vltava_no_auto.bootstrap()),
    };
    let kafka_apis = advertised(&kafka.bootstrap)?;
    let vltava_apis = advertised(&vl.bootstrap)?;
    let versions = common_versions(&kafka_apis, &vltava_apis);
    let run_id = format!(
        "{:x}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
            % 0xffff_ffff
    );
    println!(
        "differential: kafka {} vs vltava {} (run {run_id}, brokers ready in {:.1}s)",
        kafka.bootstrap,
        vl.bootstrap,
        started.elapsed().as_secs_f64()
    );

    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut used_known = BTreeSet::new();
    let mut ran = BTreeSet::new();

    // ApiVersions: every range Vltava advertises lies within Kafka's (not a transcript compare).
    if selected("api_versions/ranges") {
        ran.insert("api_versions/ranges".to_string());
        let mut bad = Vec::new();
        for &(key, min, max) in &vltava_apis {
            match kafka_apis.iter().find(|(k, _, _)| *k == key) {
                Some(&(_, kmin, kmax)) if min >= kmin && max <= kmax => {}
                Some(&(_, kmin, kmax)) => bad.push(format!(
                    "key {key}: vltava {min}..={max}, kafka {kmin}..={kmax}"
                )),
                None => bad.push(format!("key {key}: vltava {min}..={max}, kafka none")),
            }
        }
        if bad.is_empty() {
            println!("ok      api_versions/ranges ({} keys)", vltava_apis.len());
            passed += 1;
        } else {
            println!("FAILED  api_versions/ranges\n  {}", bad.join("\n  "));
            failed += 1;
        }
    }

    for case in cases::CASES.iter().flat_map(|g| g.iter()) {
        if !selected(case.name) {
            continue;
        }
        ran.insert(case.name.to_string());
        let t0 = Instant::now();
        if let Some(why) = (case.skip)(&kafka, &vl) {
            println!("skipped {}: {why}", case.name);
            skipped += 1;
            continue;
        }
        let mut k = Ctx::new(kafka.clone(), case.name, versions.clone(), run_id.clone());
        let mut v = Ctx::new(vl.clone(), case.name, versions.clone(), run_id.clone());
        let kr = (case.run)(&mut k);
        let vr = (case.run)(&mut v);
        if std::env::var_os("DIFFERENTIAL_SHOW").is_some() {
            for (s, text) in &k.steps {
                println!("  [{s}] (kafka)\n{}", indent(text));
            }
        }
        let mut ok = true;
        let mut report = String::new();
        // A case that could not run to its end is broken on that broker: never a pass.
        for (who, r) in [("kafka", &kr), ("vltava", &vr)] {
            if let Err(e) = r {
                match known.reason(case.name, &format!("error:{who}")) {
                    Some((key, reason)) => {
                        used_known.insert(key.to_string());
                        report
                            .push_str(&format!("  known: case stopped on {who} ({reason}): {e}\n"));
                    }
                    None => {
                        ok = false;
                        report.push_str(&format!("  case stopped on {who}: {e}\n"));
                    }
                }
            }
        }
        // Steps line up by label: those on one side only differ too.
        let mut labels: Vec<&str> = k.steps.iter().map(|(s, _)| s.as_str()).collect();
        for (s, _) in &v.steps {
            if !labels.contains(&s.as_str()) {
                labels.push(s);
            }
        }
        let n = labels.len();
        for step in labels {
            let ks = k.steps.iter().find(|(s, _)| s == step);
            let vs = v.steps.iter().find(|(s, _)| s == step);
            if ks == vs {
                continue;
            }
            let text = |x: Option<&(String, String)>, who: &str| {
                x.map(|(s, t)| format!("[{s}]\n{t}\n"))
                    .unwrap_or_else(|| format!("[{step}]\n<no such step on {who}>\n"))
            };
            let diff = indent(&line_diff(&text(ks, "kafka"), &text(vs, "vltava")));
            match known.reason(case.name, step) {
                Some((key, reason)) => {
                    used_known.insert(key.to_string());
                    report.push_str(&format!(
                        "  known difference at step {step} ({reason}):\n{diff}"
                    ));
                }
                None => {
                    ok = false;
                    report.push_str(&format!("  step {step} differs:\n{diff}"));
                }
            }
        }
        let ms = t0.elapsed().as_millis();
        if ok {
            passed += 1;
            println!("ok      {} ({} steps, {ms} ms)", case.name, n);
        } else {
            failed += 1;
            println!("FAILED  {} ({ms} ms)", case.name);
        }
        if !report.is_empty() {
            print!("{report}");
        }
    }

    // The list stays true: an entry whose case ran and matched is stale, and one naming no
    // case is a typo.
    for key in known.keys() {
        let case = key.split('/').take(2).collect::<Vec<_>>().join("/");
        let exists = cases::CASES.iter().flat_map(|g| g.iter()).any(|c| {
            let head = key.split('*').next().unwrap_or_default();
            key.starts_with(c.name) || c.name.starts_with(head)
        }) || key == "api_versions/ranges";
        let head = key.split('*').next().unwrap_or_default();
        let ran_case = ran
            .iter()
            .any(|r| key.starts_with(r.as_str()) || r.starts_with(head));
        if !exists && filter.is_none() {
            println!("FAILED  KNOWN_DIFFERENCES.md names no case: `{key}`");
            failed += 1;
        } else if ran_case && filter.is_none() && !used_known.contains(key) {
            println!(
                "FAILED  KNOWN_DIFFERENCES.md: `{key}` now matches Kafka; remove the line ({case})"
            );
            failed += 1;
        }
    }

    drop(vltava_no_auto);
    drop(vltava);
    println!(
        "differential: {passed} passed, {failed} failed, {skipped} skipped in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    Ok(failed == 0)
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}
