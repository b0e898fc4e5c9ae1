//! `nc-vqvae data`: datasets loaded, validated and described.

use std::path::PathBuf;

use clap::Subcommand;
use nc_vqvae::inspect::DatasetReport;

use super::{Failure, print_json};

#[derive(Debug, Subcommand)]
pub(crate) enum DataCommand {
    /// Load, validate and describe a dataset (counts, lengths, classes, NaN cells).
    Inspect {
        /// A UCR name (looked up in --data-dir, then $NC_VQVAE_DATA, then the bundled data), a
        /// path to a *_TRAIN.tsv[.gz] / *_TEST.tsv[.gz] file, or a file of one's own series (text
        /// with a label column first, or a .npy array; every fifth series is shown as the test split).
        dataset: String,
        /// A directory holding <Name>/<Name>_TRAIN.tsv[.gz] and <Name>/<Name>_TEST.tsv[.gz].
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Print JSON: {"name", "train": {"n", "length_min", "length_max", "classes", "nan_values"}, "test": {…}}.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `data inspect`.
pub(crate) fn run(command: DataCommand) -> Result<(), Failure> {
    let DataCommand::Inspect { dataset, data_dir, json } = command;
    // A UCR dataset, or a file of one's own series with its type's default labels.
    let mut spec = nc_vqvae::config::OnDataset::on(&dataset, ());
    spec.data_dir = data_dir;
    let data = spec.load_data()?;
    let report = DatasetReport::new(&data);
    if json {
        print_json(&report)?;
    } else {
        print!("{}", report.to_text(&data));
    }
    Ok(())
}
