//! Feeding a split to a Burn model: a Burn [`Dataset`] of items, a [`Batcher`] into tensors, and a
//! seeded epoch order with the reference loader's conventions (docs/reference.md §2).

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::dataset::Split;
use crate::error::{Error, Result};

/// One series and its class index.
#[derive(Debug, Clone, PartialEq)]
pub struct UcrItem {
    /// The (preprocessed) values.
    pub values: Vec<f32>,
    /// Class index.
    pub label: usize,
}

impl Dataset<UcrItem, Error> for Split {
    fn get(&self, index: usize) -> Result<UcrItem> {
        if index >= self.n() {
            return Err(Error::IndexOutOfRange { index, len: self.n() });
        }
        Ok(UcrItem { values: self.series(index).to_vec(), label: self.labels[index] })
    }

    fn len(&self) -> usize {
        self.n()
    }
}

/// A batch of series as model input.
#[derive(Debug, Clone)]
pub struct UcrBatch {
    /// Series, shape `(B, 1, L)` (one input channel).
    pub x: Tensor<3>,
    /// Class indices, shape `(B)`.
    pub y: Tensor<1, Int>,
}

/// Stacks [`UcrItem`]s of equal length into a [`UcrBatch`] on the given device.
#[derive(Debug, Clone, Copy, Default)]
pub struct UcrBatcher;

impl Batcher<UcrItem, UcrBatch> for UcrBatcher {
    fn batch(&self, items: Vec<UcrItem>, device: &Device) -> UcrBatch {
        let b = items.len();
        let length = items.first().map_or(0, |i| i.values.len());
        let mut values = Vec::with_capacity(b * length);
        let mut labels = Vec::with_capacity(b);
        for item in items {
            assert_eq!(
                item.values.len(),
                length,
                "all series in a batch must have the same length"
            );
            values.extend_from_slice(&item.values);
            labels.push(item.label as i64);
        }
        to_batch(values, labels, length, device)
    }
}

impl Split {
    /// The series at `indices` as one batch, without going through per-item copies.
    pub fn batch(&self, indices: &[usize], device: &Device) -> UcrBatch {
        let mut values = Vec::with_capacity(indices.len() * self.length);
        for &i in indices {
            values.extend_from_slice(self.series(i));
        }
        let labels = indices.iter().map(|&i| self.labels[i] as i64).collect();
        to_batch(values, labels, self.length, device)
    }
}

fn to_batch(values: Vec<f32>, labels: Vec<i64>, length: usize, device: &Device) -> UcrBatch {
    let b = labels.len();
    UcrBatch {
        x: Tensor::from_data(TensorData::new(values, [b, 1, length]), device),
        y: Tensor::from_data(TensorData::new(labels, [b]), device),
    }
}

/// The order in which one epoch visits a split, as index batches.
///
/// * `shuffle`: a permutation drawn from `seed` and `epoch` (the same pair always gives the same
///   order, so a resumed run sees the same batches); otherwise `0..n` in order.
/// * The last partial batch is kept (`drop_last = false`, as the reference: small UCR training
///   sets have 20–55 series). A final batch of exactly one series is merged into the one before
///   it, because BatchNorm cannot use batch statistics of one sample (quirk Q25).
pub fn epoch_batches(
    n: usize,
    batch_size: usize,
    shuffle: bool,
    seed: u64,
    epoch: u64,
) -> Result<Vec<Vec<usize>>> {
    if batch_size == 0 {
        return Err(Error::BatchSize(batch_size));
    }
    let mut order: Vec<usize> = (0..n).collect();
    if shuffle {
        // One stream per (seed, epoch): mix the two so neighbouring seeds give unrelated orders.
        let mixed =
            seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ epoch.wrapping_add(0x632B_E59B_D9B4_E019);
        order.shuffle(&mut StdRng::seed_from_u64(mixed));
    }
    let mut batches: Vec<Vec<usize>> = order.chunks(batch_size).map(<[usize]>::to_vec).collect();
    if batches.len() > 1 && batches.last().is_some_and(|b| b.len() == 1) {
        let last = batches.pop().unwrap_or_default();
        if let Some(prev) = batches.last_mut() {
            prev.extend(last);
        }
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split() -> Split {
        let raw = crate::tsv::parse("0\t1\t2\t3\n1\t4\t5\t6\n0\t7\t8\t9\n", "t").unwrap();
        crate::UcrDataset::from_raw("t", raw.clone(), raw).unwrap().train
    }

    #[test]
    fn batcher_and_direct_batch_agree() {
        let device = Device::flex();
        let s = split();
        let items: Vec<UcrItem> = [2, 0].iter().map(|&i| s.get(i).unwrap()).collect();
        let a = UcrBatcher.batch(items, &device);
        let b = s.batch(&[2, 0], &device);
        assert_eq!(a.x.dims(), [2, 1, 3]);
        assert_eq!(a.x.try_into_vec_as::<f32>().unwrap(), b.x.try_into_vec_as::<f32>().unwrap());
        assert_eq!(a.y.try_into_vec_as::<i64>().unwrap(), vec![0, 0]);
        assert_eq!(s.len(), 3);
        assert_eq!(
            s.get(3).unwrap_err().to_string(),
            "index 3 is out of range for a split of 3 series"
        );
    }

    #[test]
    fn epoch_order_is_seeded_complete_and_keeps_partial_batches() {
        let a = epoch_batches(10, 4, true, 7, 3).unwrap();
        assert_eq!(a, epoch_batches(10, 4, true, 7, 3).unwrap(), "same seed and epoch, same order");
        assert_ne!(a, epoch_batches(10, 4, true, 7, 4).unwrap(), "a new epoch reshuffles");
        assert_ne!(a, epoch_batches(10, 4, true, 8, 3).unwrap(), "a new seed reshuffles");
        assert_eq!(a.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4, 2]);
        let mut all: Vec<usize> = a.concat();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(
            epoch_batches(3, 2, false, 0, 0).unwrap(),
            vec![vec![0, 1, 2]],
            "lone last series merged"
        );
        assert_eq!(epoch_batches(1, 4, false, 0, 0).unwrap(), vec![vec![0]]);
        assert!(epoch_batches(5, 0, false, 0, 0).is_err());
    }
}
