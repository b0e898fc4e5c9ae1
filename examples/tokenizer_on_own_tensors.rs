//! A library consumer that uses only `vqvae` and `ssl-losses` (no CLI, no UCR files): build the
//! NC-VQVAE tokenizer for series of length 96, train it a few steps on its own tensors (noisy
//! sines, with a hand-made second view), then read tokens and pooled features.
//!
//!     cargo run --release --example tokenizer_on_own_tensors
//!
//! Everything runs on the `Device` the caller picks; here Burn's `flex` CPU backend.

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use ssl_losses::SslMethod;
use vqvae::{NcVqVaeConfig, VqVaeConfig};

fn main() {
    let plain = Device::flex();
    let device = plain.clone().autodiff();
    device.seed(7);
    let (batch, length) = (16, 96);
    // A small projector keeps this example fast; the thesis uses 4096.
    let model_config = NcVqVaeConfig::new(VqVaeConfig::new(length), SslMethod::BarlowTwins)
        .with_projector_dim(256);
    let mut model = model_config.init(&device).expect("length 96 is supported");
    let mut optim = AdamWConfig::new().with_weight_decay(1e-3).with_epsilon(1e-8).init();

    // Your data: (batch, channels, length). Two views of each series: the second one is shifted
    // and rescaled, the kind of change the SSL branch learns to ignore.
    let series = |shift: f32, scale: f32| -> Vec<f32> {
        (0..batch)
            .flat_map(|i| {
                let freq = 0.05 + 0.25 * i as f32 / batch as f32;
                (0..length).map(move |t| {
                    scale * ((t as f32 + shift) * freq).sin()
                        + 0.1 * ((t * 7 + i * 13) % 11) as f32 / 11.0
                })
            })
            .collect()
    };
    let tensor = |values: Vec<f32>, device: &Device| {
        Tensor::<3>::from_data(TensorData::new(values, [batch, 1, length]), device)
    };
    let (x, x_aug) = (tensor(series(0.0, 1.0), &device), tensor(series(5.0, 1.2), &device));

    for step in 1..=5 {
        let losses = model.losses(x.clone(), x_aug.clone());
        println!(
            "step {step}: total {:.4}  recon {:.4}  barlow-twins {:.4}",
            losses.total.clone().into_scalar::<f32>(),
            losses.recon_time.clone().into_scalar::<f32>(),
            losses.ssl.clone().into_scalar::<f32>()
        );
        let grads = GradientsParams::from_grads(losses.total.backward(), &model);
        model = optim.step(1e-3, model, grads);
    }

    // Inference on a plain device: tokens (B, 5·W') and the pooled features the probes use.
    let tokenizer = model.valid().into_vqvae();
    let x = tensor(series(0.0, 1.0), &plain);
    let tokens = tokenizer.tokens(x.clone());
    let features = tokenizer.pooled_features(x);
    println!("tokens {:?}, features {:?}", tokens.dims(), features.dims());
}
