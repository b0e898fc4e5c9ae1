//! Files of a training run: its TOML config claimed once, weights and checkpoints (model and
//! optimiser state) saved atomically and restored on resume.

use std::path::Path;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, record_err};
use crate::run_dir::{CheckpointInfo, RunDir, io, write_atomic, write_atomic_with};

/// Parses the TOML text of a file the program wrote (a run's `config.toml`).
fn parse_toml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, Error> {
    toml::from_str(text).map_err(|e| Error::ConfigFile {
        path: path.into(),
        message: e.to_string().replace('\n', " "),
    })
}

/// The TOML text of a config to be written to `path`.
fn toml_text<T: Serialize>(path: &Path, config: &T) -> Result<String, Error> {
    toml::to_string_pretty(config)
        .map_err(|e| Error::ConfigFile { path: path.into(), message: e.to_string() })
}

/// Reads a run's TOML config file.
pub fn read_toml<T: DeserializeOwned>(path: &Path) -> Result<T, Error> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    parse_toml(path, &text)
}

/// The config of a training run at `path`: when resuming, the stored one (`missing` if there is
/// none); otherwise `given`, written there atomically (`exists` if a run is already there).
pub fn run_config<T: Serialize + DeserializeOwned + Clone>(
    path: &Path,
    resume: bool,
    given: &T,
    missing: impl FnOnce() -> String,
    exists: impl FnOnce() -> String,
) -> Result<T, Error> {
    if resume {
        let text = std::fs::read_to_string(path).map_err(|_| Error::RunExists(missing()))?;
        return parse_toml(path, &text);
    }
    if path.exists() {
        return Err(Error::RunExists(exists()));
    }
    write_atomic(path, toml_text(path, given)?.as_bytes())?;
    Ok(given.clone())
}

/// Writes `config` to `path`, or checks that the run already there has the same config; a
/// different one is refused with the message `differs`.
pub fn claim_config<T: Serialize + DeserializeOwned + PartialEq>(
    path: &Path,
    config: &T,
    differs: impl FnOnce() -> String,
) -> Result<(), Error> {
    if path.exists() {
        let stored: T = read_toml(path)?;
        if &stored != config {
            return Err(Error::RunExists(differs()));
        }
        return Ok(());
    }
    write_atomic(path, toml_text(path, config)?.as_bytes())?;
    Ok(())
}

/// Writes `text` to `path` atomically, or checks that the same text is already there (`differs`
/// gives the error's message when it is not).
pub fn claim_text(path: &Path, text: &str, differs: impl FnOnce() -> String) -> Result<(), Error> {
    if path.exists() {
        let old = std::fs::read_to_string(path).map_err(io(path))?;
        if old != text {
            return Err(Error::RunExists(differs()));
        }
        return Ok(());
    }
    write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// Where a training loop starts when a run folder is given: fresh, or (`resume`) from the run's
/// latest checkpoint (the model file `model_file` and `optim.bpk` of that checkpoint;
/// `metrics.jsonl` is cut back to it). Returns the model, the optimiser, and the checkpoint's
/// epoch, step and wall seconds.
pub fn restore<M: Module>(
    run: &RunDir,
    resume: bool,
    model_file: &str,
    model: M,
    optim: ModuleOptimizer,
) -> Result<(M, ModuleOptimizer, usize, usize, f64), Error> {
    if !resume {
        return Ok((model, optim, 0, 0, 0.0));
    }
    let Some(info) = run.checkpoint()? else {
        run.truncate_metrics(0)?;
        return Ok((model, optim, 0, 0, 0.0));
    };
    let folder = run.path(&info.folder);
    let model = load_weights(model, &folder.join(model_file))?;
    let optim_path = folder.join("optim.bpk");
    let record =
        burn::optim::OptimizerRecord::load(&optim_path).map_err(record_err(&optim_path))?;
    run.truncate_metrics(info.epoch)?;
    Ok((model, optim.load_record(record), info.epoch, info.step, info.wall_seconds))
}

/// Writes a checkpoint (`model_file` + `optim.bpk` in its own folder) and makes it current.
pub fn save_checkpoint<M: Module>(
    run: &RunDir,
    model_file: &str,
    model: M,
    optim: &ModuleOptimizer,
    (epoch, step, wall_seconds): (usize, usize, f64),
) -> Result<(), Error> {
    let (folder, path) = run.new_checkpoint_folder(epoch)?;
    save_weights(model, &path.join(model_file))?;
    let optim_record = optim.to_record();
    write_atomic_with(&path.join("optim.bpk"), |tmp| {
        optim_record.save(tmp).map_err(record_err(tmp))
    })?;
    run.commit_checkpoint(&CheckpointInfo { epoch, step, wall_seconds, folder })?;
    Ok(())
}

/// Loads weights saved by [`save_weights`] (or a checkpoint) into `model`.
pub fn load_weights<M: Module>(model: M, path: &Path) -> Result<M, Error> {
    let record = ModuleRecord::load(path).map_err(record_err(path))?;
    model.try_load_record(record).map_err(record_err(path))
}

/// Saves a module's weights atomically ([`write_atomic_with`]: a temporary file of this process
/// beside `path`, flushed to disk, renamed over the target).
pub fn save_weights<M: Module>(model: M, path: &Path) -> Result<(), Error> {
    let record = model.into_record();
    write_atomic_with(path, |tmp| record.save(tmp).map_err(record_err(tmp)))
}
