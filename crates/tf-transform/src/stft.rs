//! STFT and ISTFT (docs/reference.md §3) as a windowed-DFT matrix product and a shifted-sum overlap-add.
//!
//! Framing: after centre padding by `n_fft/2` on each side, frame `t` covers samples
//! `[t·hop, t·hop + n_fft)`. With `r = n_fft / hop` the padded signal is viewed as chunks of `hop`
//! samples, and frame `t` is chunks `t..t+r`; stacking `r` shifted views gives all frames at once.
//! Overlap-add is the same idea backwards: chunk `j` of frame `t` lands on output chunk `t + j`, so
//! the output is the sum of `r` shifted (zero-padded) views. No per-frame loop, no FFT kernel.

use burn::config::Config;
use burn::tensor::ops::PadMode;
use burn::tensor::{Tensor, TensorData};
use std::f64::consts::PI;

/// Invalid transform settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `n_fft` must be even and at least 2.
    #[error("n_fft must be even and at least 2, got {0}")]
    NFft(usize),
    /// The hop must be at least 1 and divide `n_fft`.
    #[error("hop_length must be at least 1 and divide n_fft = {n_fft}, got {hop}")]
    Hop {
        /// The FFT size.
        n_fft: usize,
        /// The hop asked for.
        hop: usize,
    },
    /// Reflect padding needs more samples than `n_fft / 2`.
    #[error("series length {length} is too short for the STFT: it must exceed n_fft/2 = {min}")]
    TooShort {
        /// The series length.
        length: usize,
        /// `n_fft / 2`.
        min: usize,
    },
}

/// Settings of the time–frequency transform. Defaults are the thesis settings (docs/reference.md §3).
#[derive(Config, Debug, PartialEq)]
pub struct StftConfig {
    /// FFT size and window length. Thesis: 8 (5 one-sided frequency bins).
    #[config(default = 8)]
    pub n_fft: usize,
    /// Samples between frames. Thesis: 2 (`n_fft / 4`, the PyTorch default).
    #[config(default = 2)]
    pub hop_length: usize,
}

/// The STFT / ISTFT pair. Holds only the (tiny) DFT bases on the host; tensors are created on the
/// device of the input, so one value serves every backend.
#[derive(Debug, Clone, PartialEq)]
pub struct Stft {
    n_fft: usize,
    hop: usize,
    /// Periodic Hann window.
    window: Vec<f64>,
    /// `(n_fft, 2·F)`: columns `0..F` give the real parts, `F..2F` the imaginary parts.
    forward_basis: Vec<f32>,
    /// `(2·F, n_fft)`: the windowed inverse real DFT.
    inverse_basis: Vec<f32>,
}

impl Stft {
    /// Validates the settings and precomputes the bases.
    pub fn new(config: &StftConfig) -> Result<Self, Error> {
        let (n_fft, hop) = (config.n_fft, config.hop_length);
        if n_fft < 2 || n_fft % 2 != 0 {
            return Err(Error::NFft(n_fft));
        }
        if hop == 0 || n_fft % hop != 0 {
            return Err(Error::Hop { n_fft, hop });
        }
        let window: Vec<f64> =
            (0..n_fft).map(|k| 0.5 - 0.5 * (2.0 * PI * k as f64 / n_fft as f64).cos()).collect();
        let bins = n_fft / 2 + 1;
        let angle = |f: usize, k: usize| 2.0 * PI * (f * k) as f64 / n_fft as f64;
        let mut forward_basis = vec![0f32; n_fft * 2 * bins];
        let mut inverse_basis = vec![0f32; 2 * bins * n_fft];
        for k in 0..n_fft {
            for f in 0..bins {
                let a = angle(f, k);
                forward_basis[k * 2 * bins + f] = (window[k] * a.cos()) as f32;
                forward_basis[k * 2 * bins + bins + f] = (-window[k] * a.sin()) as f32;
                // Inverse real DFT of a one-sided spectrum: bins other than DC and Nyquist stand
                // for a conjugate pair (weight 2); the imaginary parts of DC and Nyquist drop out
                // (their sine is zero), as in `torch.fft.irfft`.
                let weight = if f == 0 || 2 * f == n_fft { 1.0 } else { 2.0 } / n_fft as f64;
                inverse_basis[f * n_fft + k] = (window[k] * weight * a.cos()) as f32;
                inverse_basis[(bins + f) * n_fft + k] = (-window[k] * weight * a.sin()) as f32;
            }
        }
        Ok(Self { n_fft, hop, window, forward_basis, inverse_basis })
    }

