//! Finding a dataset: by UCR name under a list of data roots, or by path to a split file.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The environment variable naming a data root (searched after `--data-dir`).
pub const DATA_ENV: &str = "NC_VQVAE_DATA";

/// Datasets compiled into this crate, so that tests and the default run need no download:
/// `(name, TRAIN.tsv.gz bytes, TEST.tsv.gz bytes)`. Unmodified files of the UCR 2018 archive.
const BUNDLED: &[(&str, &[u8], &[u8])] = &[
    (
        "SonyAIBORobotSurface1",
        include_bytes!("../data/SonyAIBORobotSurface1/SonyAIBORobotSurface1_TRAIN.tsv.gz"),
        include_bytes!("../data/SonyAIBORobotSurface1/SonyAIBORobotSurface1_TEST.tsv.gz"),
    ),
    (
        "SyntheticControl",
        include_bytes!("../data/SyntheticControl/SyntheticControl_TRAIN.tsv.gz"),
        include_bytes!("../data/SyntheticControl/SyntheticControl_TEST.tsv.gz"),
    ),
    (
        "TwoPatterns",
        include_bytes!("../data/TwoPatterns/TwoPatterns_TRAIN.tsv.gz"),
        include_bytes!("../data/TwoPatterns/TwoPatterns_TEST.tsv.gz"),
    ),
];

/// Names of the datasets bundled with the crate.
pub fn bundled_names() -> Vec<&'static str> {
    BUNDLED.iter().map(|(name, _, _)| *name).collect()
}

/// Where the bytes of one split come from.
#[derive(Debug, Clone)]
pub enum SplitSource {
    /// A file on disk (plain TSV or gzip).
    File(PathBuf),
    /// Data compiled into the crate.
    Bundled {
        /// Display name used in messages, `<bundled>/Name/Name_TRAIN.tsv.gz`.
        origin: String,
        /// The gzip-compressed file content.
        bytes: &'static [u8],
    },
}

impl SplitSource {
    /// The name used for this source in error messages.
    pub fn origin(&self) -> String {
        match self {
            SplitSource::File(path) => path.display().to_string(),
            SplitSource::Bundled { origin, .. } => origin.clone(),
        }
    }

    /// Reads the raw bytes (still compressed if the file is).
    pub fn read(&self) -> Result<std::borrow::Cow<'static, [u8]>> {
        match self {
            SplitSource::File(path) => std::fs::read(path)
                .map(std::borrow::Cow::Owned)
                .map_err(|source| Error::Io { origin: self.origin(), source }),
            SplitSource::Bundled { bytes, .. } => Ok(std::borrow::Cow::Borrowed(bytes)),
        }
    }
}

/// A located dataset: its name and the sources of both splits.
#[derive(Debug, Clone)]
pub struct DatasetSource {
    /// The UCR name (directory name, or the file-name stem before `_TRAIN`).
    pub name: String,
    /// The training split.
    pub train: SplitSource,
    /// The test split.
    pub test: SplitSource,
}

/// One place datasets are looked up in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataRoot {
    /// A directory holding `<Name>/<Name>_TRAIN.tsv[.gz]` and `<Name>/<Name>_TEST.tsv[.gz]`.
    Dir(PathBuf),
    /// The datasets compiled into this crate ([`bundled_names`]).
    Bundled,
}

/// Resolves dataset names or paths against an ordered list of roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolver {
    roots: Vec<DataRoot>,
}

impl Resolver {
    /// The documented search order: `data_dir` (the `--data-dir` flag) if given, then the
    /// directory in the `NC_VQVAE_DATA` environment variable if set, then the bundled data.
    pub fn new(data_dir: Option<PathBuf>) -> Self {
        let env = std::env::var_os(DATA_ENV).filter(|v| !v.is_empty()).map(PathBuf::from);
        let mut roots: Vec<DataRoot> = data_dir.into_iter().chain(env).map(DataRoot::Dir).collect();
        roots.push(DataRoot::Bundled);
        Self { roots }
    }

