//! The training steps `bench` times, as closures that run one step each.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use maskgit::{MaskGitConfig, TrunkConfig, Variant, int_tensor};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use ssl_losses::SslMethod;
use vqvae::{NcVqVaeConfig, VqVaeConfig};

use nc_vqvae::stage1::Stage1Run;
use nc_vqvae::stage2::latent_width;

use super::timing::{BenchError, Shape};

pub(super) fn series(shape: Shape, device: &Device) -> Tensor<3> {
    Tensor::random([shape.batch, 1, shape.length], Distribution::Normal(0.0, 1.0), device)
}

/// Training steps of `model`, one per call: `loss` builds the step's loss (read back once, as a
/// training loop logs it), then backward and the thesis' stage-1 AdamW update (docs/reference.md
/// §8.1, from the `Stage1Run` defaults).
pub(super) fn trainer<M: Module>(model: M, mut loss: impl FnMut(&M) -> Tensor<1>) -> impl FnMut() {
    let c = Stage1Run::new("bench");
    let mut optim = train::adamw(c.beta1, c.beta2, c.epsilon, c.weight_decay);
    let mut model = Some(model);
    move || {
        let m = model.take().expect("model is put back after every step");
        let l = loss(&m);
        let _ = l.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(l.backward(), &m);
        model = Some(optim.step(c.lr, m, grads));
    }
}

/// The stage-1 training steps of NC-VQVAE (Barlow Twins, `projector_dim`) or, without
/// `nc_vqvae`, of the baseline VQ-VAE at `shape` on the autodiff device `train`, one per call.
pub(super) fn stage1_trainer<'a>(
    nc_vqvae: bool,
    shape: Shape,
    projector_dim: usize,
    train: &'a Device,
) -> Result<Box<dyn FnMut() + 'a>, BenchError> {
    if !nc_vqvae {
        return Ok(Box::new(trainer(VqVaeConfig::new(shape.length).init(train)?, move |m| {
            m.losses(series(shape, train)).total
        })));
    }
    let config = NcVqVaeConfig::new(VqVaeConfig::new(shape.length), SslMethod::BarlowTwins)
        .with_projector_dim(projector_dim);
    Ok(Box::new(trainer(config.init(train)?, move |m| {
        let x = series(shape, train);
        let x_aug = x.clone() + series(shape, train) * 0.1;
        m.losses(x, x_aug).total
    })))
}

/// The stage-2 prior's training steps at `shape` (random token grids, 60 % masked, random
/// classes) on the autodiff device `train`, one per call.
pub(super) fn prior_trainer<'a>(
    shape: Shape,
    seed: u64,
    device: &Device,
    train: &'a Device,
) -> Result<Box<dyn FnMut() + 'a>, BenchError> {
    let tokenizer = VqVaeConfig::new(shape.length).init(device)?;
    let n = 5 * latent_width(&tokenizer, device);
    let k = tokenizer.quantizer().codebook_size();
    let n_classes = 2;
    let prior = MaskGitConfig::new(TrunkConfig::new(n, n_classes), Variant::Token)
        .init(tokenizer.quantizer().codebook().to_device(train), train)?;
    let mut rng = StdRng::seed_from_u64(seed);
    Ok(Box::new(trainer(prior, move |p| {
        let (b, k) = (shape.batch, k as i64);
        let targets: Vec<i64> = (0..b * n).map(|_| rng.random_range(0..k)).collect();
        let hidden: Vec<bool> = (0..b * n).map(|_| rng.random_bool(0.6)).collect();
        let ids: Vec<i64> =
            targets.iter().zip(&hidden).map(|(&t, &h)| if h { k } else { t }).collect();
        let weights: Vec<f32> = hidden.iter().map(|&h| if h { 1.0 } else { 0.0 }).collect();
        let classes: Vec<i64> = (0..b).map(|_| rng.random_range(0..=n_classes as i64)).collect();
        p.loss(
            int_tensor(ids, [b, n], train),
            Tensor::<1, Int>::from_data(TensorData::new(classes, [b]), train),
            int_tensor(targets, [b, n], train),
            Tensor::from_data(TensorData::new(weights, [b, n]), train),
        )
    })))
}