    /// Number of one-sided frequency bins, `n_fft/2 + 1` (5 for the thesis).
    pub fn bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Number of frames for a series of `length` samples: `1 + ⌊length / hop⌋`.
    pub fn frames(&self, length: usize) -> usize {
        1 + length / self.hop
    }

    /// Length of the ISTFT output for `frames` frames: `hop · (frames − 1)`.
    pub fn output_length(&self, frames: usize) -> usize {
        self.hop * frames.saturating_sub(1)
    }

    /// Checks that `length` can be transformed (reflect padding needs `length > n_fft/2`).
    pub fn check_length(&self, length: usize) -> Result<(), Error> {
        if length > self.n_fft / 2 {
            Ok(())
        } else {
            Err(Error::TooShort { length, min: self.n_fft / 2 })
        }
    }

    /// STFT of `x`, shape `(B, C, L)` → `(B, 2C, bins, frames)`, real/imag interleaved per channel.
    ///
    /// # Panics
    /// If `L ≤ n_fft/2` (see [`Stft::check_length`]).
    pub fn forward(&self, x: Tensor<3>) -> Tensor<4> {
        let [b, c, length] = x.dims();
        if let Err(e) = self.check_length(length) {
            panic!("{e}");
        }
        let device = x.device();
        let (n_fft, hop, bins) = (self.n_fft, self.hop, self.bins());
        let (pad, r, frames) = (n_fft / 2, n_fft / hop, self.frames(length));
        let x = x.reshape([b * c, length]);
        // Centre padding by reflection, mirroring without repeating the edge sample.
        let left = x.clone().narrow(1, 1, pad).flip([1]);
        let right = x.clone().narrow(1, length - 1 - pad, pad).flip([1]);
        let padded = Tensor::cat(vec![left, x, right], 1);
        let chunks =
            padded.narrow(1, 0, (frames - 1 + r) * hop).reshape([b * c, frames - 1 + r, hop]);
        let shifted: Vec<Tensor<3>> = (0..r).map(|j| chunks.clone().narrow(1, j, frames)).collect();
        let framed: Tensor<4> = Tensor::stack(shifted, 2); // (B·C, frames, r, hop)
        let framed = framed.reshape([b * c * frames, n_fft]);
        let basis = Tensor::<2>::from_data(
            TensorData::new(self.forward_basis.clone(), [n_fft, 2 * bins]),
            &device,
        );
        let spectrum = framed.matmul(basis); // (B·C·frames, 2·bins)
        let spectrum: Tensor<5> = spectrum.reshape([b, c, frames, 2, bins]);
        spectrum.permute([0, 1, 3, 4, 2]).reshape([b, 2 * c, bins, frames])
    }

