//! Reading one UCR split file: decompression, text checks and the cell-by-cell parse.
//!
//! The UCR 2018 archive stores one series per line: the class label, then the values, separated by
//! tabs. Variable-length datasets pad with `NaN` so every line has the same number of cells. The
//! parser also accepts comma- or space-separated files (the older archive format).

use std::io::Read;

use crate::error::{Error, Result};

/// One parsed split, before any preprocessing: labels as written and values as `f32` (NaN kept).
#[derive(Debug, Clone, PartialEq)]
pub struct RawSplit {
    /// Where the data came from (a path or `<bundled>/…`), used in error messages.
    pub origin: String,
    /// Class label of each series, as written in the file.
    pub labels: Vec<i64>,
    /// The 1-based line each series was read from.
    pub lines: Vec<usize>,
    /// Row-major `(n, length)` values.
    pub values: Vec<f32>,
    /// Number of values per series (the number of cells after the label).
    pub length: usize,
}

impl RawSplit {
    /// Number of series.
    pub fn n(&self) -> usize {
        self.labels.len()
    }

    /// A split from series in memory (one label each), checked as a file would be: at least one
    /// series, equal lengths (NaN-pad variable-length series), no infinite values. In errors,
    /// `origin` names the data and the "line" is the 1-based series number.
    pub fn from_series(origin: &str, labels: &[i64], series: &[Vec<f32>]) -> Result<Self> {
        let Some(first) = series.first() else {
            return Err(Error::Empty { origin: origin.to_string() });
        };
        if labels.len() != series.len() {
            return Err(Error::LabelCount {
                origin: origin.to_string(),
                labels: labels.len(),
                series: series.len(),
            });
        }
        let mut values = Vec::with_capacity(series.len() * first.len());
        for (i, row) in series.iter().enumerate() {
            let line = i + 1;
            if row.is_empty() {
                return Err(Error::NoValues { origin: origin.to_string(), line });
            }
            if row.len() != first.len() {
                return Err(Error::Ragged {
                    origin: origin.to_string(),
                    line,
                    found: row.len(),
                    expected: first.len(),
                    first_line: 1,
                });
            }
            if let Some(c) = row.iter().position(|v| v.is_infinite()) {
                return Err(Error::Infinite {
                    origin: origin.to_string(),
                    line,
                    column: c + 2,
                    value: row[c].to_string(),
                });
            }
            values.extend_from_slice(row);
        }
        Ok(Self {
            origin: origin.to_string(),
            labels: labels.to_vec(),
            lines: (1..=series.len()).collect(),
            values,
            length: first.len(),
        })
    }
}

/// Gzip streams start with these two bytes.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Turns the bytes of a file into text: gunzips if the content is gzip (by magic number, whatever the
/// file name says), then checks that it is non-empty UTF-8 text.
pub fn decode(bytes: &[u8], origin: &str) -> Result<String> {
    if bytes.is_empty() {
        return Err(Error::Empty { origin: origin.to_string() });
    }
    let bytes = if bytes.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::with_capacity(bytes.len() * 4);
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|source| Error::Gzip { origin: origin.to_string(), source })?;
        std::borrow::Cow::Owned(out)
    } else {
        std::borrow::Cow::Borrowed(bytes)
    };
    match String::from_utf8(bytes.into_owned()) {
        Ok(text) => Ok(text),
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let line = 1 + e.as_bytes()[..valid].iter().filter(|&&b| b == b'\n').count();
            Err(Error::Binary { origin: origin.to_string(), line })
        }
    }
}

/// Parses the text of one split file. See the module docs for the format.
pub fn parse(text: &str, origin: &str) -> Result<RawSplit> {
    parse_with(text, origin, true)
}

/// Parses series without a label column (every cell a value; tab-, comma- or space-separated, as
/// [`parse`]). Every series gets the label 0.
pub fn parse_unlabelled(text: &str, origin: &str) -> Result<RawSplit> {
    parse_with(text, origin, false)
}

