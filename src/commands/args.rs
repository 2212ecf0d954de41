//! Flags shared by several subcommands, so that `restore` and `validate` read a chain the same way.

use clap::{Args, ValueEnum};
use ddb_pitr::access::AutoScaling;
use ddb_pitr::chain::Expectations;
use ddb_pitr::location::ExportUri;
use ddb_pitr::manifest::{ExportType, OutputView};

/// The target table and the export chain.
#[derive(Args)]
pub struct ChainArgs {
    /// Target table. It must exist, be ACTIVE and have the export's key schema.
    #[arg(long)]
    pub table: String,
    /// An export: s3://bucket/prefix/AWSDynamoDB/<export-id>/ or its manifest-summary.json. Repeat to apply a
    /// FULL export and then INCREMENTAL exports, in the order given.
    #[arg(long = "export", value_name = "S3_URI", required = true)]
    exports: Vec<String>,
    /// Assert the export type (once for all exports, or once per --export); read from the manifest otherwise.
    #[arg(long = "type", value_enum)]
    types: Vec<TypeArg>,
    /// Assert the INCREMENTAL exports' output view.
    #[arg(long, value_enum)]
    view: Option<ViewArg>,
    /// Accept a chain with gaps or overlaps between exports (they are listed in the report).
    #[arg(long)]
    allow_gaps: bool,
}

impl ChainArgs {
    pub fn export_uris(&self) -> anyhow::Result<Vec<ExportUri>> {
        Ok(self
            .exports
            .iter()
            .map(|e| e.parse())
            .collect::<Result<Vec<_>, _>>()?)
    }

    pub fn expectations(&self) -> Expectations {
        Expectations {
            types: self
                .types
                .iter()
                .map(|t| match t {
                    TypeArg::Full => ExportType::Full,
                    TypeArg::Incremental => ExportType::Incremental,
                })
                .collect(),
            view: self.view.map(|v| match v {
                ViewArg::New => OutputView::NewImage,
                ViewArg::NewAndOld => OutputView::NewAndOldImages,
            }),
            allow_gaps: self.allow_gaps,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum TypeArg {
    #[value(name = "FULL", alias = "full")]
    Full,
    #[value(name = "INCREMENTAL", alias = "incremental")]
    Incremental,
}

#[derive(Clone, Copy, ValueEnum)]
enum ViewArg {
    #[value(name = "NEW", alias = "new")]
    New,
    #[value(name = "NEW_AND_OLD", alias = "new_and_old")]
    NewAndOld,
}

/// `--autoscaling`: what `--manage-capacity` does with a table under Application Auto Scaling.
#[derive(Clone, Copy, ValueEnum)]
pub enum AutoScalingArg {
    Refuse,
    Adjust,
}

impl From<AutoScalingArg> for AutoScaling {
    fn from(a: AutoScalingArg) -> Self {
        match a {
            AutoScalingArg::Refuse => AutoScaling::Refuse,
            AutoScalingArg::Adjust => AutoScaling::Adjust,
        }
    }
}
