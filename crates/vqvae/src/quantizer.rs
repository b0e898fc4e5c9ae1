//! The EMA vector quantiser (docs/reference.md §5).

use burn::config::Config;
use burn::module::{Module, RunningState};
use burn::tensor::{Device, Distribution, Int, Tensor};

/// Settings of the [`VectorQuantizer`]; defaults are the thesis settings (docs/reference.md §5).
#[derive(Config, Debug)]
pub struct VectorQuantizerConfig {
    /// Number of codewords K. Thesis: 32.
    #[config(default = 32)]
    pub codebook_size: usize,
    /// Codeword dimension D. Thesis: 64.
    #[config(default = 64)]
    pub dim: usize,
    /// EMA decay γ. Thesis: 0.9.
    #[config(default = 0.9)]
    pub decay: f64,
    /// Laplace smoothing ε of the cluster sizes. Thesis: 1e-5.
    #[config(default = 1e-5)]
    pub epsilon: f64,
    /// Commitment-loss weight β. Thesis: 1.0.
    #[config(default = 1.0)]
    pub commitment_weight: f64,
}

/// The codebook and its EMA statistics. None of them is a trainable parameter: the codebook moves
/// by exponential moving averages of the encodings assigned to each codeword (docs/reference.md §5), exactly as
/// the reference, including its start (`embed_avg` = the random initial codebook, quirk Q17).
#[derive(Module, Debug)]
pub struct VectorQuantizer {
    codebook: RunningState<Tensor<2>>,
    cluster_size: RunningState<Tensor<1>>,
    embed_avg: RunningState<Tensor<2>>,
    decay: f64,
    epsilon: f64,
    commitment_weight: f64,
}

/// What the quantiser returns.
#[derive(Debug, Clone)]
pub struct Quantized {
    /// Quantised latent `(B, D, H, W')`: straight-through `z + sg(q − z)` in training, `q` otherwise.
    pub z_q: Tensor<4>,
    /// Token grid `(B, H·W')`, row-major (frequency, time): token `p = h·W' + w`.
    pub tokens: Tensor<2, Int>,
    /// `β · MSE(z, sg(q))` in training, 0 otherwise.
    pub commitment_loss: Tensor<1>,
    /// Codebook perplexity of this batch's assignments (logging only).
    pub perplexity: Tensor<1>,
}

impl VectorQuantizerConfig {
    /// Builds the quantiser with an `N(0, 1)` codebook.
    pub fn init(&self, device: &Device) -> VectorQuantizer {
        let codebook = Tensor::<2>::random(
            [self.codebook_size, self.dim],
            Distribution::Normal(0.0, 1.0),
            device,
        );
        VectorQuantizer {
            embed_avg: RunningState::new(codebook.clone()),
            cluster_size: RunningState::new(Tensor::zeros([self.codebook_size], device)),
            codebook: RunningState::new(codebook),
            decay: self.decay,
            epsilon: self.epsilon,
            commitment_weight: self.commitment_weight,
        }
    }
}

impl VectorQuantizer {
    /// The current codebook `(K, D)`.
    pub fn codebook(&self) -> Tensor<2> {
        self.codebook.value_sync()
    }

    /// Number of codewords.
    pub fn codebook_size(&self) -> usize {
        self.codebook.value_sync().dims()[0]
    }

    /// `−‖z − e_k‖²` for each flattened latent `(M, D)` and codeword: `(M, K)`.
    pub fn neg_distances(&self, flat: Tensor<2>) -> Tensor<2> {
        let codebook = self.codebook.value_sync().to_device(&flat.device());
        let z2 = flat.clone().square().sum_dim(1);
        let e2 = codebook.clone().square().sum_dim(1).transpose();
        let cross = flat.matmul(codebook.transpose());
        cross.mul_scalar(2.0).sub(z2).sub(e2)
    }

    /// Quantises `z` `(B, D, H, W)` to the nearest codewords. On an autodiff device this is the
    /// training forward (EMA update of the codebook, straight-through output, commitment loss);
    /// otherwise the codebook is left alone and the output is the codewords themselves.
    pub fn forward(&self, z: Tensor<4>) -> Quantized {
        let [b, d, h, w] = z.dims();
        let device = z.device();
        let training = device.is_autodiff();
        let flat = z.clone().permute([0, 2, 3, 1]).reshape([b * h * w, d]);
        let tokens = self.neg_distances(flat.clone().detach()).argmax(1).reshape([b * h * w]);
        let codebook = self.codebook.value_sync().to_device(&device);
        let q = codebook.select(0, tokens.clone());
        let k = self.codebook_size();
        let one_hot: Tensor<2> = tokens.clone().one_hot::<2>(k).float();
        let usage = one_hot.clone().mean_dim(0);
        let perplexity =
            usage.clone().add_scalar(1e-10).log().mul(usage).sum().neg().exp().detach();
        let (z_q_flat, commitment_loss) = if training {
            self.ema_update(one_hot, flat.clone().detach());
            let commit = flat
                .clone()
                .sub(q.clone().detach())
                .square()
                .mean()
                .mul_scalar(self.commitment_weight);
            (flat.clone().add(q.sub(flat).detach()), commit)
        } else {
            (q, Tensor::zeros([1], &device))
        };
        let z_q = z_q_flat.reshape([b, h, w, d]).permute([0, 3, 1, 2]);
        Quantized { z_q, tokens: tokens.reshape([b, h * w]), commitment_loss, perplexity }
    }

