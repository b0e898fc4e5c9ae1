//! NumPy `.npy` arrays: series read from a 2-D float array (rows = series) with an optional 1-D
//! integer label array, and arrays written for NumPy to read (`numpy.load`).
//!
//! The format (NumPy's `format.py`): the magic `\x93NUMPY`, a version byte pair, the header length
//! (2 bytes little-endian in version 1, 4 in versions 2 and 3), an ASCII Python dict literal with
//! `descr`, `fortran_order` and `shape`, padded with spaces and a newline so the data starts at a
//! multiple of 64 bytes, then the raw values. There is no `.npy` crate among this workspace's
//! dependencies and the format is a header and a memcpy, so it is written here: reading accepts
//! little-endian `f4`/`f8` values and `i1`–`i8`/`u1`–`u8` labels (and integral float labels), C or
//! Fortran order; writing produces version 1.0, C order, little-endian.

use crate::error::{Error, Result};
use crate::tsv::RawSplit;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// A parsed array: its shape and its values widened to `f64` (C order).
struct Array {
    shape: Vec<usize>,
    values: Vec<f64>,
    integral_type: bool,
}

fn bad(origin: &str, message: impl Into<String>) -> Error {
    Error::Npy { origin: origin.to_string(), message: message.into() }
}

/// The value of `key` in the header dict, as the raw text up to the next top-level comma.
fn header_field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'")).or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = header[at + key.len() + 2..].trim_start().strip_prefix(':')?.trim_start();
    if rest.starts_with('(') {
        return rest.find(')').map(|end| &rest[..=end]);
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim())
}

fn parse(bytes: &[u8], origin: &str) -> Result<Array> {
    if bytes.is_empty() {
        return Err(Error::Empty { origin: origin.to_string() });
    }
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad(origin, "not a NumPy .npy file (no \\x93NUMPY magic)"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => {
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        v => return Err(bad(origin, format!("unsupported .npy format version {v}"))),
    };
    let header =
        bytes.get(start..start + header_len).ok_or_else(|| bad(origin, "truncated header"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad(origin, "header is not text"))?;
    let descr = header_field(header, "descr")
        .ok_or_else(|| bad(origin, "header has no 'descr'"))?
        .trim_matches(['\'', '"']);
    let fortran = match header_field(header, "fortran_order") {
        Some("True") => true,
        Some("False") => false,
        _ => return Err(bad(origin, "header has no 'fortran_order'")),
    };
    let shape_text =
        header_field(header, "shape").ok_or_else(|| bad(origin, "header has no 'shape'"))?;
    let shape = shape_text
        .trim_matches(['(', ')'])
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| bad(origin, format!("bad shape {shape_text}"))))
        .collect::<Result<Vec<_>>>()?;
    let (size, integral_type): (usize, bool) = match descr {
        "<f4" | "<f8" => (descr[2..].parse().unwrap_or(4), false),
        "<i1" | "|i1" | "<i2" | "<i4" | "<i8" | "<u1" | "|u1" | "<u2" | "<u4" | "<u8" => {
            (descr[2..].parse().unwrap_or(1), true)
        }
        other => {
            return Err(bad(
                origin,
                format!(
                    "unsupported dtype '{other}' (use little-endian float32/float64 values or integer labels)"
                ),
            ));
        }
    };
    let data = &bytes[start + header_len..];
    // A shape whose byte count overflows cannot match any file (checked, not wrapped).
    let needed = shape.iter().try_fold(size, |acc, &d| acc.checked_mul(d));
    let n = match needed {
        Some(bytes_needed) if data.len() >= bytes_needed => bytes_needed / size,
        _ => {
            let needs = needed.map_or_else(|| "more than 2^64".to_string(), |b| b.to_string());
            return Err(bad(
                origin,
                format!(
                    "truncated data: shape {shape_text} needs {needs} bytes, the file has {}",
                    data.len()
                ),
            ));
        }
    };
    let kind = descr.as_bytes()[1];
    let values: Vec<f64> = data[..n * size]
        .chunks_exact(size)
        .map(|c| match (kind, size) {
            (b'f', 4) => f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
            (b'f', _) => f64::from_le_bytes(c.try_into().unwrap_or([0; 8])),
            (b'i', 1) => c[0] as i8 as f64,
            (b'i', 2) => i16::from_le_bytes([c[0], c[1]]) as f64,
            (b'i', 4) => i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
            (b'i', _) => i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f64,
            (_, 1) => c[0] as f64,
            (_, 2) => u16::from_le_bytes([c[0], c[1]]) as f64,
            (_, 4) => u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
            (_, _) => u64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f64,
        })
        .collect();
    let values = if fortran && shape.len() == 2 {
        let (r, c) = (shape[0], shape[1]);
        (0..r * c).map(|i| values[(i % c) * r + i / c]).collect()
    } else {
        values
    };
    Ok(Array { shape, values, integral_type })
}

