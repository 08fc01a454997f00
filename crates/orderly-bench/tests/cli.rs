//! The load generator's command line: a bounded raw-storage run writes the report it prints,
//! and a wrong flag is a usage error, not a run.

use std::process::Command;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_orderly-bench"))
}

#[test]
fn a_bounded_raw_run_reports_every_request_as_json() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = dir.path().join("raw.json");
    let run = bench()
        .args(["raw", "--database", "sqlite", "--clients", "2"])
        .args(["--requests", "12", "--seconds", "20", "--out"])
        .arg(&out)
        .output()
        .expect("orderly-bench runs");
    assert!(
        run.status.success(),
        "orderly-bench raw failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let printed = String::from_utf8_lossy(&run.stdout);
    assert!(printed.contains("sqlite"), "printed: {printed}");

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).expect("the report file")).expect("JSON");
    assert_eq!(report["database"], "sqlite");
    assert_eq!(report["clients"], 2);
    assert_eq!(report["requests"], 12, "report: {report}");
    assert_eq!(report["errors"], 0, "report: {report}");
    let p50 = report["latency_ms"]["p50"].as_f64().expect("a p50");
    let max = report["latency_ms"]["max"].as_f64().expect("a max");
    assert!(p50 > 0.0 && p50 <= max, "report: {report}");
}

#[test]
fn an_unknown_scenario_is_a_usage_error() {
    let run = bench()
        .args(["scenario", "place-everything", "--requests", "1"])
        .output()
        .expect("orderly-bench runs");
    assert_eq!(run.status.code(), Some(2));
    let said = String::from_utf8_lossy(&run.stderr);
    assert!(said.contains("place-everything"), "said: {said}");
}
