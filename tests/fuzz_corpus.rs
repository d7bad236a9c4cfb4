//! Replays the committed fuzz corpus and crash reproducers (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`) through the same library functions the fuzz targets call,
//! on stable: what fuzzing found stays fixed. FUZZING.md says how the files were made.

use std::path::Path;

/// Every file of `fuzz/corpus/<target>` and `fuzz/regressions/<target>`, through `run`.
fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let dir = root.join(dir).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files {
            let data = std::fs::read(&f).unwrap();
            // A panic names the file that caused it.
            let r = std::panic::catch_unwind(|| run(&data));
            assert!(r.is_ok(), "{} panicked", f.display());
            n += 1;
        }
    }
    assert!(n > 0, "no corpus for {target} under {}", root.display());
}

#[test]
fn record() {
    replay("record", iotitan::fuzz::record);
}

#[test]
fn syslog_line() {
    replay("syslog_line", iotitan::fuzz::syslog_line);
}

#[test]
fn payload() {
    replay("payload", iotitan::fuzz::payload);
}

#[test]
fn spool() {
    replay("spool", iotitan::fuzz::spool);
}

#[test]
fn config() {
    replay("config", iotitan::fuzz::config);
}

#[test]
fn http() {
    replay("http", iotitan::fuzz::http);
}

#[test]
fn journal_file() {
    replay("journal_file", iotitan::fuzz::journal_file);
}
