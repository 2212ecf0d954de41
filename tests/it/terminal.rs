//! The CLI under a real terminal: a pseudo-terminal from `openpty`, a shell that is its session leader, and
//! Ctrl-C typed on it, so the terminal sends SIGINT to the whole foreground process group as it does for a
//! person. A `tee` reading stderr dies with it, and the restore's stderr becomes a pipe with no reader.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::ScalarAttributeType as T;
use ddb_pitr_synth::{self as synth, SynthOutput, SynthSpec};
use serde_json::Value;

use crate::cli;
use crate::support::{TestBucket, TestTable, assert_table_matches};

/// A pseudo-terminal: the master (the test's side) and the slave (the shell's terminal).
fn open_pty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two new descriptors into the pointers it is given; the other arguments may be
    // null (default name, termios and size).
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are new and owned by nothing else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// A shell running `script` as the session leader of a pty, its output drained (a full pty would block
/// the processes writing to it).
struct Terminal {
    child: std::process::Child,
    master: File,
    shown: Arc<Mutex<Vec<u8>>>,
    reader: std::thread::JoinHandle<()>,
}

impl Terminal {
    fn start(script: &str, envs: &[(&str, String)]) -> Terminal {
        let (master, slave) = open_pty();
        let mut cmd = std::process::Command::new("bash");
        cmd.arg("-c").arg(script);
        for v in cli::UNSET {
            cmd.env_remove(v);
        }
        cmd.envs(cli::ENV)
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: setsid and ioctl are async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("bash");
        // The terminal ends (EIO on the master) once every process holding the slave has exited.
        drop(cmd);
        let shown = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let shown = shown.clone();
            let mut master = File::from(master.try_clone().unwrap());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = master.read(&mut buf) {
                    shown.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            })
        };
        Terminal {
            child,
            master: File::from(master),
            shown,
            reader,
        }
    }

    /// Types Ctrl-C: the terminal sends SIGINT to its foreground process group.
    fn ctrl_c(&mut self) {
        self.master.write_all(b"\x03").unwrap();
    }

    /// Waits for the shell and everything on the terminal to exit; what the terminal showed.
    fn finish(mut self) -> String {
        let status = self.child.wait().unwrap();
        self.reader.join().unwrap();
        let shown = String::from_utf8_lossy(&self.shown.lock().unwrap()).into_owned();
        assert!(status.success(), "the shell itself: {status:?}\n{shown}");
        shown
    }
}

/// A FULL export of 3,000 generated items in `files` files, in a new bucket.
async fn full_export(
    aws: &cli::Aws,
    name: &str,
    seed: u64,
    files: usize,
) -> (TestBucket, tempfile::TempDir, SynthOutput) {
    let bucket = TestBucket::create(&aws.s3, name).await;
    let data = tempfile::tempdir().unwrap();
    let spec = SynthSpec {
        seed,
        full_items: 3000,
        full_files: files,
        incrementals: Vec::new(),
        big_items: 0,
        write_expected: true,
        ..SynthSpec::default()
    };
    let out = synth::generate(data.path(), &spec).unwrap();
    bucket.upload_dir(data.path(), "").await;
    (bucket, data, out)
}