    /// A resolver over exactly these roots, in this order.
    pub fn with_roots(roots: Vec<DataRoot>) -> Self {
        Self { roots }
    }

    /// The roots, in search order.
    pub fn roots(&self) -> &[DataRoot] {
        &self.roots
    }

    /// Locates `spec`: a path to a split file or dataset directory if it looks like one (has a
    /// path separator or a `.tsv`/`.gz` ending, or exists on disk), otherwise a UCR name searched
    /// root by root.
    pub fn resolve(&self, spec: &str) -> Result<DatasetSource> {
        let path = Path::new(spec);
        let looks_like_path = spec.contains('/')
            || spec.contains(std::path::MAIN_SEPARATOR)
            || spec.ends_with(".tsv")
            || spec.ends_with(".gz")
            || path.exists();
        if looks_like_path {
            return from_path(path);
        }
        for root in &self.roots {
            match root {
                DataRoot::Dir(dir) => {
                    let folder = dir.join(spec);
                    if let (Some(train), Some(test)) =
                        (find_split(&folder, spec, "TRAIN"), find_split(&folder, spec, "TEST"))
                    {
                        return Ok(DatasetSource {
                            name: spec.to_string(),
                            train: SplitSource::File(train),
                            test: SplitSource::File(test),
                        });
                    }
                }
                DataRoot::Bundled => {
                    if let Some((name, train, test)) = BUNDLED.iter().find(|(n, _, _)| *n == spec) {
                        let origin = |s: &str| format!("<bundled>/{name}/{name}_{s}.tsv.gz");
                        return Ok(DatasetSource {
                            name: name.to_string(),
                            train: SplitSource::Bundled { origin: origin("TRAIN"), bytes: train },
                            test: SplitSource::Bundled { origin: origin("TEST"), bytes: test },
                        });
                    }
                }
            }
        }
        let searched = self
            .roots
            .iter()
            .map(|r| match r {
                DataRoot::Dir(d) => d.display().to_string(),
                DataRoot::Bundled => format!("bundled [{}]", bundled_names().join(", ")),
            })
            .collect::<Vec<_>>()
            .join(", ");
        Err(Error::NotFound { name: spec.to_string(), searched })
    }
}

/// `<folder>/<name>_<split>.tsv`, or `.tsv.gz`, whichever exists (plain first).
fn find_split(folder: &Path, name: &str, split: &str) -> Option<PathBuf> {
    ["tsv", "tsv.gz"]
        .iter()
        .map(|ext| folder.join(format!("{name}_{split}.{ext}")))
        .find(|p| p.is_file())
}