fn parse_with(text: &str, origin: &str, labelled: bool) -> Result<RawSplit> {
    let mut split = RawSplit {
        origin: origin.to_string(),
        labels: Vec::new(),
        lines: Vec::new(),
        values: Vec::new(),
        length: 0,
    };
    let mut first_line = 0;
    let mut row: Vec<f32> = Vec::new();
    for (index, raw_line) in text.split('\n').enumerate() {
        let line_no = index + 1;
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        if line.bytes().any(|b| b < 0x20 && b != b'\t' && b != b'\r') {
            return Err(Error::Binary { origin: origin.to_string(), line: line_no });
        }
        let line = line.trim_end();
        if line.trim_start().is_empty() {
            continue;
        }
        row.clear();
        let label = parse_row(line, line_no, origin, labelled, &mut row)?;
        if split.labels.is_empty() {
            split.length = row.len();
            first_line = line_no;
        } else if row.len() != split.length {
            return Err(Error::Ragged {
                origin: origin.to_string(),
                line: line_no,
                found: row.len(),
                expected: split.length,
                first_line,
            });
        }
        split.labels.push(label);
        split.lines.push(line_no);
        split.values.extend_from_slice(&row);
    }
    if split.labels.is_empty() {
        return Err(Error::Empty { origin: origin.to_string() });
    }
    Ok(split)
}

/// Parses one non-blank line into its label (0 when not `labelled`) and values (appended to `row`).
fn parse_row(
    line: &str,
    line_no: usize,
    origin: &str,
    labelled: bool,
    row: &mut Vec<f32>,
) -> Result<i64> {
    let mut cells: Box<dyn Iterator<Item = &str>> = if line.contains('\t') {
        Box::new(line.split('\t'))
    } else if line.contains(',') {
        Box::new(line.split(','))
    } else {
        Box::new(line.split_whitespace())
    };
    if !labelled {
        parse_values(cells, 1, line_no, origin, row)?;
        return Ok(0);
    }
    let label_cell = cells.next().unwrap_or("").trim();
    if label_cell.is_empty() {
        return Err(Error::MissingLabel { origin: origin.to_string(), line: line_no });
    }
    let label = parse_label(label_cell).ok_or_else(|| Error::NonIntegerLabel {
        origin: origin.to_string(),
        line: line_no,
        value: shorten(label_cell),
    })?;
    parse_values(cells, 2, line_no, origin, row)?;
    Ok(label)
}

/// Parses value cells (the first in column `first_column`) into `row`; at least one.
fn parse_values<'a>(
    cells: impl Iterator<Item = &'a str>,
    first_column: usize,
    line_no: usize,
    origin: &str,
    row: &mut Vec<f32>,
) -> Result<()> {
    for (offset, cell) in cells.enumerate() {
        let cell = cell.trim();
        let column = offset + first_column;
        let value: f64 = cell.parse().map_err(|_| Error::NonNumeric {
            origin: origin.to_string(),
            line: line_no,
            column,
            value: shorten(cell),
        })?;
        // Infinite, or finite beyond float32's range (infinite once stored as f32: `1e39`).
        if (value as f32).is_infinite() {
            return Err(Error::Infinite {
                origin: origin.to_string(),
                line: line_no,
                column,
                value: shorten(cell),
            });
        }
        row.push(value as f32);
    }
    if row.is_empty() {
        return Err(Error::NoValues { origin: origin.to_string(), line: line_no });
    }
    Ok(())
}

/// A label is an integer, possibly written as a float with no fractional part (`1.0000000e+00`).
fn parse_label(cell: &str) -> Option<i64> {
    if let Ok(v) = cell.parse::<i64>() {
        return Some(v);
    }
    let v: f64 = cell.parse().ok()?;
    let in_range = v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15;
    in_range.then_some(v as i64)
}

