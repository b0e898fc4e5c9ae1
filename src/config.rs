//! Layered run configuration: the thesis defaults, then `--config FILE.toml`, then every
//! `--set section.key=value`, then the flags given explicitly on the command line.
//!
//! A config file holds one table per command: `[stage1]`, `[stage2]`, `[fcn]` (and `[run]` for
//! `nc-vqvae run`), whose keys are the
//! fields of the matching config (`config.toml` of a run folder shows them all). Unknown keys are
//! errors. A `--set` value is read as a TOML value (`1e-4`, `true`, `"text"`) or, if it is not one,
//! as a string (`--set stage1.ssl=barlow-twins`).

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A library recipe together with the dataset it runs on, as the command line records it in a
/// run's `config.toml` and reads it from a `[stage1]` / `[fcn]` table: the keys `dataset` and
/// `data_dir` next to the recipe's own keys, in one flat table. Unknown keys are errors (the
/// recipe's `deny_unknown_fields`). Dereferences to the recipe.
#[derive(Debug, Clone, PartialEq)]
pub struct OnDataset<T> {
    /// Dataset name or path (as given on the command line).
    pub dataset: String,
    /// `--data-dir`, if given.
    pub data_dir: Option<PathBuf>,
    /// For a file of one's own series (`dataset` a `.csv` / `.npy` / … path, see
    /// [`ucr_data::load_files`]): where its labels come from (`first-column`, `none` or a labels
    /// `.npy`); `None`: the file type's default.
    pub labels: Option<String>,
    /// For a file of one's own series: the test file (`None`: every fifth series is held out).
    pub test: Option<PathBuf>,
    /// The test file's labels, as `labels`.
    pub test_labels: Option<String>,
    /// The recipe.
    pub recipe: T,
}

impl<T> OnDataset<T> {
    /// `recipe` on `dataset` (a UCR name or path), no other settings.
    pub fn on(dataset: &str, recipe: T) -> Self {
        Self {
            dataset: dataset.to_string(),
            data_dir: None,
            labels: None,
            test: None,
            test_labels: None,
            recipe,
        }
    }

    /// `recipe` on the same data as this one: dataset, data directory, labels and test file.
    pub fn same_data<U>(&self, recipe: U) -> OnDataset<U> {
        OnDataset {
            dataset: self.dataset.clone(),
            data_dir: self.data_dir.clone(),
            labels: self.labels.clone(),
            test: self.test.clone(),
            test_labels: self.test_labels.clone(),
            recipe,
        }
    }

    /// Whether the dataset is a file of one's own series rather than a UCR dataset.
    pub fn own_files(&self) -> bool {
        ucr_data::is_series_file(&self.dataset) || self.labels.is_some() || self.test.is_some()
    }

    /// Reads the dataset: a UCR dataset found by [`ucr_data::Resolver`], or one's own files.
    pub fn load_data(&self) -> Result<ucr_data::UcrDataset, ucr_data::Error> {
        if !self.own_files() {
            let source = ucr_data::Resolver::new(self.data_dir.clone()).resolve(&self.dataset)?;
            return ucr_data::UcrDataset::load(&source);
        }
        let train = std::path::Path::new(&self.dataset);
        let labels = |spec: &Option<String>, file: &std::path::Path| {
            spec.as_deref()
                .map_or_else(|| ucr_data::Labels::default_for(file), ucr_data::Labels::parse)
        };
        let name = train
            .file_stem()
            .and_then(|s| s.to_str())
            .map_or("data", |s| s.trim_end_matches(".csv").trim_end_matches(".txt"));
        let test = self.test.as_deref().map(|t| (t, labels(&self.test_labels, t)));
        ucr_data::load_files(
            name,
            train,
            &labels(&self.labels, train),
            test.as_ref().map(|(p, l)| (*p, l)),
        )
    }
}

impl<T> std::ops::Deref for OnDataset<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.recipe
    }
}

impl<T> std::ops::DerefMut for OnDataset<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.recipe
    }
}

impl<T: Serialize> Serialize for OnDataset<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Flat<'a, T> {
            dataset: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            data_dir: &'a Option<PathBuf>,
            #[serde(skip_serializing_if = "Option::is_none")]
            labels: &'a Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            test: &'a Option<PathBuf>,
            #[serde(skip_serializing_if = "Option::is_none")]
            test_labels: &'a Option<String>,
            #[serde(flatten)]
            recipe: &'a T,
        }
        Flat {
            dataset: &self.dataset,
            data_dir: &self.data_dir,
            labels: &self.labels,
            test: &self.test,
            test_labels: &self.test_labels,
            recipe: &self.recipe,
        }
        .serialize(serializer)
    }
}

