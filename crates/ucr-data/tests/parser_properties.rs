//! Property tests of the file parsers: on any input they return a value or an error, never panic,
//! and what they accept holds only finite or NaN values; valid files (every separator, gzip, NumPy
//! arrays with labels) read back exactly what was written.

use std::io::Write;

use proptest::prelude::*;
use ucr_data::{decode, npy_f32, npy_i64, parse, parse_unlabelled, read_npy_series};

/// What the parsers promise of any split they return.
fn well_formed(split: &ucr_data::RawSplit) {
    assert!(split.n() > 0 && split.length > 0);
    assert_eq!(split.values.len(), split.n() * split.length);
    assert_eq!(split.lines.len(), split.n());
    assert!(split.values.iter().all(|v| !v.is_infinite()), "no infinite value passes");
}

/// Text close to a UCR file: digits, signs, separators, line ends, NaN / inf words, a few odd bytes.
fn near_tsv() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "0",
        "1",
        "-2",
        "3.5",
        "1e3",
        "1e39",
        "-1e39",
        "1e-50",
        "NaN",
        "nan",
        "inf",
        "-Infinity",
        ".",
        "e",
        "+",
        "-",
        "\t",
        "\t",
        ",",
        " ",
        "\n",
        "\n",
        "\r\n",
        "\r",
        "\0",
        "x",
        "é",
        "1.0000000e+00",
        "9223372036854775808",
        "",
    ]);
    prop::collection::vec(pieces, 0..60).prop_map(|p| p.concat())
}

/// A float32 that a file may hold (finite; Rust's shortest text for it parses back to it).
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        (-1000i32..1000).prop_map(|v| v as f32 / 8.0),
        any::<f32>().prop_filter("finite", |v| v.is_finite()),
    ]
}

/// Series of one length with a label each.
fn series() -> impl Strategy<Value = (Vec<i64>, Vec<Vec<f32>>)> {
    (1usize..8, 1usize..12).prop_flat_map(|(n, len)| {
        (
            prop::collection::vec(-5i64..100, n),
            prop::collection::vec(prop::collection::vec(value(), len), n),
        )
    })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_give_a_split_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        for input in [bytes.clone(), gzip(&bytes)] {
            if let Ok(text) = decode(&input, "f") {
                if let Ok(split) = parse(&text, "f") { well_formed(&split); }
                if let Ok(split) = parse_unlabelled(&text, "f") { well_formed(&split); }
            }
            if let Ok(split) = read_npy_series(&input, "f.npy", None) { well_formed(&split); }
        }
    }

    #[test]
    fn text_near_a_ucr_file_gives_a_split_or_a_one_line_error(text in near_tsv()) {
        for result in [parse(&text, "f.tsv"), parse_unlabelled(&text, "f.csv")] {
            match result {
                Ok(split) => well_formed(&split),
                Err(e) => {
                    let message = e.to_string();
                    prop_assert!(message.starts_with("f.") && !message.contains('\n'), "{message:?}");
                }
            }
        }
    }

    #[test]
    fn npy_headers_with_any_changes_give_a_split_or_an_error(
        (labels, rows) in series(),
        cuts in prop::collection::vec((0usize..200, any::<u8>()), 0..4),
        truncate in 0usize..400,
    ) {
        let (n, len) = (rows.len(), rows[0].len());
        let mut bytes = npy_f32(&[n, len], &rows.concat());
        for (at, b) in cuts {
            if at < bytes.len() { bytes[at] = b; }
        }
        bytes.truncate(bytes.len().saturating_sub(truncate));
        let label_bytes = npy_i64(&[n], &labels);
        for labels in [None, Some((&label_bytes[..], "l.npy"))] {
            if let Ok(split) = read_npy_series(&bytes, "x.npy", labels) { well_formed(&split); }
        }
    }

    #[test]
    fn written_series_read_back_exactly(
        (labels, rows) in series(),
        sep in prop::sample::select(vec!["\t", ",", " "]),
        crlf in any::<bool>(),
        zipped in any::<bool>(),
    ) {
        let end = if crlf { "\r\n" } else { "\n" };
        let line = |label: Option<i64>, row: &[f32]| {
            let cells: Vec<String> = label.map(|l| l.to_string()).into_iter().chain(row.iter().map(f32::to_string)).collect();
            cells.join(sep) + end
        };
        let labelled: String = labels.iter().zip(&rows).map(|(&l, r)| line(Some(l), r)).collect();
        let unlabelled: String = rows.iter().map(|r| line(None, r)).collect();
        let read = |text: &str| {
            let bytes = if zipped { gzip(text.as_bytes()) } else { text.as_bytes().to_vec() };
            decode(&bytes, "f").unwrap()
        };
        let values: Vec<f32> = rows.concat();
        let split = parse(&read(&labelled), "f").unwrap();
        prop_assert_eq!(&split.labels, &labels);
        prop_assert_eq!(split.length, rows[0].len());
        prop_assert_eq!(&split.values, &values);
        prop_assert_eq!(split.lines, (1..=rows.len()).collect::<Vec<_>>());
        let split = parse_unlabelled(&read(&unlabelled), "f").unwrap();
        prop_assert_eq!(split.labels, vec![0; rows.len()]);
        prop_assert_eq!(&split.values, &values);

        let npy = read_npy_series(&npy_f32(&[rows.len(), rows[0].len()], &values), "x.npy", Some((&npy_i64(&[labels.len()], &labels), "l.npy"))).unwrap();
        prop_assert_eq!(&npy.labels, &labels);
        prop_assert_eq!(&npy.values, &values);
    }
}