    /// The EMA step of docs/reference.md §5 (item 3), from this batch's one-hot assignments and encodings.
    fn ema_update(&self, one_hot: Tensor<2>, flat: Tensor<2>) {
        let (gamma, eps) = (self.decay, self.epsilon);
        let device = flat.device();
        let k = one_hot.dims()[1] as f64;
        let n = self.cluster_size.value_sync().to_device(&device);
        let s = self.embed_avg.value_sync().to_device(&device);
        let n = n
            .mul_scalar(gamma)
            .add(one_hot.clone().sum_dim(0).reshape([-1]).mul_scalar(1.0 - gamma))
            .detach();
        let s = s
            .mul_scalar(gamma)
            .add(one_hot.transpose().matmul(flat).mul_scalar(1.0 - gamma))
            .detach();
        let total = n.clone().sum();
        let smoothed = n.clone().add_scalar(eps).div(total.clone().add_scalar(k * eps)).mul(total);
        let codebook = s.clone().div(smoothed.unsqueeze_dim(1)).detach();
        self.cluster_size.update(n);
        self.embed_avg.update(s);
        self.codebook.update(codebook);
    }

    /// Embeds token ids `(B, N)` with the codebook and reshapes them to the latent grid
    /// `(B, D, height, N / height)` (row-major, the order [`VectorQuantizer::forward`] flattens in).
    pub fn decode_tokens(&self, tokens: Tensor<2, Int>, height: usize) -> Tensor<4> {
        let [b, n] = tokens.dims();
        let codebook = self.codebook.value_sync().to_device(&tokens.device());
        let d = codebook.dims()[1];
        codebook
            .select(0, tokens.reshape([b * n]))
            .reshape([b, height, n / height, d])
            .permute([0, 3, 1, 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn tensor2(v: &[f32], shape: [usize; 2], device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v.to_vec(), shape), device)
    }

    /// A quantiser with a known 2-codeword, 2-d codebook.
    fn known(device: &Device) -> VectorQuantizer {
        let vq = VectorQuantizerConfig::new().with_codebook_size(2).with_dim(2).init(device);
        let codebook = tensor2(&[0.0, 0.0, 10.0, 10.0], [2, 2], device);
        vq.codebook.update(codebook.clone());
        vq.embed_avg.update(codebook);
        vq
    }

    #[test]
    fn ema_step_matches_hand_computation() {
        let device = Device::flex().autodiff();
        let vq = known(&device);
        // z: (B=1, D=2, H=1, W=3) → latents (1,1), (2,2), (9,9): two go to codeword 0, one to 1.
        let z = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 9.0, 1.0, 2.0, 9.0], [1, 2, 1, 3]),
            &device,
        );
        let out = vq.forward(z);
        assert_eq!(out.tokens.try_into_vec_as::<i64>().unwrap(), vec![0, 0, 1]);
        // n = 0.9·0 + 0.1·(2, 1) = (0.2, 0.1); S = 0.9·E + 0.1·Σ z = ((0.3, 0.3), (9.9, 9.9));
        // ñ_k = (n_k + ε)/(0.3 + 2ε)·0.3; E_k = S_k / ñ_k.
        let eps = 1e-5f64;
        let total = 0.3f64;
        let sm = |nk: f64| (nk + eps) / (total + 2.0 * eps) * total;
        let want = [0.3 / sm(0.2), 0.3 / sm(0.2), 9.9 / sm(0.1), 9.9 / sm(0.1)];
        let got = vq.codebook().try_into_vec_as::<f32>().unwrap();
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-3, "{got:?} vs {want:?}");
        }
        // Commitment: mean over 6 elements of (z − q)² with q = (0,0),(0,0),(10,10): (1+1+4+4+1+1)/6 = 2.
        let commit = out.commitment_loss.into_scalar::<f32>();
        assert!((commit - 2.0).abs() < 1e-6, "{commit}");
        // Perplexity of usage (2/3, 1/3).
        let p = [2.0f64 / 3.0, 1.0 / 3.0];
        let want_perp = (-p.iter().map(|x| x * x.ln()).sum::<f64>()).exp();
        assert!((out.perplexity.into_scalar::<f32>() as f64 - want_perp).abs() < 1e-4);
    }

    #[test]
    fn straight_through_gradient_is_identity_and_eval_leaves_codebook() {
        let device = Device::flex().autodiff();
        let vq = known(&device);
        let z = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 9.0, 1.0, 9.0], [1, 2, 1, 2]),
            &device,
        )
        .require_grad();
        let out = vq.forward(z.clone());
        let grads = out.z_q.sum().backward();
        let g = z.grad(&grads).unwrap().try_into_vec_as::<f32>().unwrap();
        assert_eq!(g, vec![1.0; 4], "d z_q / d z = 1 (straight-through)");

        let plain = Device::flex();
        let vq = known(&plain);
        let before = vq.codebook().try_into_vec_as::<f32>().unwrap();
        let z = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 9.0, 1.0, 9.0], [1, 2, 1, 2]),
            &plain,
        );
        let out = vq.forward(z);
        assert_eq!(
            vq.codebook().try_into_vec_as::<f32>().unwrap(),
            before,
            "no EMA outside training"
        );
        assert_eq!(
            out.z_q.try_into_vec_as::<f32>().unwrap(),
            vec![0.0, 10.0, 0.0, 10.0],
            "codewords themselves"
        );
        assert_eq!(out.commitment_loss.into_scalar::<f32>(), 0.0);
        let decoded = vq.decode_tokens(out.tokens, 1).try_into_vec_as::<f32>().unwrap();
        assert_eq!(decoded, vec![0.0, 10.0, 0.0, 10.0], "tokens decode back to the same grid");
    }
}