/// Ctrl-C with stderr read by `tee`, which dies with it: `2>&1 >report.json | tee log`, and
/// `2> >(tee log)`. The restore neither crashes nor skips its shutdown: exit status 130, the checkpoint
/// saved at the interrupt, the report complete on stdout; and the resume finishes the table exactly.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_with_stderr_through_a_dying_tee_saves_the_checkpoint_and_prints_the_report() {
    let aws = cli::aws().await;
    let (bucket, _data, out) = full_export(&aws, "tty", 41, 2).await;
    let export = format!("s3://{}/{}", bucket.name, out.exports[0].summary_key);

    let pipelines = [
        // bash runs the trap (a handler, which its children do not inherit) and records the restore's
        // status once the pipeline has ended.
        r#"trap true INT
"$BIN" restore --table "$TABLE" --endpoint-url "$ENDPOINT" --export "$EXPORT" --resume "$DIR/checkpoint.json" \
  --checkpoint-interval 1h --max-wcu 300 2>&1 >"$DIR/report.json" | tee "$DIR/log"
echo "${PIPESTATUS[0]}" > "$DIR/status""#,
        // bash waits for a child that exits by itself (130, not killed by the signal), then goes on. The
        // process substitution comes first, so that tee's own stdout is the terminal, not the report.
        r#""$BIN" restore --table "$TABLE" --endpoint-url "$ENDPOINT" --export "$EXPORT" --resume "$DIR/checkpoint.json" \
  --checkpoint-interval 1h --max-wcu 300 2> >(tee "$DIR/log") >"$DIR/report.json"
echo $? > "$DIR/status""#,
    ];
    for script in pipelines {
        let table = TestTable::create(&aws.ddb, "tty", ("pk", T::S), Some(("sk", T::S))).await;
        let dir = tempfile::tempdir().unwrap();
        let envs = [
            ("BIN", env!("CARGO_BIN_EXE_ddb-pitr").to_owned()),
            ("TABLE", table.name.clone()),
            ("ENDPOINT", aws.endpoint.clone()),
            ("EXPORT", export.clone()),
            ("DIR", dir.path().display().to_string()),
        ];
        let mut terminal = Terminal::start(script, &envs);
        // Ctrl-C once some writes are acknowledged (the table has items), well before the end.
        let give_up = Instant::now() + Duration::from_secs(60);
        while table.scan().await.is_empty() {
            assert!(Instant::now() < give_up, "the restore never wrote");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        terminal.ctrl_c();
        let shown = tokio::task::spawn_blocking(move || terminal.finish())
            .await
            .unwrap();
        let status = std::fs::read_to_string(dir.path().join("status")).unwrap();
        assert_eq!(status.trim(), "130", "{script}\nterminal:\n{shown}");
        let stdout = std::fs::read_to_string(dir.path().join("report.json")).unwrap();
        let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!("the report is whole JSON: {e}\n{stdout}\nterminal:\n{shown}")
        });
        assert_eq!(report["status"], "interrupted", "{report}");
        let checkpoint: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("checkpoint.json")).unwrap())
                .unwrap();
        // The periodic save is an hour away: progress in the checkpoint was saved at the interrupt.
        let lines: u64 = checkpoint["exports"][0]["files"]
            .as_object()
            .unwrap()
            .values()
            .map(|f| f["lines"].as_u64().unwrap())
            .sum();
        assert!(
            lines > 0,
            "the checkpoint holds the writes made: {checkpoint}"
        );
        assert!(lines < 3000, "interrupted before the end: {checkpoint}");
        assert!(!table.scan().await.is_empty());

        let resumed = cli::restore(
            &aws,
            &table.name,
            &[
                "--export".into(),
                export.clone(),
                "--resume".into(),
                dir.path().join("checkpoint.json").display().to_string(),
            ],
        )
        .await;
        resumed.assert_success();
        assert_table_matches(&aws.ddb, &table.name, &out.expected[0]).await;
    }
}

