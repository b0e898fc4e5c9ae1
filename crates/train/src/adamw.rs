//! AdamW as PyTorch computes it, fused into one pass per parameter tensor on the CPU.
//!
//! Burn's `AdamW` builds each update from about ten tensor ops (scale the moments, square the
//! gradient, bias-correct, square root, divide, decay, subtract), each a full pass over the
//! tensor that allocates its result. For NC-VQVAE's 34.7 M-parameter projector that is a few GB
//! of memory traffic per step (docs/benchmarks.md). On Burn's `flex` CPU backend this optimizer
//! takes the buffers of parameter, gradient and both moments (without copying where the tensor
//! is not shared), updates them in place in one parallel pass, and hands them back as tensors.
//! Other backends (WGPU, CUDA) run the same formula as tensor ops.
//!
//! The update is PyTorch's `torch.optim.AdamW` (single-tensor path, `amsgrad = False`), with the
//! scalars computed in `f64` and the element operations in `f32`, as PyTorch does on CPU:
//!
//! ```text
//! p  ← p · (1 − lr·λ)
//! m  ← m + (1 − β₁)·(g − m)
//! v  ← β₂·v + (1 − β₂)·g²
//! p  ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
//! ```
//!
//! The state is Burn's own [`AdamWState`] (wrapped in [`FusedAdamWState`]), so records and
//! resumed runs are unchanged in format.

use burn::config::Config;
use burn::optim::{
    AdamWState, AdaptiveMomentumState, LearningRate, ModuleOptimizer, Optimizer, RecordState,
    StateSink, StateSource,
};
use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::error::InvalidSetting;

/// Settings of [`FusedAdamW`]; defaults are PyTorch's (`torch.optim.AdamW`).
#[derive(Config, Debug)]
pub struct FusedAdamWConfig {
    /// β₁, the decay of the first moment.
    #[config(default = 0.9)]
    pub beta_1: f64,
    /// β₂, the decay of the second moment.
    #[config(default = 0.999)]
    pub beta_2: f64,
    /// ε, added to the denominator.
    #[config(default = 1e-8)]
    pub epsilon: f64,
    /// Decoupled weight decay λ (the parameter is scaled by `1 − lr·λ` each step).
    #[config(default = 1e-2)]
    pub weight_decay: f64,
}

impl FusedAdamWConfig {
    /// The optimizer for one tensor at a time.
    pub fn build(&self) -> FusedAdamW {
        FusedAdamW {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            weight_decay: self.weight_decay,
        }
    }

    /// The optimizer for a whole module (Burn's [`ModuleOptimizer`]).
    pub fn init(&self) -> ModuleOptimizer {
        ModuleOptimizer::from(self.build())
    }
}

/// Checks AdamW's settings as PyTorch does (`lr`, `weight_decay` and `epsilon` ≥ 0, each β in
/// [0, 1)), and more strictly where a value would only lead to a diverged run: `lr` and `epsilon`
/// must be positive, every value finite. The message names the field.
pub fn check_adamw(
    lr: f64,
    weight_decay: f64,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
) -> Result<(), InvalidSetting> {
    if !(lr > 0.0 && lr.is_finite()) {
        return Err(InvalidSetting::new("lr", "positive", lr));
    }
    if !(weight_decay >= 0.0 && weight_decay.is_finite()) {
        return Err(InvalidSetting::new("weight_decay", "zero or positive", weight_decay));
    }
    for (name, beta) in [("beta1", beta1), ("beta2", beta2)] {
        if !(0.0..1.0).contains(&beta) {
            return Err(InvalidSetting::new(name, "in [0, 1)", beta));
        }
    }
    if !(epsilon > 0.0 && epsilon.is_finite()) {
        return Err(InvalidSetting::new("epsilon", "positive", epsilon));
    }
    Ok(())
}

/// PyTorch's AdamW (the reference's optimizer) with every setting written out, fused into one
/// pass per parameter tensor on the CPU backend ([`FusedAdamW`]); the learning rate is given
/// per step. Its state is Burn's `AdamWState`, so checkpoints keep their format.
pub fn adamw(beta1: f64, beta2: f64, epsilon: f64, weight_decay: f64) -> ModuleOptimizer {
    FusedAdamWConfig::new()
        .with_beta_1(beta1)
        .with_beta_2(beta2)
        .with_epsilon(epsilon)
        .with_weight_decay(weight_decay)
        .init()
}

/// AdamW with PyTorch's update, fused on the CPU backend (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct FusedAdamW {
    beta_1: f64,
    beta_2: f64,
    epsilon: f64,
    weight_decay: f64,
}

