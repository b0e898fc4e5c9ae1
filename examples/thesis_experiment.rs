//! One thesis experiment through the library API: the baseline VQ-VAE against one NC-VQVAE
//! setting on one dataset, stage 1 → stage 2 → FID / IS / CAS → report, exactly what
//! `nc-vqvae run` does. The experiment families of the thesis are the SSL method × augmentation
//! pairs (docs/reference.md §11); pick one with the arguments:
//!
//!     cargo run --release --example thesis_experiment -- [DATASET] [barlow-twins|vibcreg] [warp|slice|gauss] [EPOCHS]
//!
//! e.g. `-- TwoPatterns vibcreg warp 10` (the bundled TwoPatterns needs no download; other UCR
//! names are looked up in $NC_VQVAE_DATA). The job folder is `runs/example-DATASET-SSL-AUG`.

use std::path::PathBuf;

use burn::tensor::Device;
use nc_vqvae::pipeline::JobConfig;
use nc_vqvae::report;
use nc_vqvae::stage1::{Recipe, SslChoice};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dataset = args.first().cloned().unwrap_or_else(|| "TwoPatterns".into());
    let ssl: SslChoice = args
        .get(1)
        .map_or("barlow-twins", String::as_str)
        .parse()
        .unwrap_or_else(|e| exit_usage(e));
    let aug: Recipe =
        args.get(2).map_or("warp", String::as_str).parse().unwrap_or_else(|e| exit_usage(e));
    let mut job = JobConfig::quick(&dataset).with_dataset(&dataset, None);
    job.run.ssl = ssl;
    job.run.aug = aug;
    if let Some(epochs) = args.get(3).and_then(|e| e.parse().ok()) {
        job.stage1.epochs = epochs;
        job.stage2.epochs = epochs;
    }
    let out =
        PathBuf::from("runs").join(format!("example-{dataset}-{ssl:?}-{aug:?}").to_lowercase());
    match report::job(&job, &out, &Device::flex(), true) {
        Ok((_, base, nc)) => println!(
            "SVM probe {:.3} -> {:.3}, KNN {:.3} -> {:.3}; report: {}",
            base.stage1.probe_svm_acc,
            nc.stage1.probe_svm_acc,
            base.stage1.probe_knn_acc,
            nc.stage1.probe_knn_acc,
            out.join("report.md").display()
        ),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(if e.is_input_error() { 2 } else { 1 });
        }
    }
}

/// Stops with a usage error (exit code 2).
fn exit_usage(message: impl std::fmt::Display) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2)
}