impl<'de, T: DeserializeOwned> serde::Deserialize<'de> for OnDataset<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut table = toml::Table::deserialize(deserializer)?;
        let dataset = match table.remove("dataset") {
            Some(toml::Value::String(s)) => s,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "dataset: expected a string, found {}",
                    other.type_str()
                )));
            }
            None => return Err(D::Error::missing_field("dataset")),
        };
        let mut text = |key: &str| match table.remove(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(D::Error::custom(format!(
                "{key}: expected a string, found {}",
                other.type_str()
            ))),
        };
        let data_dir = text("data_dir")?.map(PathBuf::from);
        let labels = text("labels")?;
        let test = text("test")?.map(PathBuf::from);
        let test_labels = text("test_labels")?;
        let recipe = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| D::Error::custom(e.message()))?;
        Ok(Self { dataset, data_dir, labels, test, test_labels, recipe })
    }
}

/// The tables a config file may hold.
pub const SECTIONS: [&str; 4] = ["run", "stage1", "stage2", "fcn"];

/// A bad config file or `--set` (always the user's input).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read or parsed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A `--set` argument is malformed or names an unknown section.
    #[error("--set {arg}: {message}")]
    Set {
        /// The argument.
        arg: String,
        /// What is wrong.
        message: String,
    },
    /// The merged values do not form a valid config (unknown key, wrong type).
    #[error("{source_name}: {message}")]
    Invalid {
        /// Where the values came from.
        source_name: String,
        /// What is wrong.
        message: String,
    },
}

fn one_line(s: impl std::fmt::Display) -> String {
    s.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses a `--set` value: a TOML value if it is one, else a string.
fn parse_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// Applies the config file's `[section]` table and the `--set section.key=value` arguments on top
/// of `base`. `--set` arguments for another known section are ignored (one list of settings can
/// feed several commands); an unknown section is an error.
pub fn layer<T: Serialize + DeserializeOwned>(
    base: &T,
    section: &str,
    file: Option<&Path>,
    sets: &[String],
) -> Result<T, ConfigError> {
    let doc = match file {
        Some(path) => {
            let doc = read_file(path)?;
            if let Some(name) = doc.keys().find(|k| !SECTIONS.contains(&k.as_str())) {
                return Err(ConfigError::File {
                    path: path.into(),
                    message: format!("unknown table [{name}] (known: {})", SECTIONS.join(", ")),
                });
            }
            Some((doc, path.display().to_string()))
        }
        None => None,
    };
    layer_table(base, section, doc.as_ref().map(|(d, o)| (d, o.as_str())), sets)
}

/// Reads a TOML config file into a table.
pub fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::File { path: path.into(), message: one_line(e) })?;
    toml::from_str(&text).map_err(|e| ConfigError::File { path: path.into(), message: one_line(e) })
}