    /// ISTFT of `u`, shape `(B, 2C, bins, frames)` → `(B, C, hop·(frames − 1))`, cropped to
    /// `original_length` if that is shorter (it never pads).
    ///
    /// # Panics
    /// If the channel count is odd or the bin count is not `n_fft/2 + 1`.
    pub fn inverse(&self, u: Tensor<4>, original_length: Option<usize>) -> Tensor<3> {
        let [b, c2, bins, frames] = u.dims();
        assert!(c2 % 2 == 0, "ISTFT input needs real/imag channel pairs, got {c2} channels");
        assert_eq!(
            bins,
            self.bins(),
            "ISTFT input has {bins} frequency bins, expected {}",
            self.bins()
        );
        let device = u.device();
        let (n_fft, hop, c) = (self.n_fft, self.hop, c2 / 2);
        let (pad, r) = (n_fft / 2, n_fft / hop);
        let u: Tensor<5> = u.reshape([b, c, 2, bins, frames]);
        let spectrum = u.permute([0, 1, 4, 2, 3]).reshape([b * c * frames, 2 * bins]);
        let basis = Tensor::<2>::from_data(
            TensorData::new(self.inverse_basis.clone(), [2 * bins, n_fft]),
            &device,
        );
        let windowed = spectrum.matmul(basis).reshape([b * c, frames, r, hop]);
        let mut summed: Option<Tensor<3>> = None;
        for j in 0..r {
            let part: Tensor<3> = windowed.clone().narrow(2, j, 1).reshape([b * c, frames, hop]);
            let part = part.pad([(0, 0), (j, r - 1 - j), (0, 0)], PadMode::Constant(0.0));
            summed = Some(match summed {
                Some(s) => s.add(part),
                None => part,
            });
        }
        let full = (frames - 1 + r) * hop;
        let out_len = self.output_length(frames);
        let signal =
            summed.expect("n_fft / hop >= 1").reshape([b * c, full]).narrow(1, pad, out_len);
        let scale = Tensor::<2>::from_data(
            TensorData::new(self.inverse_envelope(frames), [1, out_len]),
            &device,
        );
        let signal = signal.mul(scale).reshape([b, c, out_len]);
        match original_length {
            Some(len) if len < out_len => signal.narrow(2, 0, len),
            _ => signal,
        }
    }

    /// `1 / Σ_t w²[n − t·hop]` over the cropped output range (the envelope is smaller near the ends).
    fn inverse_envelope(&self, frames: usize) -> Vec<f32> {
        let full = (frames - 1) * self.hop + self.n_fft;
        let mut envelope = vec![0f64; full];
        for t in 0..frames {
            for (k, w) in self.window.iter().enumerate() {
                envelope[t * self.hop + k] += w * w;
            }
        }
        let pad = self.n_fft / 2;
        envelope[pad..pad + self.output_length(frames)]
            .iter()
            .map(|e| (1.0 / e.max(1e-10)) as f32)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use rustfft::FftPlanner;
    use rustfft::num_complex::Complex64;

    const N_FFT: usize = 8;
    const HOP: usize = 2;

    fn hann() -> Vec<f64> {
        (0..N_FFT).map(|k| 0.5 - 0.5 * (2.0 * PI * k as f64 / N_FFT as f64).cos()).collect()
    }

    /// Straightforward f64 STFT of one series with rustfft: `(bins, frames)` complex.
    fn reference_stft(x: &[f64]) -> Vec<Vec<Complex64>> {
        let (l, pad) = (x.len(), N_FFT / 2);
        let mut padded: Vec<f64> = (1..=pad).rev().map(|i| x[i]).collect();
        padded.extend_from_slice(x);
        padded.extend((1..=pad).map(|i| x[l - 1 - i]));
        let fft = FftPlanner::new().plan_fft_forward(N_FFT);
        let w = hann();
        (0..1 + l / HOP)
            .map(|t| {
                let mut buf: Vec<Complex64> =
                    (0..N_FFT).map(|k| Complex64::new(padded[t * HOP + k] * w[k], 0.0)).collect();
                fft.process(&mut buf);
                buf[..N_FFT / 2 + 1].to_vec()
            })
            .collect()
    }

    /// Straightforward f64 ISTFT: Hermitian extension, inverse FFT, window, overlap-add, envelope.
    fn reference_istft(frames: &[Vec<Complex64>]) -> Vec<f64> {
        let ifft = FftPlanner::new().plan_fft_inverse(N_FFT);
        let w = hann();
        let full = (frames.len() - 1) * HOP + N_FFT;
        let (mut out, mut env) = (vec![0.0; full], vec![0.0; full]);
        for (t, bins) in frames.iter().enumerate() {
            let mut buf = vec![Complex64::new(0.0, 0.0); N_FFT];
            for f in 0..N_FFT {
                buf[f] = if f <= N_FFT / 2 { bins[f] } else { bins[N_FFT - f].conj() };
            }
            buf[0].im = 0.0;
            buf[N_FFT / 2].im = 0.0;
            ifft.process(&mut buf);
            for k in 0..N_FFT {
                out[t * HOP + k] += buf[k].re / N_FFT as f64 * w[k];
                env[t * HOP + k] += w[k] * w[k];
            }
        }
        let pad = N_FFT / 2;
        (pad..full - pad).map(|i| out[i] / env[i]).collect()
    }

    fn random(rng: &mut StdRng, n: usize) -> Vec<f64> {
        (0..n).map(|_| rng.random_range(-2.0..2.0)).collect()
    }

    fn tensor3(values: &[f64], shape: [usize; 3], device: &Device) -> Tensor<3> {
        let v: Vec<f32> = values.iter().map(|&v| v as f32).collect();
        Tensor::from_data(TensorData::new(v, shape), device)
    }

    fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.try_into_vec_as::<f32>().unwrap()
    }

