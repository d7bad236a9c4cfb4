//! The journal read through `journalctl -o json` between the range's bounds, matched on the
//! syslog identifier: the way in where the files cannot be read directly.

use super::super::{Lines, Scan, ScanReport, SourceError, stream};
use chrono::{DateTime, Utc};
use std::io::Read;
use std::ops::ControlFlow;
use std::process::{Command, Stdio};

/// `journalctl` time arguments: whole seconds in UTC, widened to cover the range.
pub(in crate::syslog::source) fn journal_time(t: DateTime<Utc>, round_up: bool) -> String {
    let secs = t.timestamp() + i64::from(round_up && t.timestamp_subsec_nanos() > 0);
    DateTime::from_timestamp(secs, 0)
        .unwrap_or(t)
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

pub(in crate::syslog::source) fn scan_journal(
    namespace: Option<&str>,
    scan: &Scan<'_>,
    lines: &mut dyn Lines,
) -> Result<ScanReport, SourceError> {
    let mut cmd = Command::new("journalctl");
    cmd.args(["-o", "json", "--no-pager", "-q", "--output-fields"])
        .arg("MESSAGE,SYSLOG_IDENTIFIER")
        .arg("--since")
        .arg(journal_time(scan.from, false))
        .arg("--until")
        .arg(journal_time(scan.until, true))
        .arg("-t")
        .arg(scan.identifier);
    if let Some(ns) = namespace {
        cmd.arg("--namespace").arg(ns);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| SourceError::Journal(format!("cannot run journalctl: {e}")))?;
    let out = child
        .stdout
        .take()
        .ok_or_else(|| SourceError::Journal("no stdout".into()))?;
    let mut stderr = child.stderr.take();
    lines.input(Utc::now());
    let mut report = ScanReport::default();
    let flow = stream(out, lines, &mut |_| {}, &mut report.bytes);
    if matches!(flow, Ok(ControlFlow::Break(()))) {
        let _ = child.kill();
    }
    let status = child
        .wait()
        .map_err(|e| SourceError::Journal(e.to_string()))?;
    let flow = flow.map_err(|e| SourceError::Journal(e.to_string()))?;
    if flow.is_continue() && !status.success() {
        let mut msg = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.read_to_string(&mut msg);
        }
        return Err(SourceError::Journal(format!(
            "{status}: {}",
            msg.trim().lines().next().unwrap_or("no message")
        )));
    }
    Ok(report)
}