/// The `f32` scalars of one step `t` (1-based) at learning rate `lr`.
#[derive(Debug, Clone, Copy)]
struct StepScalars {
    decay: f32,
    one_minus_beta_1: f32,
    beta_2: f32,
    one_minus_beta_2: f32,
    step_size: f32,
    bias_correction_2_sqrt: f32,
    epsilon: f32,
}

impl FusedAdamW {
    fn scalars(&self, lr: LearningRate, t: usize) -> StepScalars {
        let t = t as i32;
        StepScalars {
            decay: (1.0 - lr * self.weight_decay) as f32,
            one_minus_beta_1: (1.0 - self.beta_1) as f32,
            beta_2: self.beta_2 as f32,
            one_minus_beta_2: (1.0 - self.beta_2) as f32,
            step_size: (lr / (1.0 - self.beta_1.powi(t))) as f32,
            bias_correction_2_sqrt: (1.0 - self.beta_2.powi(t)).sqrt() as f32,
            epsilon: self.epsilon as f32,
        }
    }
}

/// One element's update; the fused loop and the tests share it.
#[inline(always)]
fn update(s: &StepScalars, p: &mut f32, g: f32, m: &mut f32, v: &mut f32) {
    *p *= s.decay;
    *m += s.one_minus_beta_1 * (g - *m);
    *v = s.beta_2 * *v + s.one_minus_beta_2 * (g * g);
    *p -= s.step_size * (*m / (v.sqrt() / s.bias_correction_2_sqrt + s.epsilon));
}

/// The whole update over host slices, in parallel chunks.
fn update_slices(s: &StepScalars, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    const CHUNK: usize = 1 << 14;
    /// One chunk of parameter, gradient and both moments, as the zipped iterators yield it.
    type Chunk<'a> = (((&'a mut [f32], &'a [f32]), &'a mut [f32]), &'a mut [f32]);
    let chunk = |(((p, g), m), v): Chunk<'_>| {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            update(s, p, g, m, v);
        }
    };
    #[cfg(feature = "flex")]
    {
        use rayon::prelude::*;
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .for_each(chunk);
    }
    #[cfg(not(feature = "flex"))]
    p.chunks_mut(CHUNK)
        .zip(g.chunks(CHUNK))
        .zip(m.chunks_mut(CHUNK))
        .zip(v.chunks_mut(CHUNK))
        .for_each(chunk);
}

/// The tensor's values, taking its buffer where the tensor is not shared.
fn host_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().expect("the fused AdamW path is taken for f32 tensors only")
}

fn on_flex(device: &Device) -> bool {
    #[cfg(feature = "flex")]
    return matches!(device.clone().inner().as_dispatch(), burn::backend::DispatchDevice::Flex(_));
    #[cfg(not(feature = "flex"))]
    {
        let _ = device;
        false
    }
}

impl FusedAdamW {
    /// One step on host buffers (flex): returns parameter and moments.
    fn step_host<const D: usize>(
        &self,
        s: &StepScalars,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        moments: Option<(Tensor<D>, Tensor<D>)>,
    ) -> (Tensor<D>, Tensor<D>, Tensor<D>) {
        let device = tensor.device();
        let shape = tensor.shape();
        let n = shape.num_elements();
        let mut p = host_values(tensor);
        let g = host_values(grad);
        let (mut m, mut v) = match moments {
            Some((m, v)) => (host_values(m), host_values(v)),
            None => (vec![0.0; n], vec![0.0; n]),
        };
        update_slices(s, &mut p, &g, &mut m, &mut v);
        let back = |values: Vec<f32>| {
            Tensor::<D>::from_data(TensorData::new(values, shape.clone()), &device)
        };
        (back(p), back(m), back(v))
    }

    /// One step as tensor ops (any backend): returns parameter and moments.
    fn step_tensors<const D: usize>(
        &self,
        s: &StepScalars,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        moments: Option<(Tensor<D>, Tensor<D>)>,
    ) -> (Tensor<D>, Tensor<D>, Tensor<D>) {
        let (m, v) = moments.unwrap_or_else(|| (grad.zeros_like(), grad.zeros_like()));
        let m = m.clone() + (grad.clone() - m).mul_scalar(s.one_minus_beta_1);
        let v = v.mul_scalar(s.beta_2) + grad.square().mul_scalar(s.one_minus_beta_2);
        let denominator =
            v.clone().sqrt().div_scalar(s.bias_correction_2_sqrt).add_scalar(s.epsilon);
        let p = tensor.mul_scalar(s.decay) - (m.clone() / denominator).mul_scalar(s.step_size);
        (p, m, v)
    }
}

