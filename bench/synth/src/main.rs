//! Writes a synthetic DynamoDB export chain (one FULL plus incrementals) into a directory that
//! stands for the bucket root, and prints what it wrote as JSON.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use clap::{Parser, ValueEnum};
use ddb_pitr_synth as synth;

#[derive(Parser)]
#[command(about = "Generate a synthetic DynamoDB export-to-S3 chain")]
struct Args {
    /// Output directory; plays the role of the bucket root.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Items in the FULL export.
    #[arg(long, default_value_t = 100)]
    items: usize,
    /// Data files per export (plus one empty file each).
    #[arg(long, default_value_t = 3)]
    files: usize,
    #[arg(long, default_value_t = 2)]
    incrementals: usize,
    /// Changes per incremental: half inserts, 30% updates, the rest deletes.
    #[arg(long, default_value_t = 40)]
    inc_changes: usize,
    /// Near-400 KB items in the FULL export.
    #[arg(long, default_value_t = 1)]
    big_items: usize,
    /// Size of all other items, by DynamoDB's item size rules: default (unpadded, about 600
    /// bytes of JSON), fixed:BYTES, uniform:MIN-MAX or lognormal:MEDIAN,SIGMA (e.g.
    /// lognormal:1000,1.0). Sizes are in bytes, at most 399000.
    #[arg(
        long,
        value_name = "DIST",
        default_value = "default",
        value_parser = synth::ItemSize::from_str
    )]
    item_size: synth::ItemSize,
    #[arg(long, value_enum, ignore_case = true, default_value = "NEW_AND_OLD")]
    view: View,
    /// Start the first incremental one minute after the FULL export time.
    #[arg(long)]
    gap: bool,
    /// Skip expected-after-<n>.jsonl (keeps memory flat for big runs).
    #[arg(long)]
    no_expected: bool,
    #[arg(long)]
    prefix: Option<String>,
    #[arg(long, default_value = "synth-bucket")]
    bucket: String,
    #[arg(long, default_value = "synth")]
    table: String,
    #[arg(long, value_enum, ignore_case = true, default_value = "S")]
    pk_type: KeyType,
    #[arg(long, value_enum, ignore_case = true, default_value = "S")]
    sk_type: SortKeyType,
}

#[derive(Clone, Copy, ValueEnum)]
enum View {
    #[value(name = "NEW")]
    New,
    #[value(name = "NEW_AND_OLD")]
    NewAndOld,
}

#[derive(Clone, Copy, ValueEnum)]
enum KeyType {
    S,
    N,
    B,
}

#[derive(Clone, Copy, ValueEnum)]
enum SortKeyType {
    S,
    N,
    B,
    #[value(name = "none")]
    None,
}

impl From<KeyType> for synth::KeyType {
    fn from(t: KeyType) -> Self {
        match t {
            KeyType::S => Self::S,
            KeyType::N => Self::N,
            KeyType::B => Self::B,
        }
    }
}

fn spec(args: Args) -> synth::SynthSpec {
    let inserts = args.inc_changes / 2;
    let updates = args.inc_changes * 3 / 10;
    let incremental = synth::IncrementalSpec {
        files: args.files,
        inserts,
        updates,
        deletes: args.inc_changes - inserts - updates,
        big_inserts: 0,
    };
    let sort_key = match args.sk_type {
        SortKeyType::S => Some(KeyType::S),
        SortKeyType::N => Some(KeyType::N),
        SortKeyType::B => Some(KeyType::B),
        SortKeyType::None => None,
    };
    synth::SynthSpec {
        seed: args.seed,
        table: args.table,
        bucket: args.bucket,
        prefix: args.prefix,
        partition_key: synth::KeyAttr::new("pk", args.pk_type.into()),
        sort_key: sort_key.map(|t| synth::KeyAttr::new("sk", t.into())),
        view: match args.view {
            View::New => synth::OutputView::NewImage,
            View::NewAndOld => synth::OutputView::NewAndOldImages,
        },
        full_items: args.items,
        full_files: args.files,
        incrementals: vec![incremental; args.incrementals],
        big_items: args.big_items,
        item_size: args.item_size,
        gap: args.gap,
        write_expected: !args.no_expected,
        ..synth::SynthSpec::default()
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let out = args.out.clone();
    let result = synth::generate(&out, &spec(args))
        .map_err(|e| e.to_string())
        .and_then(|o| serde_json::to_string_pretty(&o).map_err(|e| e.to_string()))
        .and_then(|json| writeln!(std::io::stdout(), "{json}").map_err(|e| e.to_string()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ddb-pitr-gen: {e}");
            ExitCode::FAILURE
        }
    }
}
