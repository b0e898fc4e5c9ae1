//! NC-VQVAE with the thesis recipe on your own series, no UCR files and no CLI: two classes of
//! noisy signals as `Vec<Vec<f32>>`, stage-1 training (Barlow Twins, slice-and-shuffle, AdamW and
//! the cosine schedule of the reference), the KNN / SVM probes on the test split, the tokenizer
//! saved to a file.
//!
//!     cargo run --release -p train --example own_series -- [EPOCHS]    (default 20; CI runs 2)

use burn::tensor::Device;
use train::RunContext;
use train::stage1::{SslChoice, Stage1Config, train_tokenizer};
use ucr_data::{RawSplit, UcrDataset};

/// `n` series of length 96: sines of rising frequency (label 1) and noisy square waves (label 2).
fn my_series(n: usize, offset: usize) -> (Vec<i64>, Vec<Vec<f32>>) {
    let wave = |i: usize, t: usize| {
        let (f, noise) =
            (0.05 + 0.01 * (i % 7) as f32, 0.1 * (((i + offset) * 31 + t * 17) % 13) as f32 / 13.0);
        if i.is_multiple_of(2) {
            (t as f32 * f).sin() + noise
        } else {
            (t as f32 * f).sin().signum() + noise
        }
    };
    (
        (0..n).map(|i| 1 + (i % 2) as i64).collect(),
        (0..n).map(|i| (0..96).map(|t| wave(i, t)).collect()).collect(),
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let epochs = std::env::args().nth(1).map_or(Ok(20), |a| a.parse())?;
    let ((train_y, train_x), (test_y, test_x)) = (my_series(64, 0), my_series(32, 1000));
    let data = UcrDataset::from_raw(
        "my-signals",
        RawSplit::from_series("train", &train_y, &train_x)?,
        RawSplit::from_series("test", &test_y, &test_x)?,
    )?;

    // The thesis recipe (Stage1Config's defaults) with a shorter schedule and a narrower projector.
    let mut config = Stage1Config::new(SslChoice::BarlowTwins);
    (config.epochs, config.batch_size, config.projector_dim) = (epochs, 32, 512);
    let trained = train_tokenizer(
        &config,
        &data,
        &Device::flex(),
        RunContext::in_memory(&mut train::Silent),
    )?;

    let e = trained.evaluation;
    println!(
        "{epochs} epochs in {:.1} s: KNN {:.3}, SVM {:.3}, test MSE {:.4}, perplexity {:.1}",
        trained.seconds, e.knn, e.svm, e.recon_time, e.perplexity
    );
    let path = std::env::temp_dir().join("my-signals-tokenizer.bpk");
    train::persist::save_weights(trained.model, &path)?;
    println!("tokenizer saved to {}", path.display());
    Ok(())
}