/// What a terminal shows, as lines: escape sequences removed, and every `\r` redraw of a line kept as a
/// line of its own.
fn screen_lines(shown: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut chars = shown.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        plain.push(c);
    }
    plain
        .split(['\r', '\n'])
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// A run on a terminal draws a progress bar and ends with one closing line and nothing stale after it; a
/// resumed run's bar shows the items restored before apart, and a rate of this run's items only.
#[tokio::test(flavor = "multi_thread")]
async fn on_a_terminal_the_bar_counts_this_run_and_one_closing_line_ends_it() {
    let aws = cli::aws().await;
    let (bucket, _data, out) = full_export(&aws, "tty-bar", 42, 1).await;
    let table = TestTable::create(&aws.ddb, "tty-bar", ("pk", T::S), Some(("sk", T::S))).await;
    let dir = tempfile::tempdir().unwrap();
    let envs = [
        ("BIN", env!("CARGO_BIN_EXE_ddb-pitr").to_owned()),
        ("TABLE", table.name.clone()),
        ("ENDPOINT", aws.endpoint.clone()),
        (
            "EXPORT",
            format!("s3://{}/{}", bucket.name, out.exports[0].summary_key),
        ),
        ("DIR", dir.path().display().to_string()),
    ];
    let script = r#""$BIN" restore --table "$TABLE" --endpoint-url "$ENDPOINT" --export "$EXPORT" \
  --resume "$DIR/checkpoint.json" --checkpoint-interval 100ms --max-wcu 300 >"$DIR/report.json"
echo $? > "$DIR/status""#;

    // A first run, interrupted after 1,000 items or more: counted in, they would inflate the next run's rate.
    // The first run with NO_COLOR: a terminal, and still no colour (the resumed run below has colour).
    let no_color: Vec<(&str, String)> = envs
        .iter()
        .cloned()
        .chain([("NO_COLOR", "1".to_owned())])
        .collect();
    let mut first = Terminal::start(script, &no_color);
    let give_up = Instant::now() + Duration::from_secs(60);
    while table.scan().await.len() < 1000 {
        assert!(
            Instant::now() < give_up,
            "the restore never wrote 1,000 items"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.ctrl_c();
    let plain = tokio::task::spawn_blocking(move || first.finish())
        .await
        .unwrap();
    let colour = |shown: &str| shown.contains("\x1b[32m") || shown.contains("\x1b[33m");
    assert!(plain.contains(" INFO "), "{plain}");
    assert!(!colour(&plain), "NO_COLOR on a terminal: {plain:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("status"))
            .unwrap()
            .trim(),
        "130"
    );

    let resumed = Terminal::start(script, &envs);
    let shown = tokio::task::spawn_blocking(move || resumed.finish())
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("status"))
            .unwrap()
            .trim(),
        "0",
        "{shown}"
    );
    assert_table_matches(&aws.ddb, &table.name, &out.expected[0]).await;
    assert!(
        colour(&shown),
        "colour on a terminal without NO_COLOR: {shown:?}"
    );
    let lines = screen_lines(&shown);
    let frames: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("items/s") && l.contains("ETA"))
        .collect();
    assert!(
        !frames.is_empty(),
        "the bar is drawn on a terminal:\n{shown}"
    );
    let rate_of = |frame: &str| -> f64 {
        frame
            .split(" items/s")
            .next()
            .and_then(|head| head.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no rate in {frame:?}"))
    };
    for frame in &frames {
        assert!(frame.contains(" before this run) "), "{frame}");
    }
    // What each frame shows against what it can be: this run's items over the elapsed time, which is at
    // least the whole seconds the frame shows. Counting the items restored before breaks both: a frame
    // before this run's first write shows their jump as a rate, and later frames a rate above the bound.
    let number = |frame: &str, after: &str, until: &str| -> f64 {
        let rest = &frame[frame.find(after).unwrap() + after.len()..];
        rest[..rest.find(until).unwrap()]
            .trim()
            .replace(',', "")
            .parse()
            .unwrap_or_else(|e| panic!("{e}: {frame}"))
    };
    for frame in &frames {
        let shown = rate_of(frame);
        let pos: f64 = {
            let head = &frame[..frame.find('/').unwrap()];
            head.rsplit(' ')
                .next()
                .unwrap()
                .replace(',', "")
                .parse()
                .unwrap()
        };
        let before = number(frame, "items (", " before");
        let elapsed = {
            let hms = &frame[frame.find('[').unwrap() + 1..frame.find(']').unwrap()];
            hms.split(':')
                .fold(0.0, |t, p| t * 60.0 + p.parse::<f64>().unwrap())
        };
        if pos <= before {
            assert_eq!(shown, 0.0, "nothing written by this run yet: {frame}");
        } else if elapsed >= 1.0 {
            assert!(
                shown <= (pos - before) / elapsed + 1.0,
                "the rate counts only this run's items: {frame}"
            );
        }
    }
    for l in &lines {
        assert!(
            !(l.contains(" INFO ") && l.contains("items/s")),
            "a log line glued onto the bar's line: {l}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" INFO restoring export 1 of 1")),
        "the log line is on its own line:\n{shown}"
    );
    let last = lines.last().unwrap();
    assert!(
        last.starts_with("restore succeeded: ") && last.contains("items put"),
        "the last line is the closing line: {last:?}\n{shown}"
    );
    assert!(last.contains("report on stdout"), "{last}");
    assert!(
        last.contains(&format!(
            "checkpoint {}",
            dir.path().join("checkpoint.json").display()
        )),
        "{last}"
    );
    assert!(!last.contains("items/s ETA"), "no bar glued to it: {last}");
}