/// A dataset given by path: a `*_TRAIN`/`*_TEST` file (the sibling is found next to it) or a
/// dataset directory `…/<Name>/`.
fn from_path(path: &Path) -> Result<DatasetSource> {
    if path.is_dir() {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let train = find_split(path, &name, "TRAIN");
        let test = find_split(path, &name, "TEST");
        return match (train, test) {
            (Some(train), Some(test)) => Ok(DatasetSource {
                name,
                train: SplitSource::File(train),
                test: SplitSource::File(test),
            }),
            _ => Err(Error::NotASplitFile { path: path.join(format!("{name}_TRAIN.tsv")) }),
        };
    }
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let stem = file_name.strip_suffix(".gz").unwrap_or(file_name);
    let stem = stem
        .strip_suffix(".tsv")
        .ok_or_else(|| Error::NotASplitFile { path: path.to_path_buf() })?;
    let (name, given) = if let Some(name) = stem.strip_suffix("_TRAIN") {
        (name, "TRAIN")
    } else if let Some(name) = stem.strip_suffix("_TEST") {
        (name, "TEST")
    } else {
        return Err(Error::NotASplitFile { path: path.to_path_buf() });
    };
    if !path.is_file() {
        return Err(Error::Io {
            origin: path.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let folder = path.parent().unwrap_or(Path::new("."));
    let other = if given == "TRAIN" { "TEST" } else { "TRAIN" };
    let sibling = find_split(folder, name, other).ok_or_else(|| Error::MissingSibling {
        path: folder.join(format!("{name}_{other}.tsv[.gz]")),
        sibling: path.to_path_buf(),
    })?;
    let (train, test) = if given == "TRAIN" {
        (path.to_path_buf(), sibling)
    } else {
        (sibling, path.to_path_buf())
    };
    Ok(DatasetSource {
        name: name.to_string(),
        train: SplitSource::File(train),
        test: SplitSource::File(test),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "1\t2\n").unwrap();
    }

    #[test]
    fn name_search_follows_root_order_and_falls_back_to_bundled() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        touch(&b.path().join("Toy/Toy_TRAIN.tsv"));
        touch(&b.path().join("Toy/Toy_TEST.tsv.gz"));
        let r = Resolver::with_roots(vec![
            DataRoot::Dir(a.path().into()),
            DataRoot::Dir(b.path().into()),
            DataRoot::Bundled,
        ]);
        let found = r.resolve("Toy").unwrap();
        assert_eq!(found.name, "Toy");
        assert!(found.test.origin().ends_with("Toy/Toy_TEST.tsv.gz"));
        // A name found in a directory root wins over the bundled copy.
        touch(&a.path().join("SonyAIBORobotSurface1/SonyAIBORobotSurface1_TRAIN.tsv"));
        touch(&a.path().join("SonyAIBORobotSurface1/SonyAIBORobotSurface1_TEST.tsv"));
        let sony = r.resolve("SonyAIBORobotSurface1").unwrap();
        assert!(matches!(sony.train, SplitSource::File(_)));
        let bundled =
            Resolver::with_roots(vec![DataRoot::Bundled]).resolve("SonyAIBORobotSurface1");
        assert!(matches!(bundled.unwrap().train, SplitSource::Bundled { .. }));
        let err = r.resolve("Nope").unwrap_err().to_string();
        assert!(err.contains("dataset 'Nope' not found"), "{err}");
        assert!(err.contains(&a.path().display().to_string()), "{err}");
    }

    #[test]
    fn a_path_to_either_split_finds_its_sibling() {
        let d = tempfile::tempdir().unwrap();
        let train = d.path().join("X/X_TRAIN.tsv.gz");
        let test = d.path().join("X/X_TEST.tsv");
        touch(&train);
        touch(&test);
        let r = Resolver::with_roots(vec![]);
        for given in [&train, &test] {
            let found = r.resolve(given.to_str().unwrap()).unwrap();
            assert_eq!(found.name, "X");
            assert_eq!(found.train.origin(), train.display().to_string());
            assert_eq!(found.test.origin(), test.display().to_string());
        }
        let dir = r.resolve(d.path().join("X").to_str().unwrap()).unwrap();
        assert_eq!(dir.test.origin(), test.display().to_string());
    }

    #[test]
    fn bad_paths_are_named() {
        let d = tempfile::tempdir().unwrap();
        let r = Resolver::with_roots(vec![]);
        let lonely = d.path().join("Y_TRAIN.tsv");
        touch(&lonely);
        let err = r.resolve(lonely.to_str().unwrap()).unwrap_err().to_string();
        assert!(err.contains("Y_TEST.tsv[.gz]: missing file"), "{err}");
        let odd = d.path().join("notes.tsv");
        touch(&odd);
        let err = r.resolve(odd.to_str().unwrap()).unwrap_err().to_string();
        assert!(err.contains("not a UCR split file"), "{err}");
        let missing = d.path().join("Z_TRAIN.tsv");
        let err = r.resolve(missing.to_str().unwrap()).unwrap_err().to_string();
        assert!(err.contains("Z_TRAIN.tsv: cannot read"), "{err}");
    }
}
