//! The fit loop on a small regression: it learns, stops on a non-finite term naming it, and a run
//! interrupted after a checkpoint and resumed ends with the uninterrupted run's weights and lines.

use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::{Device, Tensor, TensorData};
use serde_json::{Map, Value};
use train::run_dir::RunDir;
use train::{Error, FitConfig, FusedAdamWConfig, RunContext, Silent, StepLoss, Task, fit, mix};

/// `y = 2·x₀ − x₁ + 0.5` on 40 points; `fail_at` makes epoch `e`'s first step return an error (a
/// crash), `nan_at` makes it report a NaN term.
struct Regression {
    x: Vec<f32>,
    y: Vec<f32>,
    device: Device,
    fail_at: Option<usize>,
    nan_at: Option<usize>,
}

impl Regression {
    fn new(device: &Device) -> Self {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..40u64 {
            let a = (mix(7, i, 0) % 1000) as f32 / 500.0 - 1.0;
            let b = (mix(7, i, 1) % 1000) as f32 / 500.0 - 1.0;
            x.extend([a, b]);
            y.push(2.0 * a - b + 0.5);
        }
        Self { x, y, device: device.clone(), fail_at: None, nan_at: None }
    }

    fn mse(&self, model: &Linear, idx: &[usize]) -> Tensor<1> {
        let x: Vec<f32> = idx.iter().flat_map(|&i| [self.x[2 * i], self.x[2 * i + 1]]).collect();
        let y: Vec<f32> = idx.iter().map(|&i| self.y[i]).collect();
        let x = Tensor::<2>::from_data(TensorData::new(x, [idx.len(), 2]), &self.device);
        let y = Tensor::<2>::from_data(TensorData::new(y, [idx.len(), 1]), &self.device);
        (model.forward(x) - y).square().mean()
    }
}

impl Task<Linear> for Regression {
    type Error = Error;

    fn terms(&self) -> &'static [&'static str] {
        &["loss", "abs_bias"]
    }

    fn step(
        &mut self,
        model: &Linear,
        epoch: usize,
        batch: usize,
        idx: &[usize],
    ) -> Result<StepLoss, Error> {
        if self.fail_at == Some(epoch) && batch == 0 {
            return Err(Error::Device("simulated crash".into()));
        }
        let loss = self.mse(model, idx);
        let value = loss.clone().into_scalar::<f32>();
        let bias = if self.nan_at == Some(epoch) { f32::NAN } else { 0.0 };
        Ok(StepLoss { loss, values: vec![value, bias] })
    }

    fn after_epoch(
        &mut self,
        model: &Linear,
        _epoch: usize,
        _last: bool,
        line: &mut Map<String, Value>,
    ) -> Result<(), Error> {
        let all: Vec<usize> = (0..40).collect();
        line.insert(
            "full_loss".into(),
            (self.mse(&model.valid(), &all).into_scalar::<f32>() as f64).into(),
        );
        Ok(())
    }
}

/// A deterministic start (the CPU generator is global per process, so seeding it would race with
/// the other tests).
fn model(device: &Device) -> Linear {
    LinearConfig::new(2, 1).with_initializer(Initializer::Constant { value: 0.1 }).init(device)
}

fn weights(model: &Linear) -> Vec<f32> {
    let mut w = model.weight.val().try_into_vec_as::<f32>().unwrap();
    w.extend(model.bias.as_ref().unwrap().val().try_into_vec_as::<f32>().unwrap());
    w
}

fn without_seconds(mut lines: Vec<Value>) -> Vec<Value> {
    for l in &mut lines {
        l.as_object_mut().unwrap().remove("seconds");
    }
    lines
}

fn config() -> FitConfig {
    FitConfig::new(8, 8, 0.1).with_seed(5).with_checkpoint_every(2)
}

fn optim() -> burn::optim::ModuleOptimizer {
    FusedAdamWConfig::new().with_weight_decay(1e-3).init()
}

#[test]
fn the_loop_learns_and_logs_one_line_per_epoch() {
    let device = Device::flex().autodiff();
    let mut task = Regression::new(&device);
    let fitted =
        fit(&config(), model(&device), optim(), 40, &mut task, RunContext::in_memory(&mut Silent))
            .unwrap();
    assert_eq!(fitted.lines.len(), 8);
    // 5 batches per epoch plus the extra scheduler step: 6 steps per epoch.
    assert_eq!(fitted.step, 48);
    assert_eq!(fitted.lines[7]["step"], 48);
    let first = fitted.lines[0]["full_loss"].as_f64().unwrap();
    let last = fitted.lines[7]["full_loss"].as_f64().unwrap();
    assert!(last < 0.5 * first, "loss {first} -> {last}");
    assert!(fitted.lines[3].get("abs_bias").is_some() && fitted.lines[3].get("lr").is_some());
}

#[test]
fn a_non_finite_term_stops_training_and_names_the_term() {
    let device = Device::flex().autodiff();
    let mut task = Regression::new(&device);
    task.nan_at = Some(2);
    let err =
        fit(&config(), model(&device), optim(), 40, &mut task, RunContext::in_memory(&mut Silent))
            .err()
            .unwrap();
    match err {
        Error::NonFinite { term, epoch, step, .. } => {
            assert_eq!((term, epoch, step), ("abs_bias", 3, 13))
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_resumed_run_ends_where_the_uninterrupted_one_does() {
    let device = Device::flex().autodiff();
    let tmp = tempfile::tempdir().unwrap();
    let whole = RunDir::create(&tmp.path().join("whole")).unwrap();
    let mut task = Regression::new(&device);
    let reference = fit(
        &config(),
        model(&device),
        optim(),
        40,
        &mut task,
        RunContext::in_folder(&whole, false, &mut Silent),
    )
    .unwrap();

    let cut = RunDir::create(&tmp.path().join("cut")).unwrap();
    let mut crashing = Regression::new(&device);
    crashing.fail_at = Some(5); // after the checkpoint of epoch 4, during epoch 6 (its line not written)
    assert!(
        fit(
            &config(),
            model(&device),
            optim(),
            40,
            &mut crashing,
            RunContext::in_folder(&cut, false, &mut Silent)
        )
        .is_err()
    );
    assert_eq!(cut.checkpoint().unwrap().unwrap().epoch, 4);
    let mut task = Regression::new(&device);
    let resumed = fit(
        &config(),
        model(&device),
        optim(),
        40,
        &mut task,
        RunContext::in_folder(&cut, true, &mut Silent),
    )
    .unwrap();
    assert_eq!(resumed.lines.len(), 4, "epochs 5..=8 trained again");
    assert_eq!(weights(&resumed.model), weights(&reference.model));
    assert_eq!(resumed.step, reference.step);
    let read = |run: &RunDir| -> Vec<Value> {
        let text = std::fs::read_to_string(run.path("metrics.jsonl")).unwrap();
        without_seconds(text.lines().map(|l| serde_json::from_str(l).unwrap()).collect())
    };
    assert_eq!(read(&cut), read(&whole), "the log is cut back to the checkpoint and continued");
}