    #[test]
    fn stft_matches_rustfft_reference() {
        let stft = Stft::new(&StftConfig::new()).unwrap();
        let device = Device::flex();
        let mut rng = StdRng::seed_from_u64(1);
        for length in [5, 6, 65, 70, 140, 945, 1024] {
            let (b, c) = (3, 2);
            let x = random(&mut rng, b * c * length);
            let u = stft.forward(tensor3(&x, [b, c, length], &device));
            let frames = 1 + length / 2;
            assert_eq!(u.dims(), [b, 2 * c, 5, frames]);
            let got = to_vec(u);
            let mut max_err = 0f64;
            for bi in 0..b {
                for ci in 0..c {
                    let series = &x[(bi * c + ci) * length..(bi * c + ci + 1) * length];
                    let want = reference_stft(series);
                    for (t, bins) in want.iter().enumerate() {
                        for (f, z) in bins.iter().enumerate() {
                            let at =
                                |part: usize| ((bi * 2 * c + 2 * ci + part) * 5 + f) * frames + t;
                            max_err = max_err.max((got[at(0)] as f64 - z.re).abs());
                            max_err = max_err.max((got[at(1)] as f64 - z.im).abs());
                        }
                    }
                }
            }
            assert!(max_err < 1e-5, "length {length}: max abs error {max_err}");
        }
    }

    #[test]
    fn istft_matches_rustfft_reference_on_arbitrary_spectra() {
        let stft = Stft::new(&StftConfig::new()).unwrap();
        let device = Device::flex();
        let mut rng = StdRng::seed_from_u64(2);
        for frames in [4, 36, 71] {
            let spec = random(&mut rng, 2 * 5 * frames);
            let u = Tensor::<4>::from_data(
                TensorData::new(
                    spec.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                    [1, 2, 5, frames],
                ),
                &device,
            );
            let got = to_vec(stft.inverse(u, None));
            let bins: Vec<Vec<Complex64>> = (0..frames)
                .map(|t| {
                    (0..5)
                        .map(|f| Complex64::new(spec[f * frames + t], spec[(5 + f) * frames + t]))
                        .collect()
                })
                .collect();
            let want = reference_istft(&bins);
            assert_eq!(got.len(), want.len());
            let max_err =
                got.iter().zip(&want).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
            assert!(max_err < 1e-5, "frames {frames}: max abs error {max_err}");
        }
    }

    #[test]
    fn round_trip_even_and_odd_lengths() {
        let stft = Stft::new(&StftConfig::new()).unwrap();
        let device = Device::flex();
        let mut rng = StdRng::seed_from_u64(3);
        for length in [5, 64, 65, 70, 140, 945, 1024] {
            let x = random(&mut rng, 2 * length);
            let back = stft.inverse(stft.forward(tensor3(&x, [2, 1, length], &device)), None);
            let out_len = 2 * (length / 2);
            assert_eq!(back.dims(), [2, 1, out_len], "odd lengths lose their last sample (Q4)");
            let got = to_vec(back);
            for s in 0..2 {
                for i in 0..out_len {
                    let err = (got[s * out_len + i] as f64 - x[s * length + i]).abs();
                    assert!(err < 1e-5, "length {length}, series {s}, sample {i}: error {err}");
                }
            }
        }
        let x = tensor3(&random(&mut rng, 140), [1, 1, 140], &device);
        assert_eq!(
            stft.inverse(stft.forward(x), Some(100)).dims(),
            [1, 1, 100],
            "original_length crops"
        );
    }

