//! Inputs for the tests that call the `ddb_pitr` library directly: a restore's options as the CLI's
//! defaults make them, and a generated chain of exports.

use std::time::{Duration, SystemTime};

use ddb_pitr::engine::Settings;
use ddb_pitr::export::chain::Expectations;
use ddb_pitr::local::RestoreOptions;
use ddb_pitr_synth::{IncrementalSpec, SynthSpec};

/// A restore into `table` with nothing to restore yet (set `exports` or `find`), two workers, frequent
/// checkpoints, no bar and no capacity changes.
pub fn restore_options(table: &str) -> RestoreOptions {
    RestoreOptions {
        table: table.into(),
        exports: Vec::new(),
        find: None,
        request: None,
        expect: Expectations::default(),
        workers: 2,
        settings: Settings::default(),
        dry_run: false,
        resume: None,
        report: None,
        shutdown_timeout: Duration::from_secs(10),
        checkpoint_interval: Duration::from_millis(100),
        sample_lines: 20,
        progress_bar: false,
        max_wcu: None,
        manage_capacity: None,
    }
}

/// `table`'s FULL export of `full_items` items in two files under `prefix`, taken at `start`, and
/// `incrementals` INCREMENTAL exports after it (10 inserts, 8 updates and 4 deletes each), with the
/// expected table written beside them.
pub fn chain_spec(
    seed: u64,
    table: &str,
    prefix: &str,
    start: SystemTime,
    full_items: usize,
    incrementals: usize,
) -> SynthSpec {
    SynthSpec {
        seed,
        table: table.into(),
        prefix: Some(prefix.into()),
        full_items,
        full_files: 2,
        incrementals: (0..incrementals)
            .map(|_| IncrementalSpec {
                files: 2,
                inserts: 10,
                updates: 8,
                deletes: 4,
                big_inserts: 0,
            })
            .collect(),
        big_items: 0,
        start_time: start,
        write_expected: true,
        ..SynthSpec::default()
    }
}