/// Cells quoted in errors are cut to 24 characters so that the message stays on one line.
fn shorten(cell: &str) -> String {
    let printable: String = cell.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
    if printable.chars().count() > 24 {
        format!("{}…", printable.chars().take(24).collect::<String>())
    } else {
        printable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlabelled_rows_are_all_values() {
        let split = parse_unlabelled("1.5,2,3\n4,5,6.25\n", "own.csv").unwrap();
        assert_eq!((split.n(), split.length, split.labels.clone()), (2, 3, vec![0, 0]));
        assert_eq!(split.values, vec![1.5, 2.0, 3.0, 4.0, 5.0, 6.25]);
        let e = parse_unlabelled("1,2,3\n4,x,6\n", "own.csv").unwrap_err().to_string();
        assert_eq!(e, "own.csv:2: column 2: 'x' is not a number");
        let e = parse_unlabelled("1,2,3\n4,5\n", "own.csv").unwrap_err().to_string();
        assert!(e.starts_with("own.csv:2: 2 values, but line 1 has 3"), "{e}");
        assert_eq!(parse(text_with_label(), "l.csv").unwrap().labels, vec![7]);
    }

    fn text_with_label() -> &'static str {
        "7,1,2,3\n"
    }

    #[test]
    fn series_in_memory_are_checked_like_a_file() {
        let ok = RawSplit::from_series(
            "mine",
            &[3, 1],
            &[vec![0.5, f32::NAN, 1.0], vec![2.0, 3.0, 4.0]],
        )
        .unwrap();
        assert_eq!((ok.n(), ok.length, ok.lines.clone()), (2, 3, vec![1, 2]));
        assert_eq!(&ok.values[3..], &[2.0, 3.0, 4.0]);
        let err = |labels: &[i64], rows: &[Vec<f32>]| {
            RawSplit::from_series("mine", labels, rows).unwrap_err().to_string()
        };
        assert_eq!(err(&[], &[]), "mine: empty file (no series)");
        assert!(
            err(&[1], &[vec![1.0], vec![2.0]]).contains("2 series but 1 labels"),
            "{}",
            err(&[1], &[vec![1.0], vec![2.0]])
        );
        assert!(
            err(&[1, 1], &[vec![1.0, 2.0], vec![2.0]])
                .starts_with("mine:2: 1 values, but line 1 has 2")
        );
        assert!(
            err(&[1], &[vec![1.0, f32::INFINITY]]).starts_with("mine:1: column 3: infinite value")
        );
        assert!(err(&[1], &[vec![]]).starts_with("mine:1: line has a label but no values"));
    }
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn parses_tab_separated_rows_with_nan_padding() {
        let split = parse("1\t0.5\t-1e-1\tNaN\n-1\t2\t3\t4\n", "t").unwrap();
        assert_eq!(split.labels, vec![1, -1]);
        assert_eq!(split.lines, vec![1, 2]);
        assert_eq!(split.length, 3);
        assert_eq!(split.values[..2], [0.5, -0.1]);
        assert!(split.values[2].is_nan());
        assert_eq!(split.values[3..], [2.0, 3.0, 4.0]);
    }

    #[test]
    fn accepts_float_written_labels_crlf_and_blank_lines() {
        let split = parse("1.0000000e+00,1,2\r\n\r\n  \n2.0,3,4\r\n", "t").unwrap();
        assert_eq!(split.labels, vec![1, 2]);
        assert_eq!(split.lines, vec![1, 4]);
        assert_eq!(split.values, vec![1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn gzip_round_trip_and_truncation() {
        let text = "3\t1\t2\n4\t5\t6\n".repeat(50);
        let gz = gzip(text.as_bytes());
        assert_eq!(decode(&gz, "f.gz").unwrap(), text);
        let err = decode(&gz[..gz.len() / 2], "f.gz").unwrap_err();
        assert!(matches!(err, Error::Gzip { .. }), "{err}");
        assert!(err.to_string().starts_with("f.gz: "), "{err}");
    }

    #[test]
    fn rejects_each_malformed_case_with_file_and_line() {
        let cases: &[(&str, &str)] = &[
            ("", "empty file"),
            ("\n\n", "empty file"),
            ("1\t1\t2\n2\t3\n", "t:2: 1 values, but line 1 has 2"),
            ("1\t1\tabc\n", "t:1: column 3: 'abc' is not a number"),
            ("1.5\t1\t2\n", "t:1: class label '1.5' is not an integer"),
            ("x\t1\t2\n", "t:1: class label 'x' is not an integer"),
            ("\t1\t2\n", "t:1: missing class label"),
            ("1\t1\tinf\n", "t:1: column 3: infinite value 'inf'"),
            ("1\t-Infinity\t2\n", "t:1: column 2: infinite value"),
            ("1\t1e39\t2\n", "t:1: column 2: infinite value '1e39' (or beyond float32's"),
            ("7\n", "t:1: line has a label but no values"),
            ("1\t2\t3\n1\t\x00\x01\x02\n", "t:2: not a text TSV file"),
        ];
        for (text, want) in cases {
            let err = decode(text.as_bytes(), "t").and_then(|t| parse(&t, "t")).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(want), "input {text:?}: got '{msg}', want '{want}'");
            assert!(!msg.contains('\n'), "message must be one line: {msg}");
        }
    }

    #[test]
    fn invalid_utf8_reports_the_line() {
        let err = decode(b"1\t2\n1\t\xff\xfe\n", "b").unwrap_err();
        assert_eq!(err.to_string(), "b:2: not a text TSV file (binary content)");
    }
}