/// [`layer`] with the file already read: `doc` is its table and the name used in messages.
pub fn layer_table<T: Serialize + DeserializeOwned>(
    base: &T,
    section: &str,
    doc: Option<(&toml::Table, &str)>,
    sets: &[String],
) -> Result<T, ConfigError> {
    let mut table = toml::Table::try_from(base)
        .map_err(|e| ConfigError::Invalid { source_name: section.into(), message: one_line(e) })?;
    let mut origin = String::from("defaults");
    if let Some((doc, name)) = doc {
        match doc.get(section) {
            Some(toml::Value::Table(values)) => table.extend(values.clone()),
            Some(_) => {
                return Err(ConfigError::File {
                    path: name.into(),
                    message: format!("`{section}` must be a table"),
                });
            }
            None => {}
        }
        origin = name.to_string();
    }
    for arg in sets {
        let (key, raw) = arg.split_once('=').ok_or_else(|| ConfigError::Set {
            arg: arg.clone(),
            message: "expected section.key=value".into(),
        })?;
        let (sec, field) = key.trim().split_once('.').ok_or_else(|| ConfigError::Set {
            arg: arg.clone(),
            message: format!("the key needs a section: one of {}", SECTIONS.join(", ")),
        })?;
        if !SECTIONS.contains(&sec) {
            return Err(ConfigError::Set {
                arg: arg.clone(),
                message: format!("unknown section `{sec}` (known: {})", SECTIONS.join(", ")),
            });
        }
        if sec == section {
            table.insert(field.to_string(), parse_value(raw.trim()));
            origin = format!("{origin} + --set");
        }
    }
    table.try_into().map_err(|e: toml::de::Error| ConfigError::Invalid {
        source_name: origin,
        message: one_line(e.message()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage1::{SslChoice, Stage1Run};

    #[test]
    fn file_then_set_then_base_order() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("c.toml");
        std::fs::write(
            &path,
            "[stage1]\nepochs = 50\nlr = 0.002\nssl = \"vibcreg\"\n[stage2]\nepochs = 7\n",
        )
        .unwrap();
        let base = Stage1Run::new("ECG5000");
        let sets = vec![
            "stage1.lr=5e-4".to_string(),
            "stage2.batch_size=3".to_string(),
            "stage1.aug=gauss".to_string(),
        ];
        let c = layer(&base, "stage1", Some(&path), &sets).unwrap();
        assert_eq!(c.epochs, 50, "from the file");
        assert_eq!(c.lr, 5e-4, "--set wins over the file");
        assert_eq!(c.ssl, SslChoice::Vibcreg);
        assert_eq!(c.aug, crate::stage1::Recipe::Gauss, "bare strings are strings");
        assert_eq!(c.batch_size, 128, "other sections' settings are ignored");
        assert_eq!(layer(&base, "stage1", None, &[]).unwrap(), base);
    }

    #[test]
    fn mistakes_are_one_line_errors_naming_the_source() {
        let tmp = tempfile::tempdir().unwrap();
        let base = Stage1Run::new("ECG5000");
        let bad_key = tmp.path().join("k.toml");
        std::fs::write(&bad_key, "[stage1]\nepochz = 5\n").unwrap();
        let e = layer(&base, "stage1", Some(&bad_key), &[]).unwrap_err().to_string();
        assert!(e.contains("k.toml") && e.contains("epochz") && !e.contains('\n'), "{e}");
        let bad_table = tmp.path().join("t.toml");
        std::fs::write(&bad_table, "[stage3]\nx = 1\n").unwrap();
        assert!(
            layer(&base, "stage1", Some(&bad_table), &[])
                .unwrap_err()
                .to_string()
                .contains("unknown table [stage3]")
        );
        let syntax = tmp.path().join("s.toml");
        std::fs::write(&syntax, "[stage1\n").unwrap();
        assert!(
            layer(&base, "stage1", Some(&syntax), &[]).unwrap_err().to_string().contains("s.toml")
        );
        for (arg, want) in [
            ("epochs=3", "needs a section"),
            ("stage9.epochs=3", "unknown section"),
            ("stage1.epochs", "section.key=value"),
        ] {
            let e = layer(&base, "stage1", None, &[arg.to_string()]).unwrap_err().to_string();
            assert!(e.contains(want), "{arg}: {e}");
        }
        let e = layer(&base, "stage1", None, &["stage1.epochs=many".to_string()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--set") && !e.contains('\n'), "{e}");
        let missing = tmp.path().join("none.toml");
        assert!(
            layer(&base, "stage1", Some(&missing), &[])
                .unwrap_err()
                .to_string()
                .contains("none.toml")
        );
    }

    use proptest::prelude::*;

    /// One setting: section, key and value (`epochs`, `batch_size` integers, `lr` a float).
    fn setting() -> impl Strategy<Value = (&'static str, &'static str, String)> {
        let section = prop::sample::select(vec!["stage1", "stage2", "fcn"]);
        let value = prop_oneof![
            (prop::sample::select(vec!["epochs", "batch_size"]), 1u32..5000)
                .prop_map(|(k, v)| (k, v.to_string())),
            (1u32..100_000).prop_map(|v| ("lr", format!("{:?}", f64::from(v) * 1e-6))),
        ];
        (section, value).prop_map(|(s, (k, v))| (s, k, v))
    }

    /// The `[stage1]` value a layering must end with for `key`: the last `--set` of that section,
    /// else the file's, else the default.
    fn expected(
        key: &str,
        file: &[(&str, &str, String)],
        sets: &[(&str, &str, String)],
        default: String,
    ) -> String {
        let last = |list: &[(&str, &str, String)]| {
            list.iter()
                .rev()
                .find(|(s, k, _)| *s == "stage1" && *k == key)
                .map(|(_, _, v)| v.clone())
        };
        last(sets).or_else(|| last(file)).unwrap_or(default)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Defaults, then the file's table, then each `--set` in order (the last one wins, other
        /// sections ignored); the resolved config written as a run's `config.toml` layers back to
        /// itself over any base, which is what resuming a run relies on.
        #[test]
        fn layering_applies_file_then_sets_in_order(
            file in prop::collection::vec(setting(), 0..6),
            sets in prop::collection::vec(setting(), 0..8),
        ) {
            let base = Stage1Run::new("ECG5000");
            let mut doc = toml::Table::new();
            for (section, key, value) in &file {
                let table = doc.entry(section.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
                table.as_table_mut().unwrap().insert(key.to_string(), parse_value(value));
            }
            let args: Vec<String> = sets.iter().map(|(s, k, v)| format!("{s}.{k}={v}")).collect();
            let c = layer_table(&base, "stage1", Some((&doc, "f.toml")), &args).unwrap();
            prop_assert_eq!(c.epochs.to_string(), expected("epochs", &file, &sets, base.epochs.to_string()));
            prop_assert_eq!(c.batch_size.to_string(), expected("batch_size", &file, &sets, base.batch_size.to_string()));
            prop_assert_eq!(format!("{:?}", c.lr), expected("lr", &file, &sets, format!("{:?}", base.lr)));

            let stored: toml::Table = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
            let stored = toml::Table::from_iter([("stage1".to_string(), toml::Value::Table(stored))]);
            prop_assert_eq!(layer_table(&Stage1Run::new("other"), "stage1", Some((&stored, "config.toml")), &[]).unwrap(), c);
        }

        /// Any `--set` text gives a config or a one-line error, never a panic.
        #[test]
        fn any_set_argument_is_a_config_or_a_one_line_error(arg in ".{0,40}") {
            if let Err(e) = layer_table(&Stage1Run::new("ECG5000"), "stage1", None, &[arg]) {
                prop_assert!(!e.to_string().contains('\n'), "{}", e);
            }
        }
    }
}
