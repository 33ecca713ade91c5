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
    // A second reference broker with auto.create.topics.enable=false (a read-only broker
    // setting): given, or started here in the background while the other cases run.
    let mut second = SecondGuard(
        match std::env::var("REFERENCE_KAFKA_NO_AUTO_CREATE_BOOTSTRAP") {
            Ok(addr) => SecondKafka::Given(addr),
            Err(_) if selected("broker_auto_create_off") => SecondKafka::start(),
            Err(_) => SecondKafka::Given(String::new()),
        },
    );
    let mut kafka = Target {
        name: "kafka",
        bootstrap: kafka_bootstrap.to_string(),
        no_auto_create: None,
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
        if case.name.contains("broker_auto_create_off") && kafka.no_auto_create.is_none() {
            kafka.no_auto_create = second.0.wait();
        }
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

/// The second reference broker (auto-create off).
enum SecondKafka {
    Given(String),
    Starting(std::thread::JoinHandle<Option<String>>, tempfile::TempDir),
    Started(String, tempfile::TempDir),
}

impl SecondKafka {
    fn script() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/reference-kafka")
    }

    fn start() -> SecondKafka {
        let Ok(dir) = tempfile::Builder::new()
            .prefix("differential-kafka.")
            .tempdir()
        else {
            return SecondKafka::Given(String::new());
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(0);
        let path = dir.path().to_path_buf();
        let handle = std::thread::spawn(move || {
            let out = std::process::Command::new(Self::script())
                .arg("start")
                .arg(&path)
                .arg(port.to_string())
                .arg("auto.create.topics.enable=false")
                .env(
                    "KAFKA_JVM_OPTS",
                    std::env::var("KAFKA_JVM_OPTS")
                        .unwrap_or_else(|_| "-XX:+UseSerialGC -XX:TieredStopAtLevel=1".into()),
                )
                .env("KAFKA_HEAP", "-Xmx256m")
                .output()
                .ok()?;
            if !out.status.success() {
                eprintln!(
                    "second reference broker did not start: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                return None;
            }
            Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
        });
        SecondKafka::Starting(handle, dir)
    }

    fn wait(&mut self) -> Option<String> {
        let this = std::mem::replace(self, SecondKafka::Given(String::new()));
        let (addr, next) = match this {
            SecondKafka::Given(a) => (a.clone(), SecondKafka::Given(a)),
            SecondKafka::Started(a, d) => (a.clone(), SecondKafka::Started(a, d)),
            SecondKafka::Starting(h, d) => {
                let a = h.join().ok().flatten().unwrap_or_default();
                (a.clone(), SecondKafka::Started(a, d))
            }
        };
        *self = next;
        (!addr.is_empty()).then_some(addr)
    }
}

/// Stops the second broker if it was started here (exactly that one, by its directory).
struct SecondGuard(SecondKafka);

impl Drop for SecondGuard {
    fn drop(&mut self) {
        let _ = self.0.wait();
        if let SecondKafka::Started(_, dir) = &self.0 {
            let _ = std::process::Command::new(SecondKafka::script())
                .arg("stop")
                .arg(dir.path())
                .output();
        }
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}
