//! Checks `data inspect` against the archive's own counts for every dataset in
//! `../shared/data/ucr/MANIFEST.md` (the project's reference copy of the UCR archive).
//!
//! That folder is not shipped to users, so the test is ignored by default. Run it with
//!
//! ```text
//! cargo test --release --test shared_data -- --ignored --nocapture
//! ```
//!
//! or point `NC_VQVAE_SHARED_UCR` at another copy of the folder. `.ci/run` runs it when the folder
//! exists.

use std::path::PathBuf;
use std::time::Instant;

use nc_vqvae::inspect::DatasetReport;
use nc_vqvae::ucr_data::{DataRoot, Resolver, UcrDataset};

fn shared_root() -> PathBuf {
    std::env::var_os("NC_VQVAE_SHARED_UCR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/ucr"))
}

/// `(name, train, test, length_min, length_max, classes, nan_cells)` rows of the manifest tables.
fn manifest_rows(text: &str) -> Vec<(String, usize, usize, usize, usize, usize, usize)> {
    text.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // | name | train | test | length | classes | NaN cells | sha TRAIN | sha TEST |
            if cells.len() < 9 {
                return None;
            }
            let train = cells[2].parse().ok()?;
            let test = cells[3].parse().ok()?;
            let (lmin, lmax) = match cells[4].split_once('–') {
                Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
                None => (cells[4].parse().ok()?, cells[4].parse().ok()?),
            };
            Some((
                cells[1].to_string(),
                train,
                test,
                lmin,
                lmax,
                cells[5].parse().ok()?,
                cells[6].parse().ok()?,
            ))
        })
        .collect()
}

#[test]
#[ignore = "needs ../shared/data/ucr (not shipped); see the module docs"]
fn inspect_matches_the_manifest_for_every_shared_dataset() {
    let root = shared_root();
    let manifest = std::fs::read_to_string(root.join("MANIFEST.md"))
        .unwrap_or_else(|e| panic!("{}: {e}", root.join("MANIFEST.md").display()));
    let rows = manifest_rows(&manifest);
    assert!(rows.len() >= 10, "parsed only {} manifest rows", rows.len());
    let resolver = Resolver::with_roots(vec![DataRoot::Dir(root.clone())]);
    let mut failures = Vec::new();
    for (name, train, test, lmin, lmax, classes, nan) in &rows {
        let start = Instant::now();
        let data = match resolver.resolve(name).and_then(|s| UcrDataset::load(&s)) {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let r = DatasetReport::new(&data);
        let got = (
            r.train.n,
            r.test.n,
            r.train.length_min.min(r.test.length_min),
            r.train.length_max.max(r.test.length_max),
            r.train.classes,
            r.train.nan_values + r.test.nan_values,
        );
        let want = (*train, *test, *lmin, *lmax, *classes, *nan);
        println!("{name:<32} {:>6.2}s  {got:?}", start.elapsed().as_secs_f64());
        if got != want {
            failures.push(format!("{name}: got {got:?}, manifest says {want:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} datasets differ:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}