/// The state of one parameter: Burn's [`AdamWState`], written to records under the same names.
///
/// It differs in where a loaded record's moments land. Burn's `ModuleOptimizer::load_record`
/// builds every state on Burn's *default* device and moves it to the parameter's device at the
/// next step. With the `cuda` or `wgpu` feature compiled in, that default is the GPU, so a run on
/// the CPU resumed from a checkpoint would first need a GPU (without one it failed). Here a loaded
/// state is built on the host (`flex`) and moved at the next step like any other, which works on
/// every backend.
#[derive(Clone)]
pub struct FusedAdamWState<const D: usize>(pub AdamWState<D>);

impl<const D: usize> RecordState for FusedAdamWState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        self.0.state_flatten(prefix, out);
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        #[cfg(feature = "flex")]
        let device = {
            let _ = device;
            &Device::flex()
        };
        AdamWState::state_unflatten(prefix, src, device).map(Self)
    }
}

impl Optimizer for FusedAdamW {
    type State<const D: usize> = FusedAdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let time = state.as_ref().map_or(0, |s| s.0.momentum.time) + 1;
        let moments = state.map(|s| (s.0.momentum.moment_1, s.0.momentum.moment_2));
        let scalars = self.scalars(lr, time);
        let host = on_flex(&tensor.device())
            && [tensor.dtype(), grad.dtype()].iter().all(|&d| d == DType::F32)
            && moments
                .as_ref()
                .is_none_or(|(m, v)| m.dtype() == DType::F32 && v.dtype() == DType::F32);
        let (p, m, v) = if host {
            self.step_host(&scalars, tensor, grad, moments)
        } else {
            self.step_tensors(&scalars, tensor, grad, moments)
        };
        (p, Some(FusedAdamWState(AdamWState::new(AdaptiveMomentumState::new(time, m, v)))))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.0.momentum = state.0.momentum.to_device(device);
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::{AdamWConfig, GradientsParams};

    /// Parameters, gradients, learning rates and the parameters after each step, from
    /// `torch.optim.AdamW(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)` in PyTorch 2.15.0
    /// (CPU, float32), setting `p.grad` to these gradients and the group's `lr` before each step.
    /// The gradients are `0.1·((7i + 3t) mod 11 − 5)·(1 + i/4)` rounded to f32, with element 3 at 0
    /// and element 6 at 1e-10 (where ε dominates).
    const P0: [f32; 8] = [0.5, -1.25, 2.0, 0.0, -0.3, 3.1, 1e-3, -7.5];
    const LRS: [f64; 5] = [1e-3, 8e-4, 5e-4, 3e-4, 1e-4];
    const GRADS: [[f32; 8]; 5] = [
        [-0.5, 0.25, -0.3, 0.0, 0.2, -0.675, 1e-10, 0.0],
        [-0.2, 0.625, 0.15, 0.0, 0.8, 0.0, 1e-10, 0.825],
        [0.1, -0.375, 0.6, 0.0, -0.8, 0.675, 1e-10, -1.375],
        [0.4, 0.0, -0.6, 0.0, -0.2, -1.125, 1e-10, -0.55],
        [-0.4, 0.375, -0.15, 0.0, 0.4, -0.45, 1e-10, 0.275],
    ];
    // PyTorch's printed values, digit for digit.
    #[allow(clippy::excessive_precision, reason = "the reference values as PyTorch printed them")]
    const PYTORCH: [[f32; 8]; 5] = [
        [
            0.500_994_98,
            -1.250_987_5,
            2.000_98,
            0.0,
            -0.300_996_99,
            3.100_968_8,
            0.000_990_089_03,
            -7.499_924_7,
        ],
        [
            0.501_709_8,
            -1.251_729_2,
            2.001_177,
            0.0,
            -0.301_702_08,
            3.101_48,
            0.000_982_160_33,
            -7.500_459_7,
        ],
        [
            0.501_990_4,
            -1.251_884_7,
            2.000_938_4,
            0.0,
            -0.301_723_36,
            3.101_421_6,
            0.000_977_205,
            -7.500_296,
        ],
        [
            0.501_998_3,
            -1.251_960_5,
            2.000_962_5,
            0.0,
            -0.301_703_57,
            3.101_531_7,
            0.000_974_231_8,
            -7.500_158_3,
        ],
        [
            0.502_027_8,
            -1.252_003_2,
            2.000_977_5,
            0.0,
            -0.301_715_97,
            3.101_576_8,
            0.000_973_240_7,
            -7.500_127_3,
        ],
    ];

