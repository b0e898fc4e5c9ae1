//! MaskGIT iterative decoding (docs/reference.md §9.5).

use burn::config::Config;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::RngExt;

use crate::masking::{categorical, still_masked};
use crate::{Error, MaskGit, int_tensor};

/// Settings of [`sample`]; defaults are the reference's.
#[derive(Config, Debug)]
pub struct SamplerConfig {
    /// Decoding steps T. Reference: 10.
    #[config(default = 10)]
    pub steps: usize,
    /// Initial temperature of the Gumbel noise added to the confidences, annealed linearly to 0.
    /// Reference: 4.
    #[config(default = 4.0)]
    pub choice_temperature: f64,
    /// Classifier-free guidance weight `g`: `ℓ = ℓ_null + g·(ℓ_class − ℓ_null)`. 1 (the reference)
    /// is the plain conditional prior and skips the null pass (quirk Q11).
    #[config(default = 1.0)]
    pub guidance: f64,
}

/// Draws token grids `(b, N)` from the prior by iterative decoding. `classes`: one class index per
/// sample (`None`: unconditional, the null class). Conditional sampling never drops the label
/// (quirk Q10). Every returned token is a real code in `0..K`.
pub fn sample<R: rand::Rng + ?Sized>(
    prior: &MaskGit,
    b: usize,
    classes: Option<&[usize]>,
    config: &SamplerConfig,
    device: &Device,
    rng: &mut R,
) -> Result<Vec<i64>, Error> {
    let (n, k) = (prior.n_tokens(), prior.codebook_size());
    let mask = prior.mask_id() as i64;
    let null = prior.n_classes();
    let class_ids: Vec<i64> = match classes {
        Some(c) => {
            if c.len() != b {
                return Err(Error::Config(format!("{} class labels for {b} samples", c.len())));
            }
            if let Some(&bad) = c.iter().find(|&&c| c >= null) {
                return Err(Error::Class { class: bad, n_classes: null });
            }
            c.iter().map(|&c| c as i64).collect()
        }
        None => vec![null as i64; b],
    };
    if config.steps == 0 {
        return Err(Error::Config("decoding needs at least one step".into()));
    }
    let class_tensor = |v: &[i64]| Tensor::<1, Int>::from_data(TensorData::new(v.to_vec(), [b]), device);
    let guided = classes.is_some() && config.guidance != 1.0;
    let mut s = vec![mask; b * n];
    for t in 0..config.steps {
        let ids = int_tensor(s.clone(), [b, n], device);
        let mut logits = prior.logits(ids.clone(), class_tensor(&class_ids));
        if guided {
            let uncond = prior.logits(ids, class_tensor(&vec![null as i64; b]));
            logits = uncond.clone().add(logits.sub(uncond).mul_scalar(config.guidance));
        }
        let logits = logits.try_into_vec_as::<f32>().map_err(|e| Error::Device(format!("{e:?}")))?;
        let r = (t + 1) as f64 / config.steps as f64;
        let keep_masked = still_masked(n, t, config.steps);
        let temperature = config.choice_temperature * (1.0 - r);
        for i in 0..b {
            let row = &mut s[i * n..(i + 1) * n];
            let mut confidence = vec![f64::INFINITY; n];
            for (p, slot) in row.iter_mut().enumerate() {
                if *slot != mask {
                    continue;
                }
                let l = &logits[(i * n + p) * k..(i * n + p + 1) * k];
                let code = categorical(l, rng).ok_or(Error::NonFinite { position: p })?;
                let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                let log_z = max + l.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
                let prob = (l[code] as f64 - log_z).exp();
                let u: f64 = rng.random::<f64>().max(1e-20);
                let gumbel = -(-(u.ln())).max(1e-20).ln();
                confidence[p] = (prob + 1e-5).ln() + temperature * gumbel;
                *slot = code as i64;
            }
            // Reset the `keep_masked` least confident new tokens (fixed tokens have +∞).
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| confidence[a].total_cmp(&confidence[b]));
            for &p in order.iter().take(keep_masked) {
                row[p] = mask;
            }
        }
    }
    debug_assert!(s.iter().all(|&c| c >= 0 && (c as usize) < k));
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MaskGitConfig, TrunkConfig, Variant};
    use burn::tensor::Distribution;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn prior(variant: Variant, device: &Device) -> MaskGit {
        device.seed(9);
        let codebook = Tensor::<2>::random([32, 64], Distribution::Normal(0.0, 1.0), device);
        MaskGitConfig::new(TrunkConfig::new(40, 3).with_depth(1), variant).init(codebook, device).unwrap()
    }

    #[test]
    fn sampling_fills_every_position_with_a_real_code_and_is_seeded() {
        let device = Device::flex();
        for variant in [Variant::Token, Variant::Embedding] {
            let p = prior(variant, &device);
            let config = SamplerConfig::new();
            let a = sample(&p, 4, Some(&[0, 1, 2, 0]), &config, &device, &mut StdRng::seed_from_u64(1)).unwrap();
            assert_eq!(a.len(), 4 * 40);
            assert!(a.iter().all(|&c| (0..32).contains(&c)), "{variant:?}: only real codes, no mask id");
            let b = sample(&p, 4, Some(&[0, 1, 2, 0]), &config, &device, &mut StdRng::seed_from_u64(1)).unwrap();
            assert_eq!(a, b, "same seed, same tokens");
            let c = sample(&p, 4, Some(&[0, 1, 2, 0]), &config, &device, &mut StdRng::seed_from_u64(2)).unwrap();
            assert_ne!(a, c, "another seed, other tokens");
            let u = sample(&p, 4, None, &config.clone().with_guidance(3.0), &device, &mut StdRng::seed_from_u64(1)).unwrap();
            assert!(u.iter().all(|&c| (0..32).contains(&c)));
        }
    }

    #[test]
    fn a_class_the_prior_does_not_know_is_an_error() {
        let device = Device::flex();
        let p = prior(Variant::Token, &device);
        let err = sample(&p, 1, Some(&[3]), &SamplerConfig::new(), &device, &mut StdRng::seed_from_u64(1)).unwrap_err();
        assert!(err.to_string().contains("class 3"), "{err}");
    }
}