    /// Autodiff gradients of `Σ R ⊙ STFT(x)` and `Σ S ⊙ ISTFT(u)` against central finite
    /// differences of the f64 reference implementations.
    #[test]
    fn gradients_match_finite_differences() {
        let stft = Stft::new(&StftConfig::new()).unwrap();
        let device = Device::flex().autodiff();
        let mut rng = StdRng::seed_from_u64(4);
        let length = 13;
        let frames = 1 + length / 2;
        let x = random(&mut rng, length);
        let r = random(&mut rng, 2 * 5 * frames);
        let xt = tensor3(&x, [1, 1, length], &device).require_grad();
        let weights = Tensor::<4>::from_data(
            TensorData::new(r.iter().map(|&v| v as f32).collect::<Vec<_>>(), [1, 2, 5, frames]),
            &device,
        );
        let grads = stft.forward(xt.clone()).mul(weights).sum().backward();
        let grad = to_vec(xt.grad(&grads).expect("x is tracked"));
        let objective = |x: &[f64]| -> f64 {
            let spec = reference_stft(x);
            let mut total = 0.0;
            for (t, bins) in spec.iter().enumerate() {
                for (f, z) in bins.iter().enumerate() {
                    total += r[f * frames + t] * z.re + r[(5 + f) * frames + t] * z.im;
                }
            }
            total
        };
        for i in 0..length {
            let h = 1e-4;
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += h;
            down[i] -= h;
            let fd = (objective(&up) - objective(&down)) / (2.0 * h);
            assert!(
                (grad[i] as f64 - fd).abs() < 1e-4,
                "STFT d/dx[{i}]: autodiff {} vs fd {fd}",
                grad[i]
            );
        }

        let spec = random(&mut rng, 2 * 5 * frames);
        let s = random(&mut rng, 2 * (frames - 1));
        let ut = Tensor::<4>::from_data(
            TensorData::new(spec.iter().map(|&v| v as f32).collect::<Vec<_>>(), [1, 2, 5, frames]),
            &device,
        )
        .require_grad();
        let grads = stft
            .inverse(ut.clone(), None)
            .mul(tensor3(&s, [1, 1, s.len()], &device))
            .sum()
            .backward();
        let grad = to_vec(ut.grad(&grads).expect("u is tracked"));
        let objective = |spec: &[f64]| -> f64 {
            let bins: Vec<Vec<Complex64>> = (0..frames)
                .map(|t| {
                    (0..5)
                        .map(|f| Complex64::new(spec[f * frames + t], spec[(5 + f) * frames + t]))
                        .collect()
                })
                .collect();
            reference_istft(&bins).iter().zip(&s).map(|(a, b)| a * b).sum()
        };
        for i in 0..spec.len() {
            let h = 1e-4;
            let (mut up, mut down) = (spec.clone(), spec.clone());
            up[i] += h;
            down[i] -= h;
            let fd = (objective(&up) - objective(&down)) / (2.0 * h);
            assert!(
                (grad[i] as f64 - fd).abs() < 1e-4,
                "ISTFT d/du[{i}]: autodiff {} vs fd {fd}",
                grad[i]
            );
        }
    }

    #[test]
    fn invalid_settings_are_typed_errors() {
        assert_eq!(Stft::new(&StftConfig::new().with_n_fft(7)), Err(Error::NFft(7)));
        assert_eq!(
            Stft::new(&StftConfig::new().with_hop_length(3)),
            Err(Error::Hop { n_fft: 8, hop: 3 })
        );
        let stft = Stft::new(&StftConfig::new()).unwrap();
        assert_eq!(stft.check_length(4), Err(Error::TooShort { length: 4, min: 4 }));
        assert!(stft.check_length(5).is_ok());
    }
}