    fn optimizer() -> FusedAdamW {
        FusedAdamWConfig::new().with_weight_decay(0.01).build()
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    fn assert_close(got: &[f32], want: &[f32], tolerance: f32, what: &str) {
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tolerance * w.abs().max(1.0),
                "{what}, element {i}: {g} vs {w}\n{got:?}\n{want:?}"
            );
        }
    }

    /// Runs the five steps through `step`, checking the parameters after each against PyTorch's.
    fn check_against_pytorch(
        path: &str,
        step: impl Fn(
            &FusedAdamW,
            &StepScalars,
            Tensor<1>,
            Tensor<1>,
            Option<(Tensor<1>, Tensor<1>)>,
        ) -> (Tensor<1>, Tensor<1>, Tensor<1>),
    ) {
        let device = Device::flex();
        let adamw = optimizer();
        let mut p = Tensor::<1>::from_floats(P0, &device);
        let mut moments = None;
        for (t, ((lr, grad), want)) in LRS.iter().zip(&GRADS).zip(&PYTORCH).enumerate() {
            let (next, m, v) = step(
                &adamw,
                &adamw.scalars(*lr, t + 1),
                p,
                Tensor::from_floats(*grad, &device),
                moments,
            );
            assert_close(&values(next.clone()), want, 1e-6, &format!("{path}, step {}", t + 1));
            p = next;
            moments = Some((m, v));
        }
    }

    #[test]
    fn the_fused_update_equals_pytorchs_adamw_over_five_steps() {
        check_against_pytorch("host", |a, s, p, g, m| a.step_host(s, p, g, m));
    }

    #[test]
    fn the_tensor_update_for_other_backends_equals_pytorchs_adamw_too() {
        check_against_pytorch("tensor ops", |a, s, p, g, m| a.step_tensors(s, p, g, m));
    }

    #[test]
    fn the_optimizer_trait_takes_the_fused_path_and_counts_steps() {
        let device = Device::flex();
        let adamw = optimizer();
        let mut p = Tensor::<1>::from_floats(P0, &device);
        let mut state = None;
        for (lr, grad) in LRS.iter().zip(&GRADS) {
            let (next, s) = adamw.step(*lr, p, Tensor::from_floats(*grad, &device), state);
            p = next;
            state = s;
        }
        assert_eq!(state.unwrap().0.momentum.time, 5);
        assert_close(&values(p), &PYTORCH[4], 1e-6, "Optimizer::step");
    }

    #[test]
    fn a_module_trained_with_it_follows_burns_adamw_and_resumes_from_its_record() {
        // Burn's AdamW computes the same update with other rounding; over a few steps of a small
        // regression they agree closely, and a record saved mid-way resumes to the same result.
        let device = Device::flex().autodiff();
        device.seed(11);
        let model: Linear = LinearConfig::new(5, 3).init(&device);
        let x = Tensor::<2>::random([16, 5], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let y = Tensor::<2>::random([16, 3], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let train = |mut model: Linear, mut optim: ModuleOptimizer, steps: usize| {
            for _ in 0..steps {
                let loss = (model.forward(x.clone()) - y.clone()).square().mean();
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(1e-2, model, grads);
            }
            (model, optim)
        };
        let fused = || FusedAdamWConfig::new().with_weight_decay(1e-3).init();
        let (ours, _) = train(model.clone(), fused(), 6);
        let burns = AdamWConfig::new()
            .with_beta_1(0.9)
            .with_beta_2(0.999)
            .with_epsilon(1e-8)
            .with_weight_decay(1e-3)
            .init();
        let (theirs, _) = train(model.clone(), burns, 6);
        assert_close(
            &values(ours.weight.val().inner()),
            &values(theirs.weight.val().inner()),
            1e-5,
            "weight vs Burn's AdamW",
        );

        let (half, optim) = train(model, fused(), 3);
        let resumed = fused().load_record(optim.to_record());
        let (resumed, _) = train(half, resumed, 3);
        assert_eq!(
            values(resumed.weight.val().inner()),
            values(ours.weight.val().inner()),
            "resumed from the record"
        );
    }
}

#[cfg(test)]
mod timing {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::{AdamWConfig, GradientsParams};

    /// Step time of the optimizers on one 4096 × 4096 layer (the projector's size class):
    /// `cargo test --release -p train optimizer_step_time -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn optimizer_step_time() {
        let device = Device::flex().autodiff();
        let x =
            Tensor::<2>::random([32, 4096], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        for (name, mut optim) in
            [("fused", FusedAdamWConfig::new().init()), ("burn", AdamWConfig::new().init())]
        {
            let mut model: Linear = LinearConfig::new(4096, 4096).init(&device);
            let mut times = vec![];
            for _ in 0..6 {
                let loss = model.forward(x.clone()).square().mean();
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                let t = std::time::Instant::now();
                model = optim.step(1e-3, model, grads);
                let _ = model.weight.val().slice([0..1, 0..1]).into_data();
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
            println!("{name}: {times:.1?} ms");
        }
    }
}
