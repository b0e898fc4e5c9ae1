//! MaskGIT iterative decoding (docs/reference.md §9.5).

use burn::config::Config;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::RngExt;

use rayon::prelude::*;

use crate::masking::{pick, still_masked};
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
    let guided = classes.is_some() && config.guidance != 1.0;
    let mut s = vec![mask; b * n];
    // The decoding steps with the pool's idle workers spinning between ops (kernels::spinning).
    kernels::spinning(device, || {
        decode(prior, &mut s, [b, n, k], &class_ids, guided, config, device, rng)
    })?;
    debug_assert!(s.iter().all(|&c| c >= 0 && (c as usize) < k));
    Ok(s)
}

/// [`sample`]'s decoding steps on the grids `s` (all masked at first).
/// `guided`: with classifier-free guidance (conditional, guidance ≠ 1).
#[allow(clippy::too_many_arguments)]
fn decode<R: rand::Rng + ?Sized>(
    prior: &MaskGit,
    s: &mut [i64],
    [b, n, k]: [usize; 3],
    class_ids: &[i64],
    guided: bool,
    config: &SamplerConfig,
    device: &Device,
    rng: &mut R,
) -> Result<(), Error> {
    let mask = prior.mask_id() as i64;
    let null = prior.n_classes();
    let class_tensor =
        |v: &[i64]| Tensor::<1, Int>::from_data(TensorData::new(v.to_vec(), [b]), device);
    for t in 0..config.steps {
        let ids = int_tensor(s.to_vec(), [b, n], device);
        let mut logits = prior.logits(ids.clone(), class_tensor(class_ids));
        if guided {
            let uncond = prior.logits(ids, class_tensor(&vec![null as i64; b]));
            logits = uncond.clone().add(logits.sub(uncond).mul_scalar(config.guidance));
        }
        let logits =
            logits.try_into_vec_as::<f32>().map_err(|e| Error::Device(format!("{e:?}")))?;
        let r = (t + 1) as f64 / config.steps as f64;
        let keep_masked = still_masked(n, t, config.steps);
        let temperature = config.choice_temperature * (1.0 - r);
        // The random numbers in the order one sample after another would draw them (per masked
        // position the categorical draw's, then the Gumbel noise's), so that the samples are
        // decoded in parallel into the same tokens for a seed whatever the thread count. (On one
        // thread this loop, two passes of `exp` over K logits per masked position, is a small
        // part of a sampling batch's CPU time: the profiles in docs/benchmarks-history.md.)
        let mut draws = Vec::new();
        let mut starts = Vec::with_capacity(b);
        for row in s.chunks(n) {
            starts.push(draws.len());
            for _ in row.iter().filter(|&&c| c == mask) {
                draws.push(rng.random::<f64>());
                draws.push(rng.random::<f64>().max(1e-20));
            }
        }
        s.par_chunks_mut(n)
            .zip(logits.par_chunks(n * k))
            .zip(starts)
            .map(|((row, logits), start)| {
                decode_row(row, logits, &draws[start..], mask, keep_masked, temperature)
            })
            .collect::<Result<Vec<()>, Error>>()?;
    }
    Ok(())
}

/// One decoding step of one sample: every masked position of `row` gets a code drawn from its
/// `logits` (`(N, K)`), and the `keep_masked` least confident of the new codes are masked again
/// (confidence: the code's log-probability plus `temperature` times Gumbel noise; fixed tokens
/// have +∞). `draws`: two uniforms per masked position, in order.
fn decode_row(
    row: &mut [i64],
    logits: &[f32],
    draws: &[f64],
    mask: i64,
    keep_masked: usize,
    temperature: f64,
) -> Result<(), Error> {
    let n = row.len();
    let k = logits.len() / n;
    let mut confidence = vec![f64::INFINITY; n];
    let mut weights = Vec::with_capacity(k);
    let mut draws = draws.chunks_exact(2);
    for (p, slot) in row.iter_mut().enumerate() {
        if *slot != mask {
            continue;
        }
        let l = &logits[p * k..(p + 1) * k];
        let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let Some(&[u, v]) = draws.next() else { unreachable!("two draws per masked position") };
        if !max.is_finite() {
            return Err(Error::NonFinite { position: p });
        }
        // log Z from the draw's own weights (one pass of `exp`, not two).
        let (code, total) = pick(l, max, u, &mut weights);
        let log_z = max as f64 + total.ln();
        let prob = (l[code] as f64 - log_z).exp();
        let gumbel = -(-(v.ln())).max(1e-20).ln();
        confidence[p] = (prob + 1e-5).ln() + temperature * gumbel;
        *slot = code as i64;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| confidence[a].total_cmp(&confidence[b]));
    for &p in order.iter().take(keep_masked) {
        row[p] = mask;
    }
    Ok(())
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
        MaskGitConfig::new(TrunkConfig::new(40, 3).with_depth(1), variant)
            .init(codebook, device)
            .unwrap()
    }

    /// The samples are decoded in parallel from draws made in order: one thread or four, the
    /// same tokens for a seed.
    #[test]
    fn sampling_gives_the_same_tokens_on_any_thread_count() {
        let device = Device::flex();
        let p = prior(Variant::Token, &device);
        let config = SamplerConfig::new();
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                sample(
                    &p,
                    9,
                    Some(&[0, 1, 2, 0, 1, 2, 0, 1, 2]),
                    &config,
                    &device,
                    &mut StdRng::seed_from_u64(5),
                )
                .unwrap()
            })
        };
        let one = on(1);
        assert_eq!(one.len(), 9 * 40);
        // Samples 0, 3 and 6 share a class, so the same logits: only their own draws tell them apart.
        let row = |i: usize| &one[i * 40..(i + 1) * 40];
        assert!(
            row(0) != row(3) && row(3) != row(6) && row(0) != row(6),
            "each sample its own draws"
        );
        assert_eq!(on(4), one);
        assert_eq!(on(3), one);
    }

    #[test]
    fn sampling_fills_every_position_with_a_real_code_and_is_seeded() {
        let device = Device::flex();
        for variant in [Variant::Token, Variant::Embedding] {
            let p = prior(variant, &device);
            let config = SamplerConfig::new();
            let a =
                sample(&p, 4, Some(&[0, 1, 2, 0]), &config, &device, &mut StdRng::seed_from_u64(1))
                    .unwrap();
            assert_eq!(a.len(), 4 * 40);
            assert!(
                a.iter().all(|&c| (0..32).contains(&c)),
                "{variant:?}: only real codes, no mask id"
            );
            let b =
                sample(&p, 4, Some(&[0, 1, 2, 0]), &config, &device, &mut StdRng::seed_from_u64(1))
                    .unwrap();
            assert_eq!(a, b, "same seed, same tokens");
            let c =
                sample(&p, 4, Some(&[0, 1, 2, 0]), &config, &device, &mut StdRng::seed_from_u64(2))
                    .unwrap();
            assert_ne!(a, c, "another seed, other tokens");
            let u = sample(
                &p,
                4,
                None,
                &config.clone().with_guidance(3.0),
                &device,
                &mut StdRng::seed_from_u64(1),
            )
            .unwrap();
            assert!(u.iter().all(|&c| (0..32).contains(&c)));
        }
    }

    #[test]
    fn a_class_the_prior_does_not_know_is_an_error() {
        let device = Device::flex();
        let p = prior(Variant::Token, &device);
        let err = sample(
            &p,
            1,
            Some(&[3]),
            &SamplerConfig::new(),
            &device,
            &mut StdRng::seed_from_u64(1),
        )
        .unwrap_err();
        assert!(err.to_string().contains("class 3"), "{err}");
    }
}