/// Series from a 2-D float `.npy` array (rows = series; NaN allowed, infinity not), with labels
/// from a 1-D integer (or integral float) array of one label per row, or none (every label 0).
/// The "line" of an error is the 1-based row.
pub fn read_npy_series(
    values: &[u8],
    origin: &str,
    labels: Option<(&[u8], &str)>,
) -> Result<RawSplit> {
    let array = parse(values, origin)?;
    if array.integral_type || array.shape.len() != 2 {
        return Err(bad(
            origin,
            format!(
                "expected a 2-D float array (rows = series), found {}-D {}",
                array.shape.len(),
                if array.integral_type { "integers" } else { "floats" }
            ),
        ));
    }
    let (rows, length) = (array.shape[0], array.shape[1]);
    if rows == 0 {
        return Err(Error::Empty { origin: origin.to_string() });
    }
    if length == 0 {
        return Err(Error::NoValues { origin: origin.to_string(), line: 1 });
    }
    // Infinite, or finite float64 beyond float32's range (infinite once read as float32).
    if let Some(i) = array.values.iter().position(|&v| (v as f32).is_infinite()) {
        return Err(Error::Infinite {
            origin: origin.to_string(),
            line: i / length + 1,
            column: i % length + 1,
            value: array.values[i].to_string(),
        });
    }
    let labels = match labels {
        None => vec![0; rows],
        Some((bytes, label_origin)) => {
            let l = parse(bytes, label_origin)?;
            if l.shape.len() != 1 {
                return Err(bad(
                    label_origin,
                    format!("expected a 1-D label array, found {}-D", l.shape.len()),
                ));
            }
            if l.shape[0] != rows {
                return Err(Error::LabelCount {
                    origin: label_origin.to_string(),
                    labels: l.shape[0],
                    series: rows,
                });
            }
            l.values
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    if v.is_finite() && v.fract() == 0.0 {
                        Ok(v as i64)
                    } else {
                        Err(Error::NonIntegerLabel {
                            origin: label_origin.to_string(),
                            line: i + 1,
                            value: v.to_string(),
                        })
                    }
                })
                .collect::<Result<Vec<_>>>()?
        }
    };
    Ok(RawSplit {
        origin: origin.to_string(),
        labels,
        lines: (1..=rows).collect(),
        values: array.values.iter().map(|&v| v as f32).collect(),
        length,
    })
}

/// The header of a version-1.0 `.npy` file of `descr` and `shape`, padded to 64 bytes.
fn header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [n] => format!("({n},)"),
        _ => format!("({})", shape.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = Vec::with_capacity(10 + dict.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// A `float32` array of `shape` (C order) as `.npy` bytes.
pub fn npy_f32(shape: &[usize], values: &[f32]) -> Vec<u8> {
    assert_eq!(shape.iter().product::<usize>(), values.len(), "shape and values of an .npy array");
    let mut out = header("<f4", shape);
    values.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    out
}

/// An `int64` array of `shape` (C order) as `.npy` bytes.
pub fn npy_i64(shape: &[usize], values: &[i64]) -> Vec<u8> {
    assert_eq!(shape.iter().product::<usize>(), values.len(), "shape and values of an .npy array");
    let mut out = header("<i8", shape);
    values.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_arrays_read_back_with_their_labels() {
        let values: Vec<f32> = (0..12).map(|v| v as f32 * 0.5 - 1.0).collect();
        let bytes = npy_f32(&[3, 4], &values);
        assert_eq!(&bytes[..6], MAGIC);
        assert_eq!(
            (10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize) % 64,
            0,
            "data aligned to 64 bytes"
        );
        let labels = npy_i64(&[3], &[2, -1, 2]);
        let split = read_npy_series(&bytes, "x.npy", Some((&labels, "y.npy"))).unwrap();
        assert_eq!((split.n(), split.length, split.labels.clone()), (3, 4, vec![2, -1, 2]));
        assert_eq!(split.values, values);
        let unlabelled = read_npy_series(&bytes, "x.npy", None).unwrap();
        assert_eq!(unlabelled.labels, vec![0, 0, 0]);
    }

    /// A version-1.0 float64 `.npy` file with the header dict `dict` and `values`.
    fn float64_npy(dict: &str, values: &[f64]) -> Vec<u8> {
        let mut dict = dict.to_string();
        while !(10 + dict.len() + 1).is_multiple_of(64) {
            dict.push(' ');
        }
        dict.push('\n');
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        bytes.extend_from_slice(dict.as_bytes());
        values.iter().for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
        bytes
    }

    /// A float64, Fortran-ordered array as NumPy writes it (`np.asfortranarray(a).astype('<f8')`).
    #[test]
    fn float64_and_fortran_order_are_read() {
        // The C-order matrix [[1, 2, 3], [4, 5, 6]] stored column by column.
        let bytes = float64_npy(
            "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }",
            &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0],
        );
        let split = read_npy_series(&bytes, "f.npy", None).unwrap();
        assert_eq!(split.values, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    /// A shape whose byte count overflows, and float64 values beyond float32's range, are errors
    /// (they used to overflow the multiplication, and to turn into infinities).
    #[test]
    fn huge_shapes_and_values_beyond_float32_are_errors() {
        let huge = float64_npy(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
            &[1.0],
        );
        let e = read_npy_series(&huge, "h.npy", None).unwrap_err().to_string();
        assert!(e.starts_with("h.npy: truncated data") && e.contains("more than 2^64"), "{e}");
        let big = float64_npy(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }",
            &[1.0, 1e39],
        );
        let e = read_npy_series(&big, "b.npy", None).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "b.npy:1: column 2: infinite value '1000000000000000000000000000000000000000'"
            ),
            "{e}"
        );
    }

    #[test]
    fn malformed_arrays_are_one_line_errors_naming_the_file() {
        let good = npy_f32(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
        let err = |bytes: &[u8], labels: Option<&[u8]>| {
            read_npy_series(bytes, "x.npy", labels.map(|l| (l, "y.npy"))).unwrap_err().to_string()
        };
        assert!(err(b"hello world", None).starts_with("x.npy: not a NumPy .npy file"));
        assert!(err(&good[..good.len() - 3], None).contains("truncated data"));
        assert!(err(&npy_f32(&[4], &[1.0; 4]), None).contains("expected a 2-D float array"));
        assert!(err(&npy_i64(&[2, 2], &[1; 4]), None).contains("found 2-D integers"));
        assert!(
            err(&npy_f32(&[1, 2], &[1.0, f32::INFINITY]), None)
                .starts_with("x.npy:1: column 2: infinite value")
        );
        assert!(err(&good, Some(&npy_i64(&[3], &[1, 2, 3]))).contains("2 series but 3 labels"));
        assert!(
            err(&good, Some(&npy_f32(&[2], &[1.0, 1.5])))
                .starts_with("y.npy:2: class label '1.5' is not an integer")
        );
        let mut f2 = good.clone();
        let at = f2.windows(3).position(|w| w == b"<f4").unwrap();
        f2[at..at + 3].copy_from_slice(b"<f2");
        assert!(err(&f2, None).contains("unsupported dtype"), "{}", err(&f2, None));
        for e in [err(b"hello world", None), err(&good[..good.len() - 3], None)] {
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
